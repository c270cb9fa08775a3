"""Fitting AMP-CF in closed form (the model is described in :mod:`personae.ampcf`).

A fit computes, from the training matrix X (users x items):

1. The filter ``F = S + L R^T`` that turns a persona's history into votes
   (:mod:`personae.train.filters`: EASE with DAN's normalisations and GF-CF's low pass up to
   20,000 active items, the graph filter above, or the filter given), its settings left as
   ``None`` chosen on a validation carve of the training rows.
2. The item space z (unit rows of the top singular directions of R~, scaled by the singular
   values) and the global taste clusters (spherical k-means of z, weighted by popularity).
3. The base tastes for interviews, from the training users' personas.

Dense linear algebra runs in torch, on CUDA when present.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from personae import _core
from personae.train.filters import EASEConfig, GraphConfig, RunConfig, fit_filter


@dataclass(frozen=True)
class AMPCFConfig:
    """AMP-CF's settings, as the fit reads them (the defaults are :class:`personae.AMPCF`'s,
    declared there only).

    Attributes:
        filter: the filter's settings (:class:`~personae.train.filters.EASEConfig` or
            :class:`~personae.train.filters.GraphConfig`), None for the automatic choice.
        n_personas: most personas per user (K).
        tau: temperature of the attention over personas.
        mix: weight of the persona-attentive score against the plain filter score.
        delta: weight of ``ln(persona share)`` in the attention logits.
        gamma: persona votes are weighted by ``share^-gamma``.
        att_dim: dimension of the item space.
        n_clusters: number of taste clusters (None: ``round(sqrt(items) / 2)`` within 8..64).
        search_users: most users in the validation carve.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the dense linear algebra.
        seed: seeds the validation carve, the SVD start vector and k-means.
    """

    filter: EASEConfig | GraphConfig | tuple[EASEConfig, GraphConfig] | None
    n_personas: int
    tau: float
    mix: float
    delta: float
    gamma: float
    att_dim: int
    n_clusters: int | None
    search_users: int
    device: str
    seed: int

    def __post_init__(self):
        if self.n_personas < 1:
            raise ValueError(f"n_personas must be >= 1, got {self.n_personas}")
        if self.n_personas > _core.MAX_PERSONAS:  # the core's bound, refused before the fit
            raise ValueError(
                f"n_personas must be at most {_core.MAX_PERSONAS}, got {self.n_personas}"
            )
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau must be finite and > 0, got {self.tau}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {self.mix}")
        for name in ("delta", "gamma"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        if self.n_clusters is not None and self.n_clusters < 1:
            raise ValueError(f"n_clusters must be >= 1, got {self.n_clusters}")
        RunConfig(self.search_users, self.att_dim, self.device, self.seed)  # checks them

    @property
    def run(self) -> RunConfig:
        return RunConfig(self.search_users, self.att_dim, self.device, self.seed)


# -- item spaces and taste clusters -------------------------------------------------------------


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


# -- the fit ----------------------------------------------------------------------------------


def fit(
    X: sp.csr_matrix, cfg: AMPCFConfig, show_progress: bool = True, callback=None, validation=None
):
    """Fits AMP-CF on X (users x items, non-negative). Returns ``(tensors, summary)``: the core
    model's tensors (see :mod:`personae.ampcf`), base tastes included, and what the fit chose
    and measured. ``callback(step, seconds, ndcg)`` is called after each step of the
    validation search, or once at the end (``ndcg`` None) when there is nothing to search;
    `validation`, a (fold-in, held-out) pair, replaces the carve the search would make."""
    from personae.train.loop import check_train

    t0 = time.perf_counter()
    X = check_train(X)
    tensors, summary, spec, counts = fit_filter(
        X, cfg.filter, cfg.run, show_progress, callback, validation
    )
    Z = spec.item_space(cfg.att_dim)
    n_active = int((counts > 0).sum())
    n_c = cfg.n_clusters or n_clusters_for(n_active)
    labels, centroids = spherical_kmeans(Z, n_c, counts, cfg.seed)
    tensors.update(item_space=Z, item_cluster=labels, centroids=centroids, item_count=counts)
    # The interview's base tastes need the training users' personas: read from the persona
    # tensors alone, so the core model is built once, with everything.
    personas = _core.AMPCF.split_personas(cfg.n_personas, Z, labels, centroids, X)
    tensors.update(taste_tensors(personas, int(centroids.shape[0]), X))
    summary["n_clusters"] = int(centroids.shape[0])
    summary["seconds"] = time.perf_counter() - t0
    return tensors, summary


def taste_tensors(
    personas, n_c: int, X: sp.csr_matrix, smoothing: float = 10.0
) -> dict[str, np.ndarray]:
    """The base tastes for interviews (:meth:`personae.AMPCF.base_tastes`), from the training
    users' personas (``(taste, share, entry)`` as ``_core.AMPCF.split_personas`` gives them),
    the number of taste clusters and the training matrix X.

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
    taste, share, _ = personas
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
