"""Calibrated reranking (Steck, "Calibrated Recommendations", RecSys 2018).

Candidates from any model (personae, implicit, a torch model, a database query) are reranked so
that each list's category distribution matches the user's history, over one category attribute
or several at once (genre and decade, topic and source), each with its own lambda. Definitions
(natural log), per attribute:

- ``item_categories``: a :class:`personae.Categories` (or a bare items x categories matrix);
  row i is item i's category distribution c(g|i) (with ``normalize_rows=True``, 0/1 genre flags
  are divided by their count: three genres get 1/3 each). An empty row means "no category".
  Row i must be the item of index i in the candidate lists and of column i of the history (the
  model's item order); a :class:`~personae.Categories` built with ``item_ids`` checks an
  :class:`~personae.Interactions` history against them and raises on other items or another
  order.
- p(g|u) = sum over the history of h_ui c(g|i), normalised to sum to 1 (h_ui: the history's
  values, e.g. ones or recency weights); or p given directly.
- q(g|u) = sum_r w_r c(g|L_r) / sum_r w_r over the list L, with w_r = 1, or 1/log2(r + 2) when
  ``rank_weighting``; q~ = (1 - s) q + s p with the ``smoothing`` s; C_KL = KL(p || q~) over
  the g with p(g) > 0.
- The list maximises (1 - sum_a lam_a) * sum of relevance - sum_a lam_a * C_KL,a by Steck's
  greedy algorithm. Relevance is the score after per-user normalisation: ``"minmax"`` (default;
  (s - min) / (max - min) over the user's candidates, so one ``lam`` means the same across
  models), ``"softmax"`` (exp(s - max), summing to 1) or ``"none"`` (raw scores).
- ``lam = 0`` returns the candidates sorted by score (ties in input order); users without a target
  (empty history, or fewer than ``min_history`` interactions) pass through in that order too,
  and their C_KL is NaN.
- ``prior_weight`` = beta > 0 mixes a prior into every user's history target, Steck's
  p~ = beta p0 + (1 - beta) p, for users with tiny histories; p0 (``prior``) defaults to the
  catalogue's category distribution. ``ckl_before`` / ``ckl_after`` are then measured against p~.

Every rule on these values is checked once, in the Rust core, when the reranker is built (the
category matrices, lambdas, smoothing, prior) or when it is called (candidates, scores, targets).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from personae import _core
from personae._validate import csr, integer, matrix, optional_integer, real
from personae.categories import Categories, same_items

__all__ = ["CalibratedReranker", "RerankResult", "rerank_dataframe"]


class RerankResult(NamedTuple):
    """Reranked ``ids`` and their original ``scores`` (users x n, padded with -1 / -inf) and
    the per-user C_KL of the plain top-n (``ckl_before``) and of the reranked list: 1-D arrays
    for one attribute, a dict of them (by attribute name) for several; NaN for a user without
    a target for the attribute (C_KL needs p: average them with ``np.nanmean``)."""

    ids: np.ndarray
    scores: np.ndarray
    ckl_before: np.ndarray | dict[str, np.ndarray]
    ckl_after: np.ndarray | dict[str, np.ndarray]


def _one_target(history, p) -> None:
    if (history is None) == (p is None):
        raise ValueError("give exactly one of history= (users x items) and p= (users x categories)")


def _category_matrix(name: str, m) -> sp.csr_matrix:
    if isinstance(m, Categories):
        return m._csr  # validated and canonical when the Categories was built
    if isinstance(m, np.ndarray) or isinstance(m, list):
        m = sp.csr_matrix(matrix(name, m, np.float32))
    m = csr(name, m)
    if not m.has_canonical_format:
        m = m.copy()
        m.sum_duplicates()
    return m


class CalibratedReranker:
    """Steck's greedy calibrated reranker, built once over one or several category attributes.

    >>> rr = CalibratedReranker(genres, lam=0.5)          # doctest: +SKIP
    >>> out = rr.rerank(ids, scores, history=train, n=10)  # doctest: +SKIP
    >>> rr2 = CalibratedReranker({"genre": g, "decade": d}, lam={"genre": 0.4, "decade": 0.2})
    ...                                                    # doctest: +SKIP

    Args:
        item_categories: a :class:`personae.Categories` (or items x categories, scipy sparse or
            dense, e.g. ``AMPCF.taste_categories()``), or a dict of them (one per attribute,
            same items) for several attributes. Row i is the item of index i in candidate
            lists and column i of histories: the model's item order. Categories built with
            ``item_ids`` make every call given an :class:`~personae.Interactions` history (or
            truth) over other items, or in another order, raise ``InvalidInputError``.
        lam: the calibration weight in [0, 1]; with several attributes a dict of weights (one
            per attribute; their sum at most 1) or one number for each.
        smoothing: s of q~ = (1 - s) q + s p, in (0, 1). (``alpha=`` is the deprecated name.)
        normalize: per-user score normalisation: ``"minmax"``, ``"softmax"`` or ``"none"``.
        rank_weighting: weight list positions by 1 / log2(rank + 2) in q.
        normalize_rows: divide each item's row by its sum (0/1 flags become distributions).
        min_history: users with fewer history interactions (of positive weight) pass through
            unchanged.
        prior_weight: beta of Steck's prior, in [0, 1).
        prior: p0 per category (a dict per attribute with several); default: the catalogue's
            category distribution.
    """

    def __init__(
        self,
        item_categories,
        lam=0.5,
        smoothing: float = 0.01,
        normalize: str = "minmax",
        rank_weighting: bool = False,
        normalize_rows: bool = True,
        min_history: int = 0,
        prior_weight: float = 0.0,
        prior=None,
        *,
        alpha: float | None = None,
    ):
        if alpha is not None:
            warnings.warn(
                "CalibratedReranker(alpha=...) is deprecated: the smoothing of q is now called "
                "smoothing=",
                DeprecationWarning,
                stacklevel=2,
            )
            smoothing = alpha
        # The constructor's arguments, to rebuild from on unpickling (see __getstate__).
        self._args = {k: v for k, v in locals().items() if k not in ("self", "alpha")}
        self.multi = isinstance(item_categories, dict)
        cats = item_categories if self.multi else {"categories": item_categories}
        self.names = list(cats)
        lams = self._per_attribute("lam", lam)
        priors = self._per_attribute("prior", prior, scalar_ok=False)
        self.item_categories = {a: _category_matrix("item_categories", cats[a]) for a in self.names}
        self._item_ids = _shared_item_ids(cats)
        attrs = [
            (
                self.item_categories[a],
                real("lam", lams[a]),
                None if priors[a] is None else np.asarray(priors[a], dtype=np.float64).ravel(),
                bool(normalize_rows),
            )
            for a in self.names
        ]
        self._core = _core.Reranker(
            attrs,
            real("smoothing", smoothing),
            str(normalize),
            bool(rank_weighting),
            integer("min_history", min_history),
            real("prior_weight", prior_weight),
        )
        self.lam = lams if self.multi else lams["categories"]
        self.smoothing, self.normalize = float(smoothing), str(normalize)
        self.rank_weighting, self.min_history = bool(rank_weighting), int(min_history)
        self.prior_weight = float(prior_weight)
        if not self.multi:
            self.item_categories = self.item_categories["categories"]

    def _per_attribute(self, name: str, value, scalar_ok: bool = True) -> dict:
        if isinstance(value, dict):
            if not self.multi:
                raise TypeError(f"{name} is a dict but item_categories is a single matrix")
            missing = set(self.names) ^ set(value)
            if missing:
                raise ValueError(
                    f"{name} must name exactly the attributes {self.names}, got {sorted(value)}"
                )
            return dict(value)
        if self.multi and value is not None and not scalar_ok:
            raise TypeError(f"{name} must be a dict of per-attribute values")
        return {a: value for a in self.names}

    def __getstate__(self) -> dict:
        # The constructor's arguments (category matrices and settings): pickling rebuilds and
        # revalidates the Rust reranker, e.g. on each Ray worker.
        return self._args

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    @property
    def alpha(self) -> float:
        """Deprecated name of :attr:`smoothing`."""
        return self.smoothing

    @property
    def n_items(self) -> int:
        """Number of items (rows of the category matrices)."""
        return self._core.n_items

    @property
    def n_categories(self):
        """Number of categories (a dict per attribute with several)."""
        g = self._core.n_categories
        return dict(zip(self.names, g, strict=True)) if self.multi else g[0]

    @property
    def prior(self):
        """p0 of Steck's prior (a dict per attribute with several)."""
        p = [np.asarray(x) for x in self._core.priors]
        return dict(zip(self.names, p, strict=True)) if self.multi else p[0]

    def __repr__(self) -> str:
        return (
            f"CalibratedReranker(items={self.n_items}, categories={self.n_categories}, "
            f"lam={self.lam}, smoothing={self.smoothing}, normalize={self.normalize!r}, "
            f"rank_weighting={self.rank_weighting})"
        )

    @property
    def item_ids(self) -> np.ndarray | None:
        """The item id of each row of the categories, when they were built with ids (see
        :class:`personae.Categories`); None otherwise."""
        return None if self._item_ids is None else self._item_ids.copy()

    # -- conversions ----------------------------------------------------------------------
    def _check_items(self, data, what: str) -> None:
        """An `Interactions` over other items than the categories' ids raises (see
        :class:`personae.Categories`); bare matrices carry no ids to check."""
        given = getattr(data, "item_ids", None)
        if self._item_ids is not None and given is not None and not sp.issparse(data):
            same_items(self._item_ids, np.asarray(given), what, "categories")

    def _target(self, history, p):
        _one_target(history, p)
        if history is not None:
            self._check_items(history, "history")
            return csr("history", history)
        ps = p if isinstance(p, dict) else {a: p for a in self.names}
        if self.multi and not isinstance(p, dict):
            raise TypeError("with several attributes, p must be a dict of per-attribute arrays")
        if set(ps) != set(self.names):
            raise ValueError(
                f"p must name exactly the attributes {sorted(self.names)}, got {sorted(ps)}"
            )
        return [matrix("p", ps[a], np.float32) for a in self.names]

    def _per_user(self, values: np.ndarray):
        """users x attributes -> 1-D (one attribute) or a dict of 1-D arrays."""
        if self.multi:
            return {a: values[:, k] for k, a in enumerate(self.names)}
        return values[:, 0]

    def _lams(self, lam):
        if lam is None:
            return None
        lams = self._per_attribute("lam", lam)
        return [real("lam", lams[a]) for a in self.names]

    # -- public API ------------------------------------------------------------------------
    def rerank(
        self,
        candidates,
        scores,
        history=None,
        p=None,
        n: int = 10,
        lam=None,
        num_threads: int | None = None,
    ) -> RerankResult:
        """Reranks each row of ``candidates`` (users x C item indices; -1 = padding) with its
        ``scores`` (same shape, finite for real candidates) into ``n`` items, in one call. The
        target comes from ``history`` (scipy sparse users x items, values = interaction weights)
        or ``p`` (dense users x categories; a dict per attribute with several). ``lam``
        overrides the reranker's lambda(s) for this call."""
        ids, out, before, after = self._core.rerank(
            matrix("candidates", candidates, np.int64),
            matrix("scores", scores, np.float32),
            self._target(history, p),
            integer("n", n),
            self._lams(lam),
            optional_integer("num_threads", num_threads),
        )
        return RerankResult(ids, out, self._per_user(before), self._per_user(after))

    def __call__(self, candidates, scores, history, n: int):
        """``(ids, scores)`` of :meth:`rerank` with the history as target: the
        ``rerank(ids, scores, user_items, n)`` step that pipelines such as
        :func:`personae.distributed.recommend` call on every batch."""
        out = self.rerank(candidates, scores, history=history, n=n)
        return out.ids, out.scores

    def target(self, history=None, p=None):
        """p(g|u) of every user (users x categories, float64; a dict per attribute with
        several), after ``min_history`` and the prior."""
        ps = self._core.target(self._target(history, p))
        return dict(zip(self.names, ps, strict=True)) if self.multi else ps[0]

    def miscalibration(self, ids, history=None, p=None):
        """Per-user C_KL of the lists ``ids`` (with this reranker's smoothing and rank
        weighting): 1-D, or a dict per attribute with several."""
        out = self._core.miscalibration(matrix("ids", ids, np.int64), self._target(history, p))
        return self._per_user(out)

    def interest_recall(
        self, ids, history=None, p=None, threshold: float = 0.1, exclude_top: bool = True
    ):
        """Per-user share of the user's interests (p(g|u) >= threshold, without the top
        category when ``exclude_top``) present in the list; NaN when the user has none."""
        out = self._core.interest_recall(
            matrix("ids", ids, np.int64),
            self._target(history, p),
            real("threshold", threshold),
            bool(exclude_top),
        )
        return self._per_user(out)

    def taste_recall(self, ids, truth, history=None, p=None, k: int = 10, threshold: float = 0.1):
        """Per-user minority-taste recall at `k` (see
        :func:`personae.metrics.minority_taste_recall`): 1-D, or a dict per attribute."""
        self._check_items(truth, "truth")
        out = self._core.taste_recall(
            matrix("ids", ids, np.int64),
            self._target(history, p),
            csr("truth", truth),
            integer("k", k),
            real("threshold", threshold),
        )
        return self._per_user(out)

    def rerank_dataframe(
        self,
        df,
        user_col: str = "user",
        item_col: str = "item",
        score_col: str = "score",
        history=None,
        p=None,
        n: int = 10,
        lam=None,
        num_threads: int | None = None,
    ):
        """Reranks a long-format frame of (user, item, score) candidates. User values index the
        rows of ``history`` / ``p``. Returns a frame with columns user, item, score, rank (from
        1, as everywhere in personae), best first per user, without padding rows. Its ``attrs``
        hold ``users`` (the distinct user values, sorted) and, for them, ``ckl_before`` /
        ``ckl_after`` as in :class:`RerankResult`."""
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
        _one_target(history, p)
        if history is not None:
            self._check_items(history, "history")
            history = csr("history", history)
            n_rows = history.shape[0]
        else:
            n_rows = np.asarray(p if not isinstance(p, dict) else next(iter(p.values()))).shape[0]
        if uniq.size and (uniq.min() < 0 or uniq.max() >= n_rows):
            raise ValueError(f"{user_col}: user indices must lie in 0..{n_rows}")
        sub_h = history[uniq] if history is not None else None
        sub_p = None
        if p is not None:
            sub_p = (
                {a: np.asarray(v)[uniq] for a, v in p.items()}
                if isinstance(p, dict)
                else (np.asarray(p)[uniq])
            )
        r = self.rerank(cand, sc, history=sub_h, p=sub_p, n=n, lam=lam, num_threads=num_threads)
        keep = r.ids >= 0
        out = pd.DataFrame(
            {
                user_col: np.repeat(uniq, keep.sum(1)),
                item_col: r.ids[keep],
                score_col: r.scores[keep],
                "rank": np.nonzero(keep)[1] + 1,
            }
        )
        out.attrs.update(users=uniq, ckl_before=r.ckl_before, ckl_after=r.ckl_after)
        return out


def rerank_dataframe(df, reranker: CalibratedReranker, *args, **kwargs):
    """Function form of :meth:`CalibratedReranker.rerank_dataframe`:
    ``rerank_dataframe(df, reranker, ...)`` is ``reranker.rerank_dataframe(df, ...)``."""
    return reranker.rerank_dataframe(df, *args, **kwargs)


def _shared_item_ids(cats: dict) -> np.ndarray | None:
    """The item ids the attributes' Categories were built on (None without any); attributes
    built on different ids, or the same ids in another order, raise."""
    ids, first = None, None
    for name, c in cats.items():
        c_ids = c._item_ids if isinstance(c, Categories) else None
        if c_ids is None:
            continue
        if ids is None:
            ids, first = c_ids, name
        else:
            same_items(ids, c_ids, f"item_categories[{name!r}]", f"attribute {first!r}")
    return ids
