"""Fitting the closed-form item-item filters, ``F = S + L R^T`` (served by
``rust/core/src/filter.rs``): :class:`personae.EASE`, :class:`personae.GraphFilter`, and the
filter every AMP-CF persona votes through.

- EASE (Steck 2019) with the two normalisations of DAN (Park et al., SIGIR 2025) that matter,
  user-degree weighting of the Gram matrix and a dropout-emphasis (DLAE, Steck 2020) diagonal
  penalty::

      G = X^T diag(|H_u|^-beta_u) X,   Lambda = lam * mean(diag G) + p / (1 - p) diag(G)
      P = (G + Lambda)^-1,             B = I - P diag(1 / diag P)     (diag B = 0)

  plus, optionally, GF-CF's ideal low-pass filter (Shen et al., CIKM 2021) as the low-rank
  part, ``c D^-1/2 V_r^T V_r D^1/2`` with V_r the top right singular vectors of the normalised
  matrix ``R~ = D_u^-1/2 X D_i^-1/2``. ``user_weight=0, dropout=0, rank=0`` is Steck's EASE.
- The training-free graph filter (:func:`graph_filter`): GF-CF's by default, BSPM's sharpening
  (Choi et al., SIGIR 2023) with ``time > 0``: a sparse item-item part and a low-rank part, no
  items x items inverse, for catalogues of any size.

Settings left as ``None`` are chosen on a validation carve of the training rows (training data
only; never a test split), then the filter is refitted on all of X. Dense linear algebra runs
in torch, on CUDA when present.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from personae import _core
from personae.metrics import mean_ndcg

#: Above this many active items, the automatic filter is the graph filter (no items x items
#: inverse).
DENSE_MAX_ITEMS = 20_000
#: The validation metric of the fit-time search (NDCG at this cut-off).
SEARCH_K = 20
#: Up to this many active items the graph filter's item-item part is P~ exact by default
#: (``neighbours=None``); above, each item keeps its :data:`AUTO_NEIGHBOURS` largest votes.
EXACT_MAX_ITEMS = 50_000
#: The neighbours per item the graph filter keeps above :data:`EXACT_MAX_ITEMS` active items.
AUTO_NEIGHBOURS = 200


@dataclass(frozen=True)
class EASEConfig:
    """EASE's settings (:class:`personae.EASE`); ``None`` means chosen on a validation carve.

    Attributes:
        lam: the L2 penalty, relative to the mean of diag(G) (scale-free: the same value fits
            any catalogue and weight scale).
        user_weight: beta_u, the exponent of the user-degree weighting of G (0: none).
        dropout: p of the dropout-emphasis penalty ``p / (1 - p) diag(G)`` (0: none).
        rank: rank of GF-CF's low-pass part (0: none).
        low_weight: its weight c, relative to the scale of the item-item part.
    """

    lam: float | None = None
    user_weight: float | None = None
    dropout: float = 0.3
    rank: int | None = None
    low_weight: float | None = None

    def __post_init__(self):
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lam is not None and not (math.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"lam must be finite and > 0, got {self.lam}")
        if self.user_weight is not None and not math.isfinite(self.user_weight):
            raise ValueError(f"user_weight must be finite, got {self.user_weight}")
        if self.rank is not None and self.rank < 0:
            raise ValueError(f"rank must be >= 0, got {self.rank}")
        if self.low_weight is not None and not (
            math.isfinite(self.low_weight) and self.low_weight >= 0
        ):
            raise ValueError(f"low_weight must be finite and >= 0, got {self.low_weight}")

    @property
    def searched(self) -> bool:
        return None in (self.lam, self.user_weight, self.rank, self.low_weight)


@dataclass(frozen=True)
class GraphConfig:
    """The graph filter's settings (:class:`personae.GraphFilter`); ``None`` means chosen on a
    validation carve.

    Attributes:
        rank: spectrum rank r of the low-pass part (and of BSPM's higher powers).
        beta: weight of the ideal low pass.
        time: BSPM's diffusion time T (0: GF-CF's filter, no sharpening).
        eta: exponent of the item-degree post-scaling ``d^-eta``.
        user_weight: exponent of the user degrees in the item-item part,
            ``P = D_i^-1/2 X^T D_u^-user_weight X D_i^-1/2`` (1: GF-CF's ``R~^T R~``; below 1
            a long history's co-occurrences are divided down less, as with DAN's user
            normalisation in EASE). The low-rank part keeps GF-CF's R~.
        solver: the one step of BSPM's ODE: ``rk4`` (its 4th-order Taylor polynomial in P~)
            or ``euler`` (1st order).
        neighbours: the votes each item keeps: its ``neighbours`` largest entries of P~'s row
            (ties to the lower item index), computed by the core a row at a time so P~ is
            never held whole. None: all of P~ up to :data:`EXACT_MAX_ITEMS` active items,
            :data:`AUTO_NEIGHBOURS` above (:meth:`kept`).
        flatness: ChebyCF's filter (Kim et al., SIGIR 2025) when > 0: P~'s response is the
            plateau of this flatness interpolated by a Chebyshev polynomial of order
            :data:`CHEBY_ORDER` (:func:`plateau_response`), and ``beta`` weighs an ideal low
            pass without GF-CF's ``D^-1/2 ... D^1/2``. 0: GF-CF's response (BSPM's with
            ``time > 0``).
        item_power: ChebyCF's degree normalisation p: a history's items weigh ``d^-p`` and
            the scores are multiplied by ``d^p`` (0: none).

    The defaults are ChebyCF's filter (flatness 2, item_power 0.3, beta 0.1): the best of the
    harness's ChebyCF grid on Gowalla's validation carve (rank 512: 0.1618 NDCG@20; this form
    at rank 448 0.1617; AMP-CF over GF-CF's form 0.1557); on Gowalla's test split, read once,
    ``AMPCF()`` over it scores 0.1566, against GF-CF's 0.1531 and BSPM's 0.1551
    (BENCHMARKS.md).
    ``flatness=0, item_power=0, beta=0.2`` is the previous default, GF-CF's filter; BSPM's
    sharpening (time 2.5, beta 0.1) validated lower, since its higher powers of P~ are taken
    on the top-``rank`` spectrum only. ``eta`` and ``user_weight``
    keep GF-CF's 0 and 1: lighter normalisations chosen on Gowalla's validation carve (0.1623
    against 0.1563 there) scored *lower* on its test split (see BENCHMARKS.md); None chooses
    them on a carve from :data:`GRAPH_DEGREE_GRID`.
    """

    rank: int = 448
    beta: float | None = 0.1
    time: float | None = 0.0
    eta: float | None = 0.0
    solver: str = "rk4"
    neighbours: int | None = None
    user_weight: float | None = 1.0
    flatness: float = 2.0
    item_power: float = 0.3

    def __post_init__(self):
        if self.solver not in ("rk4", "euler"):
            raise ValueError(f"solver must be 'rk4' or 'euler', got {self.solver!r}")
        if self.neighbours is not None and self.neighbours < 1:
            raise ValueError(
                f"neighbours must be >= 1 (votes kept per item), got {self.neighbours}"
            )
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.beta is not None and not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be finite and >= 0, got {self.beta}")
        if self.time is not None and not (math.isfinite(self.time) and self.time >= 0):
            raise ValueError(f"time must be finite and >= 0, got {self.time}")
        if self.eta is not None and not math.isfinite(self.eta):
            raise ValueError(f"eta must be finite, got {self.eta}")
        if self.user_weight is not None and not (
            math.isfinite(self.user_weight) and self.user_weight >= 0
        ):
            raise ValueError(f"user_weight must be finite and >= 0, got {self.user_weight}")
        if not (math.isfinite(self.flatness) and self.flatness >= 0):
            raise ValueError(f"flatness must be finite and >= 0, got {self.flatness}")
        if not math.isfinite(self.item_power):
            raise ValueError(f"item_power must be finite, got {self.item_power}")
        if self.flatness > 0 and self.time != 0:
            raise ValueError(
                f"time={self.time} sharpens GF-CF's response (BSPM) and flatness={self.flatness} "
                "selects ChebyCF's: give time=0 with flatness > 0"
            )

    @property
    def searched(self) -> bool:
        return None in (self.beta, self.time, self.eta, self.user_weight)

    def kept(self, n_active: int) -> int | None:
        """The neighbours each item keeps on a catalogue of `n_active` items (None: all)."""
        if self.neighbours is not None:
            return self.neighbours
        return None if n_active <= EXACT_MAX_ITEMS else AUTO_NEIGHBOURS


@dataclass(frozen=True)
class RunConfig:
    """How a filter fit runs: the validation carve's size, the item space it needs (AMP-CF's
    ``att_dim``; ``similar_items``), the device and the seed."""

    search_users: int = 5000
    att_dim: int = 64
    device: str = "auto"
    seed: int = 0

    def __post_init__(self):
        for name in ("search_users", "att_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:  # numpy's generators refuse it, deep in the fit
            raise ValueError(f"seed must be >= 0, got {self.seed}")


# -- spectra and item spaces ------------------------------------------------------------------


class Spectrum:
    """The top right singular vectors of ``R~ = D_u^-1/2 X D_i^-1/2``, with the degrees."""

    def __init__(self, X: sp.csr_matrix, rank: int, seed: int, device):
        import torch

        du = np.asarray(X.sum(1)).ravel()
        self.du = du.astype(np.float64)
        self.di = np.asarray(X.sum(0)).ravel().astype(np.float64)
        self.di_mhalf = np.where(self.di > 0, 1 / np.sqrt(np.maximum(self.di, 1e-30)), 0.0)
        self.di_half = np.sqrt(self.di)
        ru = np.where(du > 0, 1 / np.sqrt(np.maximum(du, 1e-30)), 0.0)
        #: X and its row scaling: the graph filter's votes are computed from them in the core.
        self.X, self.ru = X, ru
        R = _scaled_rows(X, ru, self.di_mhalf)
        self.R = R  # R~, which the graph filter's sharpening reuses
        k = max(1, min(rank, min(X.shape) - 1))
        #: Whether every nonzero singular value is here (then ``P~ = V^T diag(s^2) V`` exactly).
        self.complete = False
        if min(X.shape) <= 5000:
            k = max(1, min(rank, min(X.shape)))
            self.complete = k == min(X.shape)
            # Exact: the eigenvectors of the smaller Gram matrix. On CPU, LAPACK's subset
            # driver finds only the top k (about 3x faster than a full eigh at 3,000 items).
            if device.type == "cpu":
                Rd = R.toarray().astype(np.float64)
                small = Rd.shape[0] <= Rd.shape[1]
                G = Rd @ Rd.T if small else Rd.T @ Rd
                w, E = sla.eigh(G, subset_by_index=[len(G) - k, len(G) - 1], driver="evr")
                o = np.argsort(-w)
                s = np.sqrt(np.maximum(w[o], 0))
                vt = (E[:, o].T @ Rd) / np.maximum(s, 1e-12)[:, None] if small else E[:, o].T
                self.s, self.Vt = s, vt
                return
            Rd = torch.from_numpy(R.toarray()).to(device=device, dtype=torch.float64)
            if Rd.shape[0] <= Rd.shape[1]:
                w, U = torch.linalg.eigh(Rd @ Rd.T)
                o = torch.argsort(w, descending=True)[:k]
                s = torch.sqrt(torch.clamp(w[o], min=0))
                vt = (U[:, o].T @ Rd) / torch.clamp(s, min=1e-12)[:, None]
            else:
                w, V = torch.linalg.eigh(Rd.T @ Rd)
                o = torch.argsort(w, descending=True)[:k]
                s = torch.sqrt(torch.clamp(w[o], min=0))
                vt = V[:, o].T
            s, vt = s.cpu().numpy(), vt.cpu().numpy()
        else:
            v0 = np.random.default_rng(seed).standard_normal(min(R.shape))
            if R.shape[0] < R.shape[1]:
                from scipy.sparse.linalg import svds

                _, s, vt = svds(R, k=k, v0=v0)
            else:
                s, vt = _item_side_svd(R, k, v0)
            o = np.argsort(-s)
            s, vt = s[o], vt[o]
        self.s = s.astype(np.float64)
        self.Vt = vt.astype(np.float64)

    def item_space(self, dim: int) -> np.ndarray:
        """Unit item vectors (items x dim): the singular directions scaled by the singular
        values; zero rows for items without interactions."""
        out = np.empty((self.Vt.shape[1], min(dim, len(self.s))), np.float32)
        # A block of items at a time: whole, the float64 temporaries were four items x dim
        # arrays (0.4 GiB at 200,000 items) at the fit's peak. The same bits per row.
        for a in range(0, len(out), 1 << 15):
            Z = (self.Vt[:dim, a : a + (1 << 15)] * self.s[:dim, None]).T
            n = np.linalg.norm(Z, axis=1, keepdims=True)
            out[a : a + len(Z)] = np.where(n > 0, Z / np.maximum(n, 1e-12), 0.0)
        return out

    def low_pass(self, rank: int) -> tuple[np.ndarray, np.ndarray]:
        """GF-CF's ideal low-pass filter ``D^-1/2 V_r^T V_r D^1/2`` as its two factors
        (items x rank each): left ``D^-1/2 V_r^T``, right ``D^1/2 V_r^T``."""
        V = self.Vt[:rank].T
        return V * self.di_mhalf[:, None], V * self.di_half[:, None]


def _scaled_rows(X: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    """``diag(rows) X diag(cols)`` with the bits scipy's two products give (``rows x`` in their
    dtypes first, then times `cols` in float64), sharing X's indices and indptr and built a
    block of rows at a time: no intermediate matrix and no per-entry row array (on 34.5M
    interactions these were 0.4 GiB at the fit's peak)."""
    data = np.empty(X.nnz, np.float64)
    counts = np.diff(X.indptr)
    r0 = 0
    while r0 < X.shape[0]:
        r1 = int(np.searchsorted(X.indptr, X.indptr[r0] + (1 << 20), side="right")) - 1
        r1 = min(max(r1, r0 + 1), X.shape[0])
        lo, hi = X.indptr[r0], X.indptr[r1]
        scaled = np.repeat(rows[r0:r1], counts[r0:r1]) * X.data[lo:hi]
        data[lo:hi] = scaled.astype(np.float64) * cols[X.indices[lo:hi]]
        r0 = r1
    return sp.csr_matrix((data, X.indices, X.indptr), shape=X.shape)


def _item_side_svd(R: sp.csr_matrix, k: int, v0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top `k` singular values and right vectors of R (users x items, users >= items), as
    scipy's ``svds`` finds them (ARPACK on ``R^T R``, the same `v0`), without its users x k
    arrays: svds then takes the SVD of ``R Q`` (1M users x 64 in float64 is 512 MiB, twice),
    here the Rayleigh-Ritz step on the k x k ``(R Q)^T (R Q)`` summed over blocks of users."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    gram = LinearOperator(
        (R.shape[1],) * 2,
        matvec=lambda v: R.T @ (R @ v),
        matmat=lambda v: R.T @ (R @ v),
        dtype=np.float64,
    )
    _, Q = eigsh(gram, k=k, tol=0, v0=v0)
    Q, _ = np.linalg.qr(Q)
    B = np.zeros((k, k))
    step = max(1, (1 << 22) // max(k, 1))  # 32 MiB of R Q at a time
    for a in range(0, R.shape[0], step):
        RQ = R[a : a + step] @ Q
        B += RQ.T @ RQ
    w, E = np.linalg.eigh(B)
    return np.sqrt(np.maximum(w, 0)), (Q @ E).T


# -- the dense filter -------------------------------------------------------------------------


def weighted_gram(X: sp.csr_matrix, user_weight: float, active: np.ndarray, dtype) -> np.ndarray:
    """``X^T diag(|H_u|^-user_weight) X`` over the `active` items, dense."""
    cu = np.asarray(X.sum(1)).ravel()
    w = np.where(cu > 0, np.maximum(cu, 1.0) ** (-user_weight), 0.0)
    Xa = X[:, active]
    return np.asarray((Xa.T @ sp.diags(w) @ Xa).toarray(), dtype=dtype)


def dan_ease(G: np.ndarray, lam: float, dropout: float, device) -> np.ndarray:
    """B (active x active, float32) from the weighted Gram G, which it overwrites. On CPU, B is
    computed in G's own memory (LAPACK's in-place Cholesky and inverse): a fit holds one items
    x items matrix here, not five."""
    d = np.diagonal(G).astype(np.float64)
    pos = d[d > 0]
    base = lam * (pos.mean() if len(pos) else 1.0)
    reg = np.maximum(base + dropout / (1.0 - dropout) * d, 1e-6)
    G[np.diag_indices_from(G)] += reg.astype(G.dtype)
    if device.type != "cpu":
        import torch

        g = torch.from_numpy(G).to(device)
        P = torch.cholesky_inverse(torch.linalg.cholesky(g))
        del g
        B = P / (-torch.diagonal(P))[None, :]
        B.fill_diagonal_(0.0)
        return B.to(torch.float32).cpu().numpy()
    # G is symmetric and C-ordered: its transpose is the same matrix in Fortran order, which
    # LAPACK overwrites without a copy. The inverse lands in the upper triangle only.
    F = G.T
    potrf, potri = sla.get_lapack_funcs(("potrf", "potri"), (F,))
    F, info = potrf(F, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"the regularised Gram matrix is not positive definite: {info}")
    F, info = potri(F, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"cannot invert the regularised Gram matrix ({info})")
    P = F.T  # C-ordered again, the inverse in its lower triangle (F's upper one)
    n = len(P)
    step = max(1, (1 << 22) // max(n, 1))  # the upper triangle from the lower, in row blocks
    for i in range(0, n, step):
        j = min(n, i + step)
        P[i:j, j:] = P[j:, i:j].T
        blk = P[i:j, i:j]
        blk[np.triu_indices(j - i, 1)] = blk.T[np.triu_indices(j - i, 1)]
    diag = -np.diagonal(P).copy()
    P /= diag[None, :]
    np.fill_diagonal(P, 0.0)
    return P if P.dtype == np.float32 else P.astype(np.float32)


@dataclass
class DenseFilter:
    """``F = B + c L``: B over the active items, L the low-pass of `spectrum`."""

    active: np.ndarray
    B: np.ndarray
    spectrum: Spectrum
    rank: int
    weight: float  # c, absolute

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        """Dense scores (rows x items, float32) of history rows."""
        out = np.zeros((rows.shape[0], rows.shape[1]), np.float32)
        out[:, self.active] = rows[:, self.active] @ self.B
        if self.rank and self.weight:
            left, right = self.spectrum.low_pass(self.rank)
            out += (self.weight * (rows @ left) @ right.T).astype(np.float32)
        return out

    def scale(self, X: sp.csr_matrix, rank: int, seed: int) -> float:
        """``||X_s B||_F / ||X_s L||_F`` on up to 1,000 rows: makes c scale-free."""
        rng = np.random.default_rng(seed)
        live = np.flatnonzero(np.diff(X.indptr) > 0)
        rows = X[np.sort(rng.choice(live, size=min(1000, len(live)), replace=False))]
        left, right = self.spectrum.low_pass(rank)
        sb = np.linalg.norm(rows[:, self.active] @ self.B)
        sl = np.linalg.norm((rows @ left) @ right.T)
        return float(sb / max(sl, 1e-12))

    def tensors(self, n_items: int) -> dict[str, np.ndarray]:
        """The filter as the model file stores it: dense ``votes`` over the whole catalogue
        (zero outside the active items) and the low-pass pair ``low_left`` / ``low_right``."""
        votes = np.zeros((n_items, n_items), np.float32)
        votes[np.ix_(self.active, self.active)] = self.B
        out = {"votes": votes}
        if self.rank and self.weight:
            left, right = self.spectrum.low_pass(self.rank)
            out["low_left"] = (self.weight * left).astype(np.float32)
            out["low_right"] = right.astype(np.float32)
        return out


# -- the graph filter (large catalogues) ------------------------------------------------------


def bspm_coefficients(time: float, solver: str = "rk4") -> list[float]:
    """``c_k = (-T)^k / k!`` of one step of BSPM's ODE ``dy/dt = -y P~`` over [0, T], as a
    polynomial in P~: k <= 4 for ``rk4`` (one Runge-Kutta step of a linear ODE is its 4th-order
    Taylor polynomial), k <= 1 for ``euler``."""
    top = 1 if solver == "euler" else 4
    return [(-time) ** k / math.factorial(k) for k in range(top + 1)]


#: The order of ChebyCF's Chebyshev interpolation (the authors' K).
CHEBY_ORDER = 8


def plateau_response(lam: np.ndarray, flatness: float, order: int = CHEBY_ORDER) -> np.ndarray:
    """ChebyCF's response at eigenvalues `lam` of P~ (float64), as the authors compute it: on
    the spectrum of ``L~ = I - 2 P~`` (x = 1 - 2 lam), the plateau ``1/2 + |x|^flatness / 2``
    below 0 and ``1/2 - x^flatness / 2`` above (1 at lam = 1, 0 at lam = 0; flatter for a
    larger flatness), taken at ``cos((order - k) pi / order)`` and interpolated through the
    ``order + 1`` Chebyshev nodes by ``sum_k c_k T_k(x)`` (both rounded as the authors'
    code rounds them)."""
    x = 1.0 - 2.0 * np.asarray(lam, dtype=np.float64)
    return chebyshev_coefficients(flatness, order) @ _chebyshev(x, order)


def chebyshev_coefficients(flatness: float, order: int = CHEBY_ORDER) -> np.ndarray:
    """The ``c_k`` of :func:`plateau_response` (k = 0..order): the polynomial in ``L~`` that
    ChebyCF applies (the harness's exact ChebyCF runs it as ``order`` passes of P~)."""
    k = np.arange(order + 1)
    x = np.cos((order - k) / order * math.pi).round(3)
    target = np.where(x < 0, 0.5 + 0.5 * np.abs(x) ** flatness, 0.5 - 0.5 * np.abs(x) ** flatness)
    target = target.round(3)
    nodes = np.cos(((order + 1) + 0.5 - (k + 1)) / (order + 1) * math.pi)
    c = (_chebyshev(nodes, order) * target).sum(1) * (2 / (order + 1))
    c[0] /= 2
    return c


def _chebyshev(x: np.ndarray, order: int) -> np.ndarray:
    """``T_k(x)`` for k = 0..order (rows)."""
    T = [np.ones_like(x), x]
    for _ in range(2, order + 1):
        T.append(2 * x * T[-1] - T[-2])
    return np.stack(T[: order + 1])


def graph_spectrum(X: sp.csr_matrix, cfg: GraphConfig, run: RunConfig, device) -> Spectrum:
    """The spectrum a graph filter needs: whole when it can be (up to 5,000 users or items)
    and the filter may sharpen, so BSPM's powers of P~ are exact; else the top ``cfg.rank``."""
    whole = min(X.shape) <= 5000 and (cfg.time is None or cfg.time > 0)
    rank = min(X.shape) if whole else max(run.att_dim, cfg.rank)
    spec = Spectrum(X, max(rank, run.att_dim), run.seed, device)
    if cfg.time == 0:
        # Only sharpening reads R~ (float64, 12 bytes an interaction) again: the votes are
        # computed from X, so it goes before them.
        spec.R = None
    return spec


def graph_votes(spec: Spectrum, cfg: GraphConfig) -> dict[str, np.ndarray]:
    """The graph filter's item-item part ``P diag(d^-eta)`` as the core's sparse ``votes``
    (``P = R^T R`` with ``R = D_u^((1 - user_weight) / 2) R~``: GF-CF's ``P~`` at
    ``user_weight`` 1): whole, or each item's ``cfg.kept(...)`` largest votes. Computed by the
    core from X and the degree scalings, a row of P at a time: neither R nor P is held whole,
    and the values are those of the float32 product ``R^T R`` scipy would give."""
    after = None
    if cfg.user_weight != 1.0:
        after = np.where(spec.du > 0, np.maximum(spec.du, 1e-30) ** ((1 - cfg.user_weight) / 2), 0)
    indptr, indices, data = _core.graph_votes(
        spec.X,  # float32, as every fit's X is (check_train, scaled)
        _post(spec, cfg),
        keep=cfg.kept(int((spec.di > 0).sum())),
        rows=spec.ru.astype(np.float64),
        cols=spec.di_mhalf,
        rows_after=after,
    )
    # A row's scale leaves its order, so the votes kept are those of the unscaled row. Scaled
    # a block of rows at a time: a factor per vote for the whole of P~ would add half of the
    # votes' memory to the fit's peak.
    scale = (_tail_slope(spec, cfg) * _pre(spec, cfg)).astype(np.float32)
    if (scale != 1.0).any():
        counts = np.diff(indptr)
        for a in range(0, len(scale), 4096):
            b = min(a + 4096, len(scale))
            data[indptr[a] : indptr[b]] *= np.repeat(scale[a:b], counts[a:b])
    return {"votes_indptr": indptr, "votes_indices": indices, "votes_data": data}


def _post(spec: Spectrum, cfg: GraphConfig) -> np.ndarray:
    """The scores' item scaling ``d^(item_power - eta)`` (0 for items without interactions)."""
    return np.where(spec.di > 0, np.maximum(spec.di, 1.0) ** (cfg.item_power - cfg.eta), 0.0)


def _pre(spec: Spectrum, cfg: GraphConfig) -> np.ndarray:
    """The history's item weights ``d^-item_power`` (1 for items without interactions: they
    vote for nothing)."""
    if cfg.item_power == 0:
        return np.ones(len(spec.di))
    return np.where(spec.di > 0, np.maximum(spec.di, 1.0) ** (-cfg.item_power), 1.0)


def _tail_slope(spec: Spectrum, cfg: GraphConfig) -> float:
    """b, P~'s response beyond the top-`rank` spectrum taken as ``b lam``: 1 for GF-CF (the
    response is lam itself); for ChebyCF the chord of the plateau response from 0 to the last
    kept eigenvalue, so that the votes' ``b P~`` meets the exact head at the cut. (The
    response's value at 0, a multiple of the identity, only scores the seen items.) On
    Gowalla's validation carve this form validates as the authors' exact polynomial does
    (BENCHMARKS.md)."""
    if cfg.flatness == 0:
        return 1.0
    r = min(cfg.rank, len(spec.s))
    lam = float(spec.s[r - 1]) ** 2 if r else 0.0
    h = max(lam, 1e-6)  # a vanishing cut: the response's slope at 0
    f0, f1 = plateau_response(np.array([0.0, h]), cfg.flatness)
    return float((f1 - f0) / h)


def graph_filter(spec: Spectrum, cfg: GraphConfig, votes=None) -> dict[str, np.ndarray]:
    """The graph filter as core tensors: ChebyCF's with ``flatness > 0`` (its response on the
    top-r directions, ``b P~`` beyond, :func:`_tail_slope`; the history weighted
    ``d^-item_power`` and the scores ``d^item_power``, as in every form below).

    Else GF-CF's graph filter, with BSPM's sharpening when ``time > 0`` (Choi et al.,
    SIGIR 2023: one Runge-Kutta step of the blurring ODE over [0, T] with the ideal low-pass as
    the sharpening start), as core tensors. With T = 0 it is GF-CF exactly:
    ``d^-eta (x P~ + beta x D^-1/2 V^T V D^1/2)``.

    With ``P~ = R~^T R~`` (sparse, items x items) and its top-r spectrum ``V, s``, a row x is
    scored ``d^-eta (x P~ + (x V^T) diag(w) V + (x D^-1/2 V^T) N)``, where
    ``w = sum_{k=1..4} c_k s^(2k+2)``, ``N = beta sum_{k=0..4} c_k V D^1/2 P~^k`` and
    ``c_k`` of :func:`bspm_coefficients`. ``x P~`` is exact; the higher powers of P~ are exact
    when the spectrum is complete (catalogues or user bases up to 5,000, where it is computed
    whole: then the scores are BSPM's to float precision), else taken on the top-r spectrum.
    With ``cfg.neighbours`` (or above :data:`EXACT_MAX_ITEMS` items) the ``x P~`` term keeps
    each item's top neighbours only (:func:`graph_votes`); the low-rank part is unchanged.
    `votes`, when given, are :func:`graph_votes` of the same spectrum and ``eta`` (a search
    computes them once)."""
    r = min(cfg.rank, len(spec.s))
    c = bspm_coefficients(cfg.time, cfg.solver)
    terms = len(c)
    V = spec.Vt[:r].astype(np.float32)
    M = N = None  # GF-CF's ideal low pass (ChebyCF's needs neither)
    sharpen = cfg.time != 0
    if sharpen:  # P~'s powers; a float32 R and its transpose only for them
        R = spec.R.astype(np.float32)
        RT = R.T.tocsr()
    if cfg.flatness == 0:
        M = V * spec.di_half.astype(np.float32)
        N = c[0] * M
        for k in range(1, terms if sharpen else 1):
            M = np.ascontiguousarray((RT @ (R @ M.T)).T, dtype=np.float32)
            N = N + c[k] * M
        N *= cfg.beta
    post = _post(spec, cfg)
    pre = _pre(spec, cfg).astype(np.float32)
    if cfg.flatness > 0:
        # ChebyCF: the head's exact response less what the votes' b P~ gives it, plus the
        # ideal low pass, on one set of r directions.
        lam = spec.s[:r].astype(np.float64) ** 2
        f = plateau_response(np.append(lam, 0.0), cfg.flatness)
        w = f[:-1] - f[-1] - _tail_slope(spec, cfg) * lam + cfg.beta
        left = [(V * pre).T * w.astype(np.float32)]
        right = [V.T]
    else:
        left = [(V * (spec.di_mhalf.astype(np.float32) * pre)).T]
        right = [N.T]
    if sharpen:  # without sharpening w = 0: its r columns would only cost serving time
        m = len(spec.s) if spec.complete else r
        m = int((spec.s[:m] > 1e-6 * spec.s[0]).sum())  # null directions add nothing
        Vm = spec.Vt[:m].astype(np.float32)
        s2 = spec.s[:m] ** 2
        w = sum(c[k] * s2 ** (k + 1) for k in range(1, terms))
        left.insert(0, (Vm * pre).T * w.astype(np.float32))
        right.insert(0, Vm.T)
    low = {
        "low_left": np.ascontiguousarray(np.hstack(left), np.float32),
        "low_right": np.ascontiguousarray(np.hstack(right) * post[:, None], np.float32),
    }
    # The low-rank part's intermediates go before the votes are computed: P~ is the fit's
    # largest array, and these would sit beside it at the peak.
    del V, M, N, left, right
    if sharpen:
        del R, RT
    return {**(graph_votes(spec, cfg) if votes is None else votes), **low}


# -- the validation search --------------------------------------------------------------------


def base_grid(n_active: int) -> list[dict]:
    """The size-adaptive grid of (lam, user_weight): each entry costs one items x items
    inverse."""
    if n_active <= 4000:
        return [dict(lam=lam, user_weight=b) for lam in (5.0, 10.0, 20.0) for b in (0.25, 0.5)]
    return [dict(lam=lam, user_weight=0.5) for lam in (5.0, 10.0, 20.0)]


#: (rank, low_weight) pairs tried for the low-rank part.
LOW_GRID = [(0, 0.0), (32, 0.1), (32, 0.3), (64, 0.1), (64, 0.3)]


def _val_ndcg(scores: np.ndarray, seen: sp.csr_matrix, held: sp.csr_matrix) -> float:
    ids, _ = _core.top_n(scores, SEARCH_K, seen, None, None)
    return mean_ndcg(ids, held, SEARCH_K)


def _dense_filter(X, spec, lam, user_weight, rank, low_weight, dropout, seed, device):
    active = np.flatnonzero(np.asarray(X.sum(0)).ravel() > 0)
    dtype = np.float64 if len(active) < 4000 else np.float32
    G = weighted_gram(X, user_weight, active, dtype)
    f = DenseFilter(active, dan_ease(G, lam, dropout, device), spec, 0, 0.0)
    if rank and low_weight:
        f.rank, f.weight = rank, low_weight * f.scale(X, rank, seed)
    return f


def _unique(dicts) -> list[dict]:
    """The distinct dicts, in order."""
    return [dict(t) for t in dict.fromkeys(tuple(d.items()) for d in dicts)]


class _Search:
    """A validation search's bookkeeping: every setting's record with its NDCG, the best one,
    the progress bar and the ``on_step(step, ndcg)`` callback."""

    def __init__(self, bar, on_step, total: int):
        self.bar, self.on_step = bar, on_step
        self.record: list[dict] = []
        self.best: tuple[float, dict] = (-1.0, {})
        if bar is not None:
            bar.reset(total=total)

    def add(self, setting: dict, ndcg: float) -> None:
        rec = {**setting, f"ndcg@{SEARCH_K}": ndcg}
        self.record.append(rec)
        if self.on_step is not None:
            self.on_step(len(self.record) - 1, ndcg)
        if ndcg > self.best[0]:
            self.best = (ndcg, rec)
        if self.bar is not None:
            self.bar.update(1)

    def chosen(self, *keys: str) -> dict:
        return {k: self.best[1][k] for k in keys}


def search(
    carve, cfg: EASEConfig, run: RunConfig, device, bar, on_step=None
) -> tuple[dict, list[dict]]:
    """Chooses the dense filter's settings left as None on `carve` (:func:`validation_carve`);
    ``on_step(step, ndcg)`` after each setting tried."""
    fit, seen, truth = carve
    spec = Spectrum(fit, max(64, run.att_dim, cfg.rank or 0), run.seed, device)
    n_active = int((np.asarray(fit.sum(0)).ravel() > 0).sum())

    def pick(given, value):
        return value if given is None else given

    grid = _unique(
        dict(lam=pick(cfg.lam, g["lam"]), user_weight=pick(cfg.user_weight, g["user_weight"]))
        for g in base_grid(n_active)
    )
    lows = _unique(
        dict(rank=pick(cfg.rank, r), low_weight=pick(cfg.low_weight, c)) for r, c in LOW_GRID
    )
    track = _Search(bar, on_step, len(grid) * len(lows))
    projected = {}  # rank -> (seen D^-1/2 V_r^T, D^1/2 V_r^T): the same for every base
    for g in grid:
        f = _dense_filter(
            fit, spec, g["lam"], g["user_weight"], 0, 0.0, cfg.dropout, run.seed, device
        )
        plain = f.scores(seen)
        scales = {}  # rank -> this base's scale, shared by the weights tried at that rank
        for low in lows:
            r, c = low["rank"], low["low_weight"]
            s = plain
            if r and c:
                if r not in projected:
                    left, right = spec.low_pass(r)
                    projected[r] = (seen @ left, right)
                if r not in scales:
                    scales[r] = f.scale(fit, r, run.seed)
                x_left, right = projected[r]
                s = plain + (c * scales[r] * x_left @ right.T).astype(np.float32)
            track.add({**g, "rank": r, "low_weight": c}, _val_ndcg(s, seen, truth))
        del f, plain
    return track.chosen("lam", "user_weight", "rank", "low_weight"), track.record


#: (beta, time) pairs tried for a graph filter's settings left as None.
GRAPH_GRID = [(b, t) for t in (0.0, 1.0, 2.5) for b in (0.0, 0.1, 0.2, 0.3, 0.5)]
#: (user_weight, eta) pairs tried for a graph filter's degree exponents left as None: GF-CF's
#: (1, 0) and lighter user and item normalisations (benches/graph_degrees.py on Gowalla's
#: validation carve: 0.1563 at (1, 0), 0.1623 at (0.6, -0.1); not the default: see GraphConfig).
GRAPH_DEGREE_GRID = [(w, e) for w in (1.0, 0.8, 0.6, 0.4) for e in (0.0, -0.1)]


def search_graph(carve, cfg: GraphConfig, run: RunConfig, device, bar, on_step=None):
    """Chooses the graph filter's settings left as None (``beta`` / ``time`` from
    :data:`GRAPH_GRID`, ``user_weight`` / ``eta`` from :data:`GRAPH_DEGREE_GRID`) on `carve`,
    scoring each setting's filter through the Rust scorer. The votes are computed once per
    (``user_weight``, ``eta``) and shared by the (``beta``, ``time``) settings."""
    import json
    from dataclasses import replace

    fit, seen, truth = carve
    spec = graph_spectrum(fit, cfg, run, device)
    degrees = _unique(
        dict(
            user_weight=w if cfg.user_weight is None else cfg.user_weight,
            eta=e if cfg.eta is None else cfg.eta,
        )
        for w, e in GRAPH_DEGREE_GRID
    )
    grid = _unique(
        dict(beta=b if cfg.beta is None else cfg.beta, time=t if cfg.time is None else cfg.time)
        for b, t in GRAPH_GRID
    )
    track = _Search(bar, on_step, len(degrees) * len(grid))
    manifest = json.dumps({"kind": "graph_filter", "n_items": fit.shape[1]})
    for d in degrees:
        votes = graph_votes(spec, replace(cfg, **d))  # shared by the (beta, time) settings
        for g in grid:
            core = _core.build(manifest, graph_filter(spec, replace(cfg, **d, **g), votes))
            ids = core.recommend(seen, SEARCH_K, True, None, None)[0]
            del core
            track.add({**d, **g}, mean_ndcg(ids, truth, SEARCH_K))
        del votes
    return track.chosen("beta", "time", "user_weight", "eta"), track.record


def validation_carve(X: sp.csr_matrix, run: RunConfig, validation=None):
    """``(fit, seen, truth)``: the matrix a search fits on, and the validation users' input
    rows and held-out items. From `validation`, a (fold-in, held-out) pair of matrices with X's
    items, when given (fit on all of X); else carved from X (:func:`personae.data.carve_validation`:
    up to ``run.search_users`` users lose 20% of their items)."""
    from personae.data import carve_validation

    if validation is not None:
        seen, truth = validation
        return X, seen, truth
    fit, held, users = carve_validation(X, run.search_users, 0.2, run.seed)
    return fit, fit[users], held[users]


def scaled(X: sp.csr_matrix) -> sp.csr_matrix:
    """X divided by its largest weight: the same filter (and lists) at any weight scale, e.g.
    timestamps in nanoseconds, and no overflow near float32's limit."""
    top = float(X.data.max()) if X.nnz else 0.0
    if top > 0 and top != 1:
        X = sp.csr_matrix(((X.data / top).astype(np.float32), X.indices, X.indptr), X.shape)
    return X


def fit_filter(
    X: sp.csr_matrix,
    cfg: EASEConfig | GraphConfig | tuple[EASEConfig, GraphConfig] | None,
    run: RunConfig,
    show_progress: bool = True,
    callback=None,
    validation=None,
):
    """Fits a filter on X (users x items, non-negative, checked). ``cfg`` None picks EASE up
    to :data:`DENSE_MAX_ITEMS` active items, the graph filter above; a pair of configs makes the
    same choice between them. Returns ``(tensors,
    summary, spectrum, counts)``: the filter's core tensors (``votes*``, ``low_*``), what the
    fit chose and measured, the spectrum of X (for item spaces) and the items' training
    counts. ``callback(step, seconds, ndcg)`` after each setting of the validation search, or
    once at the end (``ndcg`` None) when nothing is searched."""
    from personae.train.loop import pick_device

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with the train extra
        tqdm = None
    t0 = time.perf_counter()
    device = pick_device(run.device)
    X = scaled(X)
    if X.nnz and X.data.min() > 0:  # no stored zeros: count entries without a copy of X
        counts = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float32)
    else:
        counts = np.asarray((X > 0).sum(0)).ravel().astype(np.float32)
    n_active = int((counts > 0).sum())
    if n_active == 0:
        raise ValueError("user_items has no interactions: nothing to fit")
    if cfg is None:
        cfg = (EASEConfig(), GraphConfig())
    if isinstance(cfg, tuple):  # the automatic choice, by catalogue size
        cfg = cfg[0] if n_active <= DENSE_MAX_ITEMS else cfg[1]
    dense = isinstance(cfg, EASEConfig)
    summary: dict = {"filter": "ease" if dense else "graph_filter", "device": str(device)}
    if cfg.searched:
        bar = None
        if show_progress and tqdm is not None:
            bar = tqdm(total=1, desc="validation search", unit="setting")
        step = None
        if callback is not None:

            def step(i: int, ndcg: float) -> None:
                callback(i, time.perf_counter() - t0, ndcg)

        try:
            carve = validation_carve(X, run, validation)
            if dense:
                chosen, record = search(carve, cfg, run, device, bar, step)
            else:
                chosen, record = search_graph(carve, cfg, run, device, bar, step)
        finally:
            if bar is not None:
                bar.close()
        summary["search"] = record
        summary["val_ndcg"] = max(r[f"ndcg@{SEARCH_K}"] for r in record)
        summary["val_k"] = SEARCH_K
        cfg = type(cfg)(
            **{**cfg.__dict__, **{k: v for k, v in chosen.items() if getattr(cfg, k) is None}}
        )
    if dense:
        settings = {k: getattr(cfg, k) for k in ("lam", "user_weight", "rank", "low_weight")}
        settings = {
            "lam": 10.0 if settings["lam"] is None else settings["lam"],
            "user_weight": 0.5 if settings["user_weight"] is None else settings["user_weight"],
            "rank": 64 if settings["rank"] is None else settings["rank"],
            "low_weight": 0.1 if settings["low_weight"] is None else settings["low_weight"],
        }
        spec = Spectrum(X, max(run.att_dim, settings["rank"]), run.seed, device)
        f = _dense_filter(
            X,
            spec,
            settings["lam"],
            settings["user_weight"],
            settings["rank"],
            settings["low_weight"],
            cfg.dropout,
            run.seed,
            device,
        )
        tensors = f.tensors(X.shape[1])
        summary["settings"] = {**settings, "dropout": cfg.dropout}
    else:
        t1 = time.perf_counter()
        spec = graph_spectrum(X, cfg, run, device)
        summary["spectrum_seconds"] = time.perf_counter() - t1
        tensors = graph_filter(spec, cfg)
        keys = ("rank", "beta", "time", "eta", "user_weight", "solver", "flatness", "item_power")
        summary["settings"] = {k: getattr(cfg, k) for k in keys}
        summary["settings"]["neighbours"] = cfg.kept(n_active)
        # b of the votes' tail b P~ (1 for GF-CF): what an exact reference needs to rebuild
        # the votes the pruning dropped.
        summary["tail_slope"] = _tail_slope(spec, cfg)
    summary["seconds"] = time.perf_counter() - t0
    if callback is not None and "search" not in summary:
        # Nothing was searched: one call when the fit is done, so a progress callback (and
        # implicit's "called at least once") still hears from the fit.
        callback(0, summary["seconds"], None)
    return tensors, summary, spec, counts
