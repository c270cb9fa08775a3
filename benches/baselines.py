"""The models of the accuracy harness (``benches/accuracy.py``): baselines and personae's own.

Every family has a validation grid (:func:`grid`) and :func:`fit` ``(name, X, config) -> model``,
where the model has either

- ``recommend(rows, n) -> (ids, scores)``: the personae models (popularity, EASE, the graph
  filters, Mult-VAE, AMP-CF), served by the Rust core with seen items masked; or
- ``score(users, rows) -> dense scores``: ``rows`` is the CSR of the scored users' fit
  interactions (their input), ``users`` their row indices in X (only ALS needs them: it learns
  one vector per training user). The harness masks seen items and takes the top-k with
  ``personae.top_n``.

Families (the research prototype's, cleaned up; each pinned by ``tests/test_baselines.py``):

- ``popularity``: ``personae.Popularity``.
- ``ease``: EASE (Steck 2019), ``B = I - P diag(1 / diag P)``, ``P = (X^T X + lam I)^-1``:
  ``personae.EASE`` with Steck's settings (:func:`ease`). :class:`EASEBig` is the float32
  in-place Cholesky form for Gowalla's 41k items (one n x n matrix; the library holds two).
- ``als``: implicit's CPU ALS (confidence ``1 + alpha r``).
- ``gfcf``: GF-CF (Shen et al. 2021), ``r (R~^T R~ + alpha D^-1/2 U U^T D^1/2)``:
  ``personae.GraphFilter(rank, beta=alpha, time=0, flatness=0, item_power=0)``.
- ``bspm``: BSPM (Choi et al. 2023), the authors' default path: ``y0 = r P~ + beta r D^-1/2
  U U^T D^1/2``, then the sharpening ODE ``dy/dt = -y P~`` over ``[0, T_s]`` in ``K_s`` steps:
  ``personae.GraphFilter(rank, beta, time=T_s, solver)``, exact for ``K_s = 1`` up to 5,000
  users or items; :class:`BSPM` (numpy, exact powers of P~) above (Gowalla) and for K_s > 1.
- ``chebycf``: ChebyCF (Kim et al. 2025), the authors' Chebyshev-interpolated plateau filter
  (:class:`ChebyCF`, numpy, exact); Gowalla only.
- The validation grids of GF-CF and BSPM: :class:`GraphScorer` reads every configuration
  from shared per-batch powers ``Y P~^k`` of :class:`NormGraph` (exact for ``K_s = 1``: one
  rk4 step of a linear ODE is its 4th-order Taylor polynomial ``sum_k (-T P~)^k / k!``, one
  Euler step the 1st-order one); the chosen setting is refitted with the library.
- ``multvae``: ``personae.MultVAE`` on CPU, early-stopped on the validation split.
- ``ampcf``: ``personae.AMPCF()`` with default arguments only (its fit runs its own search on
  a carve of the matrix it is given).
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.linalg import svds

import personae

# ----------------------------------------------------------------------------- grids

GRIDS: dict[str, list[dict]] = {
    "popularity": [{}],
    "ease": [{"lam": x} for x in [5, 10, 20, 50, 100, 200, 300, 500, 1000, 2000, 5000]],
    "als": [
        {"factors": f, "regularization": r, "alpha": a, "iterations": 15}
        for f, r, a in itertools.product([64, 128, 256], [1.0, 10.0, 30.0], [1.0, 3.0, 10.0])
    ],
    "gfcf": [
        {"alpha": a, "rank": r}
        for a, r in itertools.product([0.0, 0.1, 0.3, 0.5, 1.0, 2.0], [16, 32, 64, 128, 256, 448])
    ],
    "bspm": [
        {"beta": b, "rank": r, "T_s": t}
        for b, r, t in itertools.product(
            [0.0, 0.1, 0.2, 0.3, 0.5], [32, 64, 128, 256, 448], [0.25, 0.5, 1.0, 1.5, 2.5, 3.5]
        )
    ],
    # Constructor arguments (the training budget, epochs, patience, eval_k and device, is set by
    # the harness). The first is the paper's schedule, personae's default until the runs in
    # BENCHMARKS.md (stored there as {}); the third is today's default.
    "multvae": [
        {"total_anneal_steps": 200_000, "anneal_cap": 0.2},
        {"total_anneal_steps": 1, "anneal_cap": 0.2},
        {"total_anneal_steps": 1, "anneal_cap": 0.5},
        {"total_anneal_steps": 1, "anneal_cap": 0.5, "dropout": 0.7},
        {"total_anneal_steps": 1, "anneal_cap": 1.0, "dropout": 0.7},
        {"total_anneal_steps": 1, "anneal_cap": 0.8, "dropout": 0.6},
        {"total_anneal_steps": 1, "anneal_cap": 0.5, "dropout": 0.7, "hidden": 200, "latent": 64},
        {"total_anneal_steps": 1, "anneal_cap": 0.2, "dropout": 0.7, "hidden": 200, "latent": 64},
    ],
    "ampcf": [{}],
}

GOWALLA_GRIDS: dict[str, list[dict]] = {
    "als": [
        {"factors": f, "regularization": r, "alpha": a, "iterations": 15}
        for f, r, a in itertools.product([128, 256], [1.0, 10.0], [1.0, 10.0])
    ],
    "gfcf": [
        {"alpha": a, "rank": r}
        for a, r in itertools.product([0.0, 0.1, 0.2, 0.3, 0.5], [128, 256, 448])
    ],
    "bspm": [
        {"beta": b, "rank": r, "T_s": t, "solver": "rk4"}
        for b, r, t in itertools.product(
            [0.1, 0.2, 0.3, 0.5], [256, 448], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
        )
    ]
    + [
        {"beta": b, "rank": r, "T_s": t, "solver": "euler"}
        for b, r, t in itertools.product([0.2, 0.3], [256, 448], [0.1, 0.2, 0.3])
    ],
    # One Mult-VAE epoch takes ~100 s on 2 CPU cores here: the current defaults and the best
    # configuration of the Gowalla sweep in BENCHMARKS.md (KL weight 0.5 from the first step,
    # dropout 0.7) only.
    "multvae": [{}, {"total_anneal_steps": 1, "anneal_cap": 0.5, "dropout": 0.7}],
    # The authors' Gowalla setting (phi 1.5, beta 0.4, alpha 0.2, rank 512) and its
    # neighbourhood; a wider scratch grid (phi 1-3, beta 0.3-0.5, alpha 0-0.3, rank 256 / 512)
    # chose the same best setting (BENCHMARKS.md).
    "chebycf": [
        {"phi": p, "beta": b, "alpha": a, "rank": 512}
        for p, b, a in itertools.product([1.5, 2.0, 3.0], [0.3, 0.4], [0.1, 0.2])
    ],
}

# The synthetic data (12 clean taste clusters) pushed EASE and GF-CF to their grids' edges in
# the research runs: extended there.
EXTRA: dict[str, dict[str, list[dict]]] = {
    "synthetic": {
        "ease": [{"lam": x} for x in [10000, 20000, 50000]],
        "gfcf": [
            {"alpha": a, "rank": r} for a, r in itertools.product([5.0, 10.0], [8, 12, 16, 32])
        ],
    }
}


def grid(name: str, dataset: str) -> list[dict]:
    """The validation grid of family `name` on `dataset`."""
    base = GOWALLA_GRIDS[name] if dataset == "gowalla" and name in GOWALLA_GRIDS else GRIDS[name]
    return [dict(c) for c in base] + [dict(c) for c in EXTRA.get(dataset, {}).get(name, [])]


# ----------------------------------------------------------------------------- popularity


class Popularity:
    """``personae.Popularity``: the item counts of X, ties to the lower index."""

    def __init__(self, X):
        self.model = personae.Popularity().fit(X, show_progress=False)

    def recommend(self, rows, n):
        return self.model.recommend(rows, n)


# ----------------------------------------------------------------------------- EASE


def ease(X, lam: float):
    """``personae.EASE`` as Steck's EASE (no user weighting, no dropout penalty, no low-pass
    part) with the harness's absolute ``lam``: the library's lam is relative to the mean of
    diag(X^T X), so it is divided by that mean here. Served (and ranked) by the Rust core."""
    X = sp.csr_matrix(X, dtype=np.float32)
    deg = np.asarray(X.multiply(X).sum(0)).ravel()
    mean = float(deg[deg > 0].mean())
    model = personae.EASE(lam=lam / mean, user_weight=0.0, dropout=0.0, rank=0, device="cpu")
    return model.fit(X, show_progress=False)


class EASEBig:
    """EASE for many items, in float32 and in place (one n x n matrix plus LAPACK's work):
    ``G = X^T X + lam I`` densified in column slabs -> Cholesky -> inverse (``spotrf`` /
    ``spotri``, overwriting) -> ``B = -P / diag(P)`` with a zero diagonal. 41k items: 6.7 GB."""

    def __init__(self, X, lam, step: int = 4096):
        n = X.shape[1]
        G = np.zeros((n, n), np.float32, order="F")
        Xc = X.tocsc().astype(np.float32)
        for s in range(0, n, step):  # G[:, s:e] = X^T X[:, s:e]
            G[:, s : s + step] = (Xc.T @ Xc[:, s : s + step]).toarray()
        G[np.diag_indices(n)] += lam
        c, info = sla.lapack.spotrf(G, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            raise np.linalg.LinAlgError(f"spotrf failed: info {info}")
        P, info = sla.lapack.spotri(c, lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"spotri failed: info {info}")
        del c, G
        # spotri fills the lower triangle: mirror it, in slabs, to stay in place
        for s in range(0, n, step):
            e = min(n, s + step)
            blk = P[s:e, s:e]
            P[s:e, s:e] = np.tril(blk) + np.tril(blk, -1).T
            P[s:e, e:] = P[e:, s:e].T
        P = P.T  # symmetric: the C-contiguous view of the same memory
        d = np.diag(P).copy()
        P /= -d[None, :]
        P[np.diag_indices(n)] = 0
        self.B = P

    def score(self, users, rows):
        return rows @ self.B


# ----------------------------------------------------------------------------- ALS


class ALS:
    """implicit's CPU ALS (confidence ``1 + alpha r``). Scores are ``user_factors @
    item_factors.T``; the harness masks fit items, which is implicit's own
    ``recommend(..., filter_already_liked_items=True)`` ranking."""

    def __init__(
        self,
        X,
        factors=64,
        regularization=0.01,
        alpha=1.0,
        iterations=15,
        seed=0,
        num_threads=2,
    ):
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit asks for single-threaded BLAS
            self.model = AlternatingLeastSquares(
                factors=factors,
                regularization=regularization,
                alpha=alpha,
                iterations=iterations,
                random_state=seed,
                num_threads=num_threads,
                calculate_training_loss=False,
            )
            self.model.fit(sp.csr_matrix(X, dtype=np.float32), show_progress=False)
        self.U = np.asarray(self.model.user_factors, np.float32)
        self.V = np.asarray(self.model.item_factors, np.float32)

    def score(self, users, rows):
        return self.U[users] @ self.V.T


# ----------------------------------------------------------------------------- graph filters


class NormGraph:
    """``R~ = D_u^-1/2 X D_i^-1/2`` and its top right singular vectors (computed once at the
    largest rank asked for: exact dense SVD when ``min(X.shape) <= exact_svd_limit``, else
    ARPACK with a seeded start). ``P~ = R~^T R~`` is applied as ``(Y R~^T) R~`` (sparse), or
    densified when there are at most `dense_limit` items."""

    def __init__(self, X, max_rank=448, dense_limit=12000, exact_svd_limit=5000, seed=0):
        X = sp.csr_matrix(X, dtype=np.float32)
        du = np.asarray(X.sum(1)).ravel()
        di = np.asarray(X.sum(0)).ravel()
        du_mhalf = np.where(du > 0, 1.0 / np.sqrt(np.maximum(du, 1e-30)), 0)
        self.di_mhalf = np.where(di > 0, 1.0 / np.sqrt(np.maximum(di, 1e-30)), 0).astype(np.float32)
        self.di_half = np.sqrt(di).astype(np.float32)
        self.R = (sp.diags(du_mhalf) @ X @ sp.diags(self.di_mhalf)).tocsr().astype(np.float32)
        self.RT = self.R.T.tocsr()
        self.P = None
        if X.shape[1] <= dense_limit:
            self.P = np.asarray((self.RT @ self.R).todense(), np.float32)
        k = min(max_rank, min(X.shape) - 1)  # ARPACK finds at most min(shape) - 1
        if min(X.shape) <= exact_svd_limit:
            # The exact SVD has every direction, as the library's spectrum does.
            k = min(max_rank, min(X.shape))
            _, s, vt = np.linalg.svd(self.R.toarray().astype(np.float64), full_matrices=False)
            s, vt = s[:k], vt[:k]
        else:
            v0 = np.random.default_rng(seed).standard_normal(min(X.shape))
            _, s, vt = svds(self.R.astype(np.float64), k=k, v0=v0, which="LM")
        o = np.argsort(-s, kind="stable")
        self.s = s[o]
        self.Vt = vt[o].astype(np.float32)  # rank x items

    def apply_P(self, Y):
        """``Y P~`` for dense Y (b x items)."""
        if self.P is not None:
            return Y @ self.P
        Z = self.R @ np.ascontiguousarray(Y.T)  # users x b
        return np.ascontiguousarray((self.RT @ Z).T, dtype=np.float32)

    def ideal(self, Y, rank):
        """``Y D^-1/2 V V^T D^1/2`` with the top-`rank` singular vectors V."""
        V = self.Vt[:rank]
        return ((Y * self.di_mhalf) @ V.T) @ V * self.di_half

    def low_pass(self, rows, weight, rank):
        """``r P~ + weight r D^-1/2 V V^T D^1/2`` of the binary-or-weighted `rows` (sparse)."""
        Y = rows.toarray().astype(np.float32)
        out = self.apply_P(Y)
        if weight:
            out += weight * self.ideal(Y, rank)
        return out


class BSPM:
    """The numpy BSPM, for what the library's ``personae.GraphFilter`` does not compute
    exactly: catalogues with more than 5,000 users and items (Gowalla), where the library takes
    the higher powers of P~ on the top spectrum, and ``K_s > 1``. Choi et al. SIGIR 2023, the
    authors' default path (final sharpening; Euler blur and
    ideal low-pass with T = 1 in one step): ``y0 = r P~ + beta r D^-1/2 U U^T D^1/2``, then the
    sharpening ODE ``dy/dt = -y P~`` from 0 to `T_s` in `K_s` steps of `solver` (rk4 or euler)."""

    def __init__(self, graph: NormGraph, beta=0.2, rank=448, T_s=2.5, K_s=1, solver="rk4"):
        if solver not in ("rk4", "euler"):
            raise ValueError(f"solver must be rk4 or euler, got {solver!r}")
        self.g, self.beta, self.rank = graph, beta, rank
        self.T, self.K, self.solver = T_s, K_s, solver

    def score(self, users, rows):
        y = self.g.low_pass(rows, self.beta, self.rank)  # GF-CF's score: BSPM's blurred start
        if self.T > 0:
            h = self.T / self.K

            def f(z):
                return -self.g.apply_P(z)

            for _ in range(self.K):
                if self.solver == "euler":
                    y = y + h * f(y)
                else:
                    k1 = f(y)
                    k2 = f(y + 0.5 * h * k1)
                    k3 = f(y + 0.5 * h * k2)
                    k4 = f(y + h * k3)
                    y = y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        return y


class ChebyCF:
    """ChebyCF (Kim et al., SIGIR 2025), the authors' exact filter in numpy: with ``y = r
    D^-beta``, ``D^beta (sum_k c_k T_k(L~) y + alpha y V^T V)``, ``L~ = I - 2 P~``, the
    ``c_k`` interpolating the plateau of flatness `phi` through ``K + 1`` Chebyshev nodes
    (:func:`personae.train.filters.chebyshev_coefficients`; the tests pin them against the
    paper's recipe written out) and V the top-`rank` right singular vectors of R~. ``K``
    passes of P~ per batch; the library's ``GraphFilter(flatness=phi, item_power=beta,
    beta=alpha)`` serves the same head exactly and the tail as a multiple of P~."""

    def __init__(self, graph: NormGraph, phi=1.5, beta=0.4, alpha=0.2, rank=512, K=8):
        from personae.train.filters import chebyshev_coefficients

        self.g, self.alpha, self.rank, self.K = graph, alpha, rank, K
        self.c = chebyshev_coefficients(phi, K)
        live = graph.di_mhalf > 0
        d = np.maximum(1.0 / np.maximum(graph.di_mhalf, 1e-30) ** 2, 1.0)
        self.pre = np.where(live, d**-beta, 0).astype(np.float32)
        self.post = np.where(live, d**beta, 0).astype(np.float32)

    def score(self, users, rows):
        y = rows.toarray().astype(np.float32) * self.pre

        def lap(z):
            return z - 2 * self.g.apply_P(z)

        prev, cur = y, lap(y)
        out = self.c[0] * prev + self.c[1] * cur
        for k in range(2, self.K + 1):
            prev, cur = cur, 2 * lap(cur) - prev
            out += self.c[k] * cur
        if self.alpha:
            V = self.g.Vt[: self.rank]
            out += self.alpha * ((y @ V.T) @ V)
        return out * self.post


def bspm_coefficients(config: dict) -> list[float]:
    """c_k of one BSPM step (K_s = 1) of a grid configuration, from the library's
    :func:`personae.train.filters.bspm_coefficients`."""
    from personae.train.filters import bspm_coefficients as coefficients

    return coefficients(config["T_s"], config.get("solver", "rk4"))


class GraphScorer:
    """Reads every GF-CF / BSPM (K_s = 1) configuration from shared per-batch products: for a
    batch Y, ``S_k = Y P~^(k+1)`` (k = 0..4) and ``proj = Y D^-1/2 V^T``; with ``M_k = V D^1/2
    P~^k`` (computed once),

    - GF-CF = ``S_0 + alpha proj_r M_0,r``
    - BSPM = ``sum_k c_k (S_k + beta proj_r M_k,r)`` with c_k of :func:`bspm_coefficients`,

    exactly the authors' ODE solution for one step (``proj_r``: the first r columns)."""

    def __init__(self, g: NormGraph, max_power: int = 5):
        self.g, self.max_power = g, max_power
        self._memo = None
        self.M = [g.Vt * g.di_half]  # rank x items: V D^1/2
        for _ in range(max_power - 1):
            self.M.append(g.apply_P(self.M[-1]))

    def batch(self, rows):
        """The shared products of one batch of fit rows (CSR)."""
        Y = rows.toarray().astype(np.float32)
        S = [self.g.apply_P(Y)]
        for _ in range(self.max_power - 1):
            S.append(self.g.apply_P(S[-1]))
        proj = (Y * self.g.di_mhalf) @ self.g.Vt.T
        return S, proj

    def ideal(self, parts, rank: int, coefficients) -> np.ndarray:
        """``proj_r sum_k c_k M_k,r``: the ideal low-pass part, remembered for the last
        (batch, rank, coefficients) asked for, so that a grid ordered with beta innermost
        computes it once per (rank, T)."""
        proj = parts[1]
        key = (rank, tuple(coefficients))
        if self._memo is None or self._memo[0] is not proj or self._memo[1] != key:
            W = coefficients[0] * self.M[0][:rank]
            for k in range(1, len(coefficients)):
                W = W + coefficients[k] * self.M[k][:rank]
            self._memo = (proj, key, proj[:, :rank] @ W)
        return self._memo[2]

    def score(self, parts, name: str, config: dict):
        """Dense scores of configuration `config` of family `name` (gfcf or bspm)."""
        S, _ = parts
        if name == "gfcf":
            out = S[0].copy()
            if config["alpha"]:
                out += config["alpha"] * self.ideal(parts, config["rank"], [1.0])
            return out
        if config.get("K_s", 1) != 1:
            raise ValueError("GraphScorer reads BSPM with K_s = 1 only")
        cs = bspm_coefficients(config)
        if len(cs) > self.max_power:
            raise ValueError(f"{len(cs)} powers needed, max_power is {self.max_power}")
        out = cs[0] * S[0]
        for k in range(1, len(cs)):
            out += cs[k] * S[k]
        if config["beta"]:
            out += config["beta"] * self.ideal(parts, config["rank"], cs)
        return out


# ----------------------------------------------------------------------------- personae models

#: Mult-VAE's training budget in the harness (the early stopping on the validation split picks
#: the epoch; the test fit reruns the chosen configuration for that many epochs on all of train).
MULTVAE_TRAIN = {"epochs": 200, "patience": 20}


def multvae(X, config: dict, k: int, validation=None, device: str = "cpu", seed: int = 0):
    """``personae.MultVAE(**config)`` trained on X, early-stopped on NDCG@k of `validation`
    (a (fold-in rows, held-out rows) pair) when given."""
    params = {**MULTVAE_TRAIN, **config, "eval_k": k, "device": device, "seed": seed}
    est = personae.MultVAE(**params)
    return est.fit(X, validation=validation, show_progress=False)


def multvae_refit_config(config: dict, val_model) -> dict:
    """The chosen configuration for the test fit: trained for the validation run's best number
    of epochs (no held-out data is left to stop on)."""
    best = int(val_model.manifest["training"]["best_epoch"])
    return {**config, "epochs": best + 1}


def ampcf(X):
    """``personae.AMPCF()`` with default arguments, fitted on X."""
    return personae.AMPCF().fit(X, show_progress=False)


# ----------------------------------------------------------------------------- dispatch

GRAPH = ("gfcf", "bspm")


def graph_for(X, cache: dict | None, max_rank: int) -> NormGraph:
    """The NormGraph of X, shared through `cache` (built once at the largest rank asked for)."""
    if (
        cache is not None
        and "graph" in cache
        and cache["graph"].Vt.shape[0] >= min(max_rank, min(X.shape) - 1)
    ):
        return cache["graph"]
    g = NormGraph(X, max_rank=max_rank)
    if cache is not None:
        cache["graph"] = g
    return g


def fit(name: str, X, config: dict, cache: dict | None = None, **kw):
    """Fits family `name` with `config` on X. `cache` shares per-matrix work across a grid
    (EASE's Gram matrix, the graph filters' NormGraph); ``kw``: ``k``, ``validation`` and
    ``device`` for Mult-VAE, ``num_threads`` for ALS."""
    if name == "popularity":
        return Popularity(X)
    if name == "ease":
        return ease(X, config["lam"])
    if name == "ease_big":
        return EASEBig(X, config["lam"])
    if name == "als":
        return ALS(X, num_threads=kw.get("num_threads", 2), **config)
    if name == "gfcf":
        g = personae.GraphFilter(
            rank=config["rank"],
            beta=config["alpha"],
            time=0.0,
            eta=0.0,
            user_weight=1.0,
            flatness=0.0,
            item_power=0.0,
            device="cpu",
        )
        return g.fit(X, show_progress=False)
    if name == "bspm":
        if config.get("K_s", 1) == 1 and min(X.shape) <= 5000:  # the library's exact case
            solver = config.get("solver", "rk4")
            g = personae.GraphFilter(
                config["rank"],
                config["beta"],
                config["T_s"],
                eta=0.0,
                user_weight=1.0,
                solver=solver,
                flatness=0.0,
                item_power=0.0,
                device="cpu",
            )
            return g.fit(X, show_progress=False)
        return BSPM(graph_for(X, cache, config["rank"]), **config)
    if name == "chebycf":
        return ChebyCF(graph_for(X, cache, config["rank"]), **config)
    if name == "multvae":
        return multvae(
            X, config, kw["k"], kw.get("validation"), kw.get("device", "cpu"), kw.get("seed", 0)
        )
    if name == "ampcf":
        if config:
            raise ValueError("AMP-CF runs with its default arguments only")
        return ampcf(X)
    raise ValueError(f"unknown model {name!r}")
