"""Fitting AMP-CF in closed form (the model is described in :mod:`personae.ampcf`).

A fit computes, from the training matrix X (users x items):

1. The filter ``F = S + L R^T`` that turns a persona's history into votes.
   - Catalogues up to ``DENSE_MAX_ITEMS`` active items: ``S = B``, EASE (Steck 2019) with the
     two normalisations of DAN (Park et al., SIGIR 2025) that matter here, user-degree weighting
     of the Gram matrix and a dropout-emphasis (DLAE, Steck 2020) diagonal penalty::

         G = X^T diag(|H_u|^-beta_u) X,   Lambda = lam * mean(diag G) + p / (1 - p) diag(G)
         P = (G + Lambda)^-1,             B = I - P diag(1 / diag P)     (diag B = 0)

     plus GF-CF's ideal low-pass filter (Shen et al., CIKM 2021) as the low-rank part,
     ``c D^-1/2 V_r^T V_r D^1/2`` with V_r the top right singular vectors of the normalised
     matrix ``R~ = D_u^-1/2 X D_i^-1/2``.
   - Larger catalogues: the training-free graph filter of :func:`graph_filter` (GF-CF's by
     default; BSPM's sharpening, Choi et al., SIGIR 2023, with ``graph_time > 0``): a sparse
     item-item part and a low-rank part, no n x n inverse.
2. The item space z (unit rows of the top singular directions of R~, scaled by the singular
   values) and the global taste clusters (spherical k-means of z, weighted by popularity).
3. Settings left as ``None`` are chosen on a validation carve of the training rows (training
   data only; never a test split), then the model is refitted on all of X.

Dense linear algebra runs in torch, on CUDA when present.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from personae import _core

#: Above this many active items, the filter is the graph filter (no items x items inverse).
DENSE_MAX_ITEMS = 20_000
#: The validation metric of the fit-time search (NDCG at this cut-off).
SEARCH_K = 20


@dataclass(frozen=True)
class AMPCFConfig:
    """AMP-CF's settings; ``None`` means chosen at fit time on a validation carve.

    Attributes:
        n_personas: most personas per user (K).
        tau: temperature of the attention over personas.
        mix: weight of the persona-attentive score against the plain filter score.
        delta: weight of ``ln(persona share)`` in the attention logits.
        gamma: persona votes are weighted by ``share^-gamma``.
        lam: EASE's L2 penalty, relative to the mean of diag(G).
        user_weight: beta_u, the exponent of the user-degree weighting of G.
        dropout: p of the dropout-emphasis penalty ``p / (1 - p) diag(G)``.
        rank: rank of the low-rank part (0: none).
        low_weight: its weight c, relative to the scale of the item-item part.
        att_dim: dimension of the item space.
        n_clusters: number of taste clusters (None: ``round(sqrt(items) / 2)`` within 8..64).
        graph_rank, graph_beta, graph_time, graph_eta: the graph filter's settings (large
            catalogues only): spectrum rank, ideal low-pass weight, diffusion time, and the
            exponent of the item-degree post-scaling. The defaults (time 0: GF-CF's exact
            filter, beta 0.2) are the best of ``benches/ampcf_gowalla_graph.py`` on Gowalla's
            validation carve; BSPM's sharpening (time 2.5, beta 0.1) validated lower, since
            its higher powers of P~ are taken on the top-``graph_rank`` spectrum only.
        search_users: most users in the validation carve.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the dense linear algebra.
        seed: seeds the validation carve, the SVD start vector and k-means.
    """

    n_personas: int = 8
    tau: float = 1.0
    mix: float = 0.25
    delta: float = 0.0
    gamma: float = 0.0
    lam: float | None = None
    user_weight: float | None = None
    dropout: float = 0.3
    rank: int | None = None
    low_weight: float | None = None
    att_dim: int = 64
    n_clusters: int | None = None
    graph_rank: int = 448
    graph_beta: float = 0.2
    graph_time: float = 0.0
    graph_eta: float = 0.0
    search_users: int = 5000
    device: str = "auto"
    seed: int = 0

    def __post_init__(self):
        for name in ("n_personas", "att_dim", "graph_rank", "search_users"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_personas > _core.MAX_PERSONAS:  # the core's bound, refused before the fit
            raise ValueError(
                f"n_personas must be at most {_core.MAX_PERSONAS}, got {self.n_personas}"
            )
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {self.mix}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lam is not None and not self.lam > 0:
            raise ValueError(f"lam must be > 0, got {self.lam}")
        if self.rank is not None and self.rank < 0:
            raise ValueError(f"rank must be >= 0, got {self.rank}")
        if self.low_weight is not None and self.low_weight < 0:
            raise ValueError(f"low_weight must be >= 0, got {self.low_weight}")
        if self.n_clusters is not None and self.n_clusters < 1:
            raise ValueError(f"n_clusters must be >= 1, got {self.n_clusters}")


# -- spectra and item spaces ------------------------------------------------------------------


class Spectrum:
    """The top right singular vectors of ``R~ = D_u^-1/2 X D_i^-1/2``, with the degrees."""

    def __init__(self, X: sp.csr_matrix, rank: int, seed: int, device):
        import torch

        du = np.asarray(X.sum(1)).ravel()
        self.di = np.asarray(X.sum(0)).ravel().astype(np.float64)
        self.di_mhalf = np.where(self.di > 0, 1 / np.sqrt(np.maximum(self.di, 1e-30)), 0.0)
        self.di_half = np.sqrt(self.di)
        ru = np.where(du > 0, 1 / np.sqrt(np.maximum(du, 1e-30)), 0.0)
        R = (sp.diags(ru) @ X @ sp.diags(self.di_mhalf)).tocsr()
        self.R = R  # R~, which the graph filter reuses
        k = max(1, min(rank, min(X.shape) - 1))
        if min(X.shape) <= 5000:
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
            from scipy.sparse.linalg import svds

            v0 = np.random.default_rng(seed).standard_normal(min(R.shape))
            _, s, vt = svds(R.astype(np.float64), k=k, v0=v0)
            o = np.argsort(-s)
            s, vt = s[o], vt[o]
        self.s = s.astype(np.float64)
        self.Vt = vt.astype(np.float64)

    def item_space(self, dim: int) -> np.ndarray:
        """Unit item vectors (items x dim): the singular directions scaled by the singular
        values; zero rows for items without interactions."""
        Z = (self.Vt[:dim] * self.s[:dim, None]).T
        n = np.linalg.norm(Z, axis=1, keepdims=True)
        return np.where(n > 0, Z / np.maximum(n, 1e-12), 0.0).astype(np.float32)

    def low_pass(self, rank: int) -> tuple[np.ndarray, np.ndarray]:
        """GF-CF's ideal low-pass filter ``D^-1/2 V_r^T V_r D^1/2`` as its two factors
        (items x rank each): left ``D^-1/2 V_r^T``, right ``D^1/2 V_r^T``."""
        V = self.Vt[:rank].T
        return V * self.di_mhalf[:, None], V * self.di_half[:, None]


def n_clusters_for(n_items: int) -> int:
    """The default number of taste clusters for a catalogue."""
    return int(np.clip(round(math.sqrt(n_items) / 2), 8, 64))


def spherical_kmeans(Z: np.ndarray, n: int, weights: np.ndarray, seed: int, iters: int = 25):
    """Weighted spherical k-means of the unit rows of Z (zero rows are left out, label -1),
    seeded k-means++-style by weight. Returns (labels int32, centroids float32 n x dim)."""
    rng = np.random.default_rng(seed)
    live = np.flatnonzero(np.linalg.norm(Z, axis=1) > 0)
    if not len(live):
        return np.full(len(Z), -1, np.int32), np.zeros((1, Z.shape[1]), np.float32)
    w = np.maximum(np.asarray(weights, np.float64)[live], 1e-12)
    Zl = Z[live].astype(np.float64)
    n = min(n, len(live))
    cent = [Zl[rng.choice(len(live), p=w / w.sum())]]
    best = Zl @ cent[0]
    for _ in range(1, n):
        d = w * np.maximum(1.0 - best, 0) + 1e-12
        c = Zl[rng.choice(len(live), p=d / d.sum())]
        cent.append(c)
        best = np.maximum(best, Zl @ c)
    M = np.stack(cent)
    for _ in range(iters):
        lab = np.argmax(Zl @ M.T, axis=1)
        S = np.zeros_like(M)
        np.add.at(S, lab, Zl * w[:, None])
        norm = np.linalg.norm(S, axis=1, keepdims=True)
        M = np.where(norm > 0, S / np.maximum(norm, 1e-12), M)
    labels = np.full(len(Z), -1, np.int32)
    labels[live] = np.argmax(Zl @ M.T, axis=1)
    return labels, M.astype(np.float32)


# -- the dense filter -------------------------------------------------------------------------


def weighted_gram(X: sp.csr_matrix, user_weight: float, active: np.ndarray, dtype) -> np.ndarray:
    """``X^T diag(|H_u|^-user_weight) X`` over the `active` items, dense."""
    cu = np.asarray(X.sum(1)).ravel()
    w = np.where(cu > 0, np.maximum(cu, 1.0) ** (-user_weight), 0.0)
    Xa = X[:, active]
    return np.asarray((Xa.T @ sp.diags(w) @ Xa).toarray(), dtype=dtype)


def dan_ease(G: np.ndarray, lam: float, dropout: float, device) -> np.ndarray:
    """B (active x active, float32) from the weighted Gram G (not modified)."""
    import torch

    g = torch.from_numpy(G).to(device)
    d = torch.diagonal(g).clone()
    pos = d[d > 0]
    base = lam * (pos.mean() if len(pos) else torch.ones((), dtype=g.dtype, device=device))
    reg = torch.clamp(base + dropout / (1.0 - dropout) * d, min=1e-6)
    g = g + torch.diag(reg)
    P = torch.cholesky_inverse(torch.linalg.cholesky(g))
    del g
    B = P / (-torch.diagonal(P))[None, :]
    B.fill_diagonal_(0.0)
    return B.to(torch.float32).cpu().numpy()


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


def graph_filter(spec: Spectrum, cfg: AMPCFConfig) -> dict[str, np.ndarray]:
    """GF-CF's graph filter, with BSPM's sharpening when ``graph_time > 0`` (Choi et al.,
    SIGIR 2023: one Runge-Kutta step of the blurring ODE over [0, T] with the ideal low-pass as
    the sharpening start), as core tensors. With T = 0 it is GF-CF exactly:
    ``d^-eta (x P~ + beta x D^-1/2 V^T V D^1/2)``.

    With ``P~ = R~^T R~`` (sparse, items x items) and its top-r spectrum ``V, s``, a row x is
    scored ``d^-eta (x P~ + (x V^T) diag(w) V + (x D^-1/2 V^T) N)``, where
    ``w = sum_{k=1..4} c_k s^(2k+2)``, ``N = beta sum_{k=0..4} c_k V D^1/2 P~^k`` and
    ``c_k = (-T)^k / k!``: only ``x P~`` is exact, the higher powers of P~ are taken on the
    top-r spectrum."""
    R = spec.R.astype(np.float32)
    RT = R.T.tocsr()
    P = (RT @ R).tocsr()
    P.sort_indices()
    r = min(cfg.graph_rank, len(spec.s))
    c = [(-cfg.graph_time) ** k / math.factorial(k) for k in range(5)]
    V = spec.Vt[:r].astype(np.float32)
    M = V * spec.di_half.astype(np.float32)
    N = c[0] * M
    sharpen = cfg.graph_time != 0
    for k in range(1, 5 if sharpen else 1):
        M = np.ascontiguousarray((RT @ (R @ M.T)).T, dtype=np.float32)
        N = N + c[k] * M
    N *= cfg.graph_beta
    post = np.where(spec.di > 0, np.maximum(spec.di, 1.0) ** (-cfg.graph_eta), 0.0)
    left = [(V * spec.di_mhalf.astype(np.float32)).T]
    right = [N.T]
    if sharpen:  # without sharpening w = 0: its r columns would only cost serving time
        s2 = spec.s[:r] ** 2
        w = sum(c[k] * s2 ** (k + 1) for k in range(1, 5))
        left.insert(0, V.T * w.astype(np.float32))
        right.insert(0, V.T)
    left, right = np.hstack(left), np.hstack(right) * post[:, None]
    Pd = P.multiply(post[None, :]).tocsr()
    Pd.sort_indices()
    return {
        "votes_indptr": Pd.indptr.astype(np.int64),
        "votes_indices": Pd.indices.astype(np.int32),
        "votes_data": Pd.data.astype(np.float32),
        "low_left": np.ascontiguousarray(left, np.float32),
        "low_right": np.ascontiguousarray(right, np.float32),
    }


# -- the fit ----------------------------------------------------------------------------------


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
    v = _core.ranking_metrics(ids, SEARCH_K, held)["ndcg"]
    return float(np.nanmean(v)) if np.isfinite(v).any() else 0.0


def _dense_filter(X, spec, lam, user_weight, rank, low_weight, cfg, device):
    active = np.flatnonzero(np.asarray(X.sum(0)).ravel() > 0)
    dtype = np.float64 if len(active) < 4000 else np.float32
    G = weighted_gram(X, user_weight, active, dtype)
    f = DenseFilter(active, dan_ease(G, lam, cfg.dropout, device), spec, 0, 0.0)
    if rank and low_weight:
        f.rank, f.weight = rank, low_weight * f.scale(X, rank, cfg.seed)
    return f


def _unique(dicts) -> list[dict]:
    """The distinct dicts, in order."""
    return [dict(t) for t in dict.fromkeys(tuple(d.items()) for d in dicts)]


def search(
    X: sp.csr_matrix, cfg: AMPCFConfig, device, bar, on_step=None
) -> tuple[dict, list[dict]]:
    """Chooses the dense filter's settings left as None, on a validation carve of X;
    ``on_step(step, ndcg)`` after each setting tried."""
    from personae.data import carve_validation

    fit, held, users = carve_validation(X, cfg.search_users, 0.2, cfg.seed)
    seen, truth = fit[users], held[users]
    spec = Spectrum(fit, max(64, cfg.att_dim, cfg.rank or 0), cfg.seed, device)
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
    if bar is not None:
        bar.reset(total=len(grid) * len(lows))
    record, best = [], (-1.0, None)
    projected = {}  # rank -> (seen D^-1/2 V_r^T, D^1/2 V_r^T): the same for every base
    for g in grid:
        f = _dense_filter(fit, spec, g["lam"], g["user_weight"], 0, 0.0, cfg, device)
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
                    scales[r] = f.scale(fit, r, cfg.seed)
                x_left, right = projected[r]
                s = plain + (c * scales[r] * x_left @ right.T).astype(np.float32)
            nd = _val_ndcg(s, seen, truth)
            rec = {**g, "rank": r, "low_weight": c, f"ndcg@{SEARCH_K}": nd}
            record.append(rec)
            if on_step is not None:
                on_step(len(record) - 1, nd)
            if nd > best[0]:
                best = (nd, rec)
            if bar is not None:
                bar.update(1)
        del f, plain
    chosen = {k: best[1][k] for k in ("lam", "user_weight", "rank", "low_weight")}
    return chosen, record


def fit(X: sp.csr_matrix, cfg: AMPCFConfig, show_progress: bool = True, callback=None):
    """Fits AMP-CF on X (users x items, non-negative). Returns ``(tensors, summary)``: the core
    model's tensors (see :mod:`personae.ampcf`) and what the fit chose and measured.
    ``callback(step, seconds, ndcg)`` is called after each step of the validation search, or
    once at the end (``ndcg`` None) when there is nothing to search."""
    from personae.train.loop import check_train, pick_device

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with the train extra
        tqdm = None
    t0 = time.perf_counter()
    device = pick_device(cfg.device)
    X = check_train(X)
    # The filter is fitted on weights scaled so the largest is 1: the same model (and lists) at
    # any weight scale, e.g. timestamps in nanoseconds, and no overflow near float32's limit.
    top = float(X.data.max())
    if top > 0 and top != 1:
        X = sp.csr_matrix(((X.data / top).astype(np.float32), X.indices, X.indptr), X.shape)
    n_items = X.shape[1]
    counts = np.asarray((X > 0).sum(0)).ravel().astype(np.float32)
    n_active = int((counts > 0).sum())
    if n_active == 0:
        raise ValueError("user_items has no interactions: nothing to fit")
    dense = n_active <= DENSE_MAX_ITEMS
    summary: dict = {"filter": "dense" if dense else "graph", "device": str(device)}
    settings = {k: getattr(cfg, k) for k in ("lam", "user_weight", "rank", "low_weight")}
    bar = None
    if dense and None in settings.values():
        if show_progress and tqdm is not None:
            bar = tqdm(total=1, desc="AMP-CF validation search", unit="setting")
        try:
            step = None
            if callback is not None:

                def step(i: int, ndcg: float) -> None:
                    callback(i, time.perf_counter() - t0, ndcg)

            chosen, record = search(X, cfg, device, bar, step)
        finally:
            if bar is not None:
                bar.close()
        summary["search"] = record
        summary[f"val_ndcg@{SEARCH_K}"] = max(r[f"ndcg@{SEARCH_K}"] for r in record)
        settings.update({k: v for k, v in chosen.items() if settings[k] is None})
    settings = {
        "lam": 10.0 if settings["lam"] is None else settings["lam"],
        "user_weight": 0.5 if settings["user_weight"] is None else settings["user_weight"],
        "rank": 64 if settings["rank"] is None else settings["rank"],
        "low_weight": 0.1 if settings["low_weight"] is None else settings["low_weight"],
    }
    spec_rank = max(cfg.att_dim, settings["rank"] if dense else cfg.graph_rank)
    spec = Spectrum(X, spec_rank, cfg.seed, device)
    if dense:
        f = _dense_filter(
            X,
            spec,
            settings["lam"],
            settings["user_weight"],
            settings["rank"],
            settings["low_weight"],
            cfg,
            device,
        )
        tensors = f.tensors(n_items)
        summary["settings"] = settings
    else:
        tensors = graph_filter(spec, cfg)
        summary["settings"] = {
            k: getattr(cfg, k) for k in ("graph_rank", "graph_beta", "graph_time", "graph_eta")
        }
    Z = spec.item_space(cfg.att_dim)
    n_c = cfg.n_clusters or n_clusters_for(n_active)
    labels, centroids = spherical_kmeans(Z, n_c, counts, cfg.seed)
    tensors.update(item_space=Z, item_cluster=labels, centroids=centroids, item_count=counts)
    summary["n_clusters"] = int(centroids.shape[0])
    summary["seconds"] = time.perf_counter() - t0
    if callback is not None and "search" not in summary:
        # Nothing was searched: one call when the fit is done, so a progress callback (and
        # implicit's "called at least once") still hears from the fit.
        callback(0, summary["seconds"], None)
    return tensors, summary


def taste_tensors(core, X: sp.csr_matrix, smoothing: float = 10.0) -> dict[str, np.ndarray]:
    """The base tastes for interviews (:meth:`personae.AMPCF.base_tastes`), from the fitted
    core model and its training matrix X.

    With S the training users' taste shares (users x clusters: each persona's share of the
    history, on its taste cluster) and T = S^T X, taste c's item distribution is
    ``P(j | c) = (T_cj + a P(j)) / (T_c. + a)`` (a Dirichlet pull of strength `smoothing`
    toward the catalogue's ``P(j)``), and

    - ``phi_c(j) = ln(P(j | c) / P(j))``: how much more taste c likes j than anyone;
    - ``offset_j``: the log-odds that a user interacted with j;
    - prior: the mean and covariance (plus 1e-3 I) of the training users' share vectors.

    A user with taste weights lam likes j with log-odds ``offset_j + lam . phi(j)``."""
    X = X.tocsr()
    n_users, n_items = X.shape
    taste, share, _ = core.personas(X)
    n_c = core.n_clusters
    ok = taste >= 0
    rows = np.nonzero(ok)[0]
    S = sp.csr_matrix((share[ok].astype(np.float64), (rows, taste[ok])), shape=(n_users, n_c))
    T = np.asarray((S.T @ X).todense(), dtype=np.float64)  # clusters x items
    mass = np.asarray(X.sum(0), dtype=np.float64).ravel()
    p = mass / max(mass.sum(), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = (T + smoothing * p[None, :]) / (T.sum(1, keepdims=True) + smoothing)
        phi = np.where(p[None, :] > 0, np.log(pc / p[None, :]), 0.0)
    users_with = np.asarray((X > 0).sum(0)).ravel() / max(n_users, 1)
    q = np.clip(users_with, 1e-4, 1 - 1e-4)
    Sd = S.toarray()
    cov = np.cov(Sd, rowvar=False) if n_users > 1 else np.zeros((n_c, n_c))
    cov = np.atleast_2d(cov) + 1e-3 * np.eye(n_c)
    return {
        "taste_phi": np.ascontiguousarray(phi.T, np.float32),
        "taste_offset": np.log(q / (1 - q)).astype(np.float32),
        "taste_prior_mean": Sd.mean(0).astype(np.float32),
        "taste_prior_cov": cov.astype(np.float32),
    }
