"""Calibrated reranking (Steck, "Calibrated Recommendations", RecSys 2018).

Candidates from any model (personae, implicit, a torch model, a database query) are reranked so
that each list's category distribution matches the user's history. Definitions (natural log):

- ``item_categories``: items x categories; row i is item i's category distribution c(g|i)
  (with ``normalize_rows=True``, 0/1 genre flags are divided by their count: three genres get
  1/3 each). An empty row means "no category".
- p(g|u) = sum over the history of h_ui c(g|i), normalised to sum to 1 (h_ui: the history's
  values, e.g. ones or recency weights); or p given directly.
- q(g|u) = sum_r w_r c(g|L_r) / sum_r w_r over the list L, with w_r = 1, or 1/log2(r + 2) when
  ``rank_weighting``; q~ = (1 - alpha) q + alpha p; C_KL = KL(p || q~) over the g with p(g) > 0.
- The list maximises (1 - lam) * sum of relevance - lam * C_KL by Steck's greedy algorithm.
  Relevance is the score after per-user normalisation: ``"minmax"`` (default; (s - min) /
  (max - min) over the user's candidates, so one ``lam`` means the same across models),
  ``"softmax"`` (exp(s - max), summing to 1) or ``"none"`` (raw scores).
- ``lam = 0`` returns the candidates sorted by score (ties in input order); users without a target
  (empty history, or fewer than ``min_history`` interactions) pass through in that order too.
- ``prior_weight`` = beta > 0 mixes a prior into every user's target, Steck's
  p~ = beta p0 + (1 - beta) p, for users with tiny histories; p0 (``prior``) defaults to the
  catalogue's category distribution. ``ckl_before`` / ``ckl_after`` are then measured against p~.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from personae import _core
from personae._validate import csr_parts, optional_threads, positive_int

__all__ = ["CalibratedReranker", "RerankResult", "item_category_matrix", "rerank_dataframe"]

_NORMALIZE = ("none", "minmax", "softmax")


class RerankResult(NamedTuple):
    """Reranked ``ids`` and their original ``scores`` (users x n, padded with -1 / -inf) and
    the per-user C_KL of the plain top-n (``ckl_before``) and of the reranked list."""

    ids: np.ndarray
    scores: np.ndarray
    ckl_before: np.ndarray
    ckl_after: np.ndarray


def item_category_matrix(item_categories, normalize_rows: bool = True) -> sp.csr_matrix:
    """A validated float32 CSR items x categories matrix whose rows are distributions.

    With ``normalize_rows`` each non-empty row is divided by its sum; otherwise rows must already
    sum to 1 (checked by the Rust core)."""
    if isinstance(item_categories, np.ndarray):
        item_categories = sp.csr_matrix(item_categories)
    if not sp.issparse(item_categories):
        raise TypeError(
            "item_categories must be a scipy.sparse matrix (items x categories), "
            f"got {type(item_categories).__name__}"
        )
    m = sp.csr_matrix(item_categories, copy=True)
    if m.ndim != 2:
        raise ValueError(f"item_categories must be 2-D, got {m.ndim}-D")
    if m.dtype.kind not in "biuf":
        raise TypeError(f"item_categories must be numeric, got dtype {m.dtype}")
    m = m.astype(np.float64)
    m.sum_duplicates()
    if m.data.size and not np.isfinite(m.data).all():
        raise ValueError("item_categories contains NaN or infinite values")
    if m.data.size and (m.data < 0).any():
        row = int(np.searchsorted(m.indptr, np.flatnonzero(m.data < 0)[0], side="right") - 1)
        raise ValueError(f"item_categories: item {row} has a negative category weight")
    m.eliminate_zeros()
    if normalize_rows:
        sums = np.asarray(m.sum(axis=1)).ravel()
        scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
        m = sp.csr_matrix(sp.diags(scale) @ m)
    m = m.astype(np.float32)
    m.sort_indices()
    return m


def _unit_interval(name: str, value, closed: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    ok = (0.0 <= v <= 1.0) if closed else (0.0 < v < 1.0)
    if not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return v


class CalibratedReranker:
    """Steck's greedy calibrated reranker over an items x categories matrix.

    >>> rr = CalibratedReranker(genres, lam=0.5)          # doctest: +SKIP
    >>> out = rr.rerank(ids, scores, history=train, n=10)  # doctest: +SKIP
    >>> out.ids, out.ckl_before.mean(), out.ckl_after.mean()  # doctest: +SKIP
    """

    def __init__(
        self,
        item_categories,
        lam: float = 0.5,
        alpha: float = 0.01,
        normalize: str = "minmax",
        rank_weighting: bool = False,
        normalize_rows: bool = True,
        min_history: int = 0,
        prior_weight: float = 0.0,
        prior=None,
    ):
        self.item_categories = item_category_matrix(item_categories, normalize_rows)
        if isinstance(min_history, bool) or not isinstance(min_history, numbers.Integral):
            raise TypeError(f"min_history must be an integer, got {type(min_history).__name__}")
        if min_history < 0:
            raise ValueError(f"min_history must be >= 0, got {min_history}")
        self.min_history = int(min_history)
        self.prior_weight = _unit_interval("prior_weight", prior_weight, closed=True)
        if self.prior_weight == 1.0:
            raise ValueError("prior_weight must be < 1 (1 would ignore every history)")
        if prior is None:
            mass = np.asarray(self.item_categories.sum(axis=0), dtype=np.float64).ravel()
            g = self.n_categories
            prior = mass / mass.sum() if mass.sum() > 0 else np.full(g, 1 / max(g, 1))
        prior = np.asarray(prior, dtype=np.float64)
        if prior.shape != (self.n_categories,):
            raise ValueError(
                f"prior must have shape ({self.n_categories},) (one weight per category), "
                f"got {prior.shape}"
            )
        bad = not np.isfinite(prior).all() or (prior < 0).any() or abs(prior.sum() - 1) > 1e-4
        if self.n_categories and bad:
            raise ValueError("prior must be a finite non-negative distribution summing to 1")
        self.prior = prior
        self.lam = _unit_interval("lam", lam, closed=True)
        self.alpha = _unit_interval("alpha", alpha, closed=False)
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
        self.normalize = normalize
        self.rank_weighting = bool(rank_weighting)

    @property
    def n_items(self) -> int:
        """Number of items (rows of the item x category matrix)."""
        return self.item_categories.shape[0]

    @property
    def n_categories(self) -> int:
        """Number of categories (columns of the item x category matrix)."""
        return self.item_categories.shape[1]

    def __repr__(self) -> str:
        return (
            f"CalibratedReranker(items={self.n_items}, categories={self.n_categories}, "
            f"lam={self.lam}, alpha={self.alpha}, normalize={self.normalize!r}, "
            f"rank_weighting={self.rank_weighting})"
        )

    # -- argument plumbing ----------------------------------------------------------------
    def _cats(self):
        m = self.item_categories
        return (
            np.ascontiguousarray(m.indptr, dtype=np.int64),
            np.ascontiguousarray(m.indices, dtype=np.int32),
            np.ascontiguousarray(m.data, dtype=np.float32),
            self.n_categories,
        )

    def _target(self, history, p, n_users: int) -> dict:
        if (history is None) == (p is None):
            raise ValueError(
                "give exactly one of history= (users x items) and p= (users x categories)"
            )
        if p is not None:
            a = np.asarray(p)
            if a.ndim != 2 or a.shape != (n_users, self.n_categories):
                raise ValueError(
                    f"p must have shape ({n_users}, {self.n_categories}) (users x categories), "
                    f"got {a.shape}"
                )
            if a.dtype.kind not in "biuf":
                raise TypeError(f"p must be numeric, got dtype {a.dtype}")
            return {"p": np.ascontiguousarray(a, dtype=np.float32)}
        indptr, indices, data, shape = csr_parts("history", history)
        if shape[1] != self.n_items:
            raise ValueError(
                f"history has {shape[1]} columns but item_categories has {self.n_items} items"
            )
        if shape[0] != n_users:
            raise ValueError(f"history has {shape[0]} rows but there are {n_users} users")
        return {"hist_indptr": indptr, "hist_indices": indices, "hist_data": data}

    def _adjusted_target(self, history, p, n_users: int) -> dict:
        """The target with ``min_history`` (shorter histories get no target: their lists pass
        through) and Steck's prior p~ = beta p0 + (1 - beta) p (``prior_weight`` = beta)."""
        t = self._target(history, p, n_users)
        if history is None or (self.min_history == 0 and self.prior_weight == 0):
            return t
        sizes = np.diff(t["hist_indptr"])
        if self.min_history > 0:
            t["hist_data"] = np.where(
                np.repeat(sizes < self.min_history, sizes), 0, t["hist_data"]
            ).astype(np.float32)
        if self.prior_weight == 0:
            return t
        pt = _core.target_distribution(*self._cats(), n_users, **t)
        has = pt.sum(1, keepdims=True) > 0
        beta = self.prior_weight
        pt = np.where(has, beta * self.prior[None, :] + (1 - beta) * pt, 0.0)
        return {"p": np.ascontiguousarray(pt, dtype=np.float32)}

    def _ids(self, name: str, ids) -> np.ndarray:
        a = np.asarray(ids)
        if a.ndim != 2:
            raise ValueError(
                f"{name} must be 2-D (users x candidates), got shape {a.shape}; "
                "for one user pass ids[None, :]"
            )
        if a.size and a.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer item indices, got dtype {a.dtype}")
        return np.ascontiguousarray(a, dtype=np.int64)

    # -- public API ------------------------------------------------------------------------
    def rerank(
        self,
        candidates,
        scores,
        history=None,
        p=None,
        n: int = 10,
        lam: float | None = None,
        num_threads: int | None = None,
    ) -> RerankResult:
        """Reranks each row of ``candidates`` (users x C item indices; -1 = padding) with its
        ``scores`` (same shape, finite for real candidates) into ``n`` items. The target comes from
        ``history`` (scipy sparse users x items, values = interaction weights) or ``p`` (dense
        users x categories). ``lam`` overrides the reranker's lambda for this call."""
        cand = self._ids("candidates", candidates)
        s = np.asarray(scores)
        if s.shape != cand.shape:
            raise ValueError(f"scores has shape {s.shape} but candidates has {cand.shape}")
        if s.size and s.dtype.kind not in "biuf":
            raise TypeError(f"scores must be numeric, got dtype {s.dtype}")
        s = np.ascontiguousarray(s, dtype=np.float32)
        n = positive_int("n", n)
        lam = self.lam if lam is None else _unit_interval("lam", lam, closed=True)
        target = self._adjusted_target(history, p, cand.shape[0])
        ids, out, before, after = _core.calibrated_rerank(
            cand,
            s,
            *self._cats(),
            n,
            lam,
            self.alpha,
            rank_weighting=self.rank_weighting,
            normalize=self.normalize,
            num_threads=optional_threads(num_threads),
            **target,
        )
        return RerankResult(ids, out, before, after)

    def __call__(self, candidates, scores, history, n: int):
        """``(ids, scores)`` of :meth:`rerank` with the history as target: the
        ``rerank(ids, scores, user_items, n)`` step that pipelines such as
        :func:`personae.distributed.recommend` call on every batch."""
        out = self.rerank(candidates, scores, history=history, n=n)
        return out.ids, out.scores

    def target(self, history=None, p=None, n_users: int | None = None) -> np.ndarray:
        """p(g|u) of every user (users x categories, float64)."""
        if n_users is None:
            if history is not None:
                n_users = getattr(history, "matrix", history).shape[0]
            else:
                n_users = np.asarray(p).shape[0]
        t = self._target(history, p, n_users)
        return _core.target_distribution(*self._cats(), n_users, **t)

    def miscalibration(self, ids, history=None, p=None) -> np.ndarray:
        """Per-user C_KL of the lists ``ids`` (with this reranker's alpha and rank weighting)."""
        ids = self._ids("ids", ids)
        t = self._target(history, p, ids.shape[0])
        return _core.miscalibration(
            ids, *self._cats(), self.alpha, rank_weighting=self.rank_weighting, **t
        )

    def interest_recall(
        self, ids, history=None, p=None, threshold: float = 0.1, exclude_top: bool = True
    ) -> np.ndarray:
        """Per-user share of the user's interests (p(g|u) >= threshold, without the top
        category when ``exclude_top``) present in the list; NaN when the user has none."""
        ids = self._ids("ids", ids)
        threshold = _unit_interval("threshold", threshold, closed=True)
        t = self._target(history, p, ids.shape[0])
        return _core.interest_recall(ids, *self._cats(), threshold, bool(exclude_top), **t)

    def rerank_dataframe(
        self,
        df,
        user_col: str = "user",
        item_col: str = "item",
        score_col: str = "score",
        history=None,
        p=None,
        n: int = 10,
        lam: float | None = None,
        num_threads: int | None = None,
    ):
        """Reranks a long-format frame of (user, item, score) candidates. User values index the
        rows of ``history`` / ``p``. Returns a frame with columns user, item, score, rank (from
        1, as everywhere in personae), best first per user, without padding rows."""
        import pandas as pd

        for c in (user_col, item_col, score_col):
            if c not in df.columns:
                raise ValueError(f"df has no column {c!r}; columns are {list(df.columns)}")
        users = df[user_col].to_numpy()
        if users.size and users.dtype.kind not in "iu":
            raise TypeError(f"{user_col} must hold integer user indices, got dtype {users.dtype}")
        items = df[item_col].to_numpy()
        if items.size and items.dtype.kind not in "iu":
            raise TypeError(f"{item_col} must hold integer item indices, got dtype {items.dtype}")
        order = np.argsort(users, kind="stable")
        users, items = users[order], items[order].astype(np.int64)
        scores = df[score_col].to_numpy()[order]
        uniq, start, counts = np.unique(users, return_index=True, return_counts=True)
        width = int(counts.max()) if counts.size else 0
        row = np.repeat(np.arange(uniq.size), counts)
        col = np.arange(users.size) - np.repeat(start, counts)
        cand = np.full((uniq.size, width), -1, dtype=np.int64)
        sc = np.full((uniq.size, width), -np.inf, dtype=np.float32)
        cand[row, col] = items
        sc[row, col] = scores
        if history is not None:
            if not sp.issparse(history):
                history = getattr(history, "matrix", history)
            n_rows = history.shape[0]
        else:
            n_rows = np.asarray(p).shape[0]
        if uniq.size and (uniq.min() < 0 or uniq.max() >= n_rows):
            raise ValueError(f"{user_col}: user indices must lie in 0..{n_rows}")
        sub_h = sp.csr_matrix(history)[uniq] if history is not None else None
        sub_p = np.asarray(p)[uniq] if p is not None else None
        r = self.rerank(cand, sc, history=sub_h, p=sub_p, n=n, lam=lam, num_threads=num_threads)
        keep = r.ids >= 0
        return pd.DataFrame(
            {
                user_col: np.repeat(uniq, keep.sum(1)),
                item_col: r.ids[keep],
                score_col: r.scores[keep],
                "rank": np.nonzero(keep)[1] + 1,
            }
        )


def rerank_dataframe(
    df,
    reranker: CalibratedReranker,
    user_col: str = "user",
    item_col: str = "item",
    score_col: str = "score",
    history=None,
    p=None,
    n: int = 10,
    **kwargs,
):
    """Function form of :meth:`CalibratedReranker.rerank_dataframe`."""
    return reranker.rerank_dataframe(
        df, user_col, item_col, score_col, history=history, p=p, n=n, **kwargs
    )
