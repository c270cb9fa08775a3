"""Ranking metrics computed by the Rust core.

Definitions (for a user with held-out items T and a list L cut at K; ids of -1 are padding):

- ``recall``: |L[:K] ∩ T| / |T|  (LightGCN / BARS; what Gowalla numbers use)
- ``recall_multvae``: |L[:K] ∩ T| / min(K, |T|)  (the Mult-VAE paper)
- ``ndcg``: DCG with binary gains 1/log2(rank + 2), over the ideal DCG of min(K, |T|) hits
- ``recall_multvae_micro``: total hits over total min(K, |T|) across users (a micro average);
  this is what ``implicit.evaluation.ranking_metrics_at_k`` reports as "precision"
- ``hit_rate``: share of users with at least one hit
- ``coverage``: share of the catalogue that appears in at least one list
- ``minority_taste_recall``: recall at K over the user's held-out *minority-taste* items only:
  items with at least one category, every one of which holds less than 10% of the user's
  training history (p(g|u) < 0.1, with p(g|u) the category distribution of the history, each
  item's categories normalised to sum to 1, as in Steck 2018). These are the tastes an average
  model crushes; a model that keeps them raises it, and calibration that restores the
  proportions with the wrong minority items does not.

Users without held-out items (for minority-taste recall: without a held-out minority-taste
item) are left out of every mean (not counted as zeros).

``item_categories``, wherever a function takes it, is a :class:`personae.Categories` (built
once; the Rust objects measuring with it are built on its first use and kept) or a bare items x
categories matrix (scipy sparse or dense; 0/1 flags are normalised per row), converted once per
call. Row i is the item of index i in the lists ``ids`` and of column i of ``history`` /
``truth``: the model's item order. A Categories built with ``item_ids`` (e.g.
``Categories.from_frame(df, "item", "genre", item_ids=model.item_ids)``) raises
``InvalidInputError`` when ``history`` or ``truth`` is an :class:`~personae.Interactions` over
other items, or the same items in another order.
"""

from __future__ import annotations

import numpy as np

from personae import _core
from personae._validate import csr, integer, matrix

__all__ = [
    "calibration",
    "category_coverage",
    "coverage",
    "evaluate",
    "minority_interest_recall",
    "minority_taste_recall",
    "miscalibration",
    "ranking_metrics",
]


def ranking_metrics(ids, truth, k: int) -> dict[str, np.ndarray]:
    """Per-user ``recall``, ``recall_multvae``, ``ndcg`` and ``hit`` at `k` (NaN for users
    without held-out items). `truth` is a CSR matrix whose row u holds user u's relevant items."""
    return _core.ranking_metrics(matrix("ids", ids, np.int64), integer("k", k), csr("truth", truth))


def coverage(ids, n_items: int) -> float:
    """Share of the `n_items` catalogue recommended to at least one user."""
    return _core.coverage(matrix("ids", ids, np.int64), integer("n_items", n_items))


def evaluate(
    ids, truth, k: int, *, item_categories=None, history=None, threshold: float = 0.1
) -> dict[str, float]:
    """Means over users with held-out items, plus catalogue coverage of the top-k lists.

    With `item_categories` (a :class:`personae.Categories` or an items x categories matrix in
    the model's item order, see the module docs) and `history` (the training rows the lists
    were made from), also the means of the per-user calibration metrics, whose per-user arrays
    hold NaN for users they do not apply to: ``minority_taste_recall@k`` (over users with a
    held-out minority-taste item, see :func:`minority_taste_recall`) and ``c_kl@k`` (mean
    C_KL of the top-k lists against the history, :func:`miscalibration`, over the users with
    held-out items and a categorised history)."""
    if item_categories is not None and history is None:
        raise ValueError(
            "evaluate with item_categories needs history= (the training rows): the minority "
            "tastes and C_KL are measured against each user's history"
        )
    m = ranking_metrics(ids, truth, k)
    has = np.isfinite(m["ndcg"])
    mean = (lambda v: float(v[has].mean())) if has.any() else (lambda v: float("nan"))
    ids = matrix("ids", ids, np.int64)
    truth_rows = csr("truth", truth)  # an Interactions too
    sizes = np.diff(truth_rows.indptr)[has]
    denom = np.minimum(k, sizes)
    micro = float((m["recall_multvae"][has] * denom).sum() / denom.sum()) if has.any() else np.nan
    out = {
        f"recall@{k}": mean(m["recall"]),
        f"recall_multvae@{k}": mean(m["recall_multvae"]),
        f"recall_multvae_micro@{k}": micro,
        f"ndcg@{k}": mean(m["ndcg"]),
        f"hit_rate@{k}": mean(m["hit"]),
        f"coverage@{k}": coverage(ids[:, :k], truth_rows.shape[1]),
        "users": int(has.sum()),
    }
    if item_categories is not None:
        r = _reranker(item_categories)
        mtr = r.taste_recall(ids, truth, history, None, k, threshold)
        out[f"minority_taste_recall@{k}"] = nanmean(mtr)
        out[f"c_kl@{k}"] = nanmean(r.miscalibration(ids[:, :k], history, None)[has])
    return out


def nanmean(v) -> float:
    """The mean of the finite entries of a per-user metric (NaN marks users it does not apply
    to), NaN when there is none."""
    v = np.asarray(v, dtype=np.float64)
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


# -- calibration (Steck, RecSys 2018); definitions in personae.rerank -------------------------


def _reranker(item_categories, smoothing: float = 0.01, rank_weighting: bool = False):
    from personae.categories import Categories
    from personae.rerank import CalibratedReranker

    if isinstance(item_categories, CalibratedReranker):
        return item_categories
    if isinstance(item_categories, Categories):
        # Built once per Categories and setting, kept on the object for its next calls.
        key = (float(smoothing), bool(rank_weighting))
        r = item_categories._rerankers.get(key)
        if r is None:
            r = CalibratedReranker(
                item_categories, smoothing=smoothing, rank_weighting=rank_weighting
            )
            item_categories._rerankers[key] = r
        return r
    return CalibratedReranker(item_categories, smoothing=smoothing, rank_weighting=rank_weighting)


def miscalibration(
    ids, item_categories, history=None, p=None, smoothing: float = 0.01, rank_weighting=False
) -> np.ndarray:
    """Per-user C_KL = KL(p || q~) (natural log) of the lists ``ids`` against the category
    distribution p of ``history`` (or ``p`` given directly); q~ = (1 - s) q + s p with the
    smoothing s. NaN for users without a target (no categorised history, or fewer interactions
    than the reranker's ``min_history``; a zero row of ``p``): C_KL needs p.
    ``item_categories``: a :class:`personae.Categories` or an items x categories matrix in the
    model's item order (0/1 flags are normalised per row; see the module docs)."""
    return _reranker(item_categories, smoothing, rank_weighting).miscalibration(ids, history, p)


def minority_interest_recall(
    ids, item_categories, history=None, p=None, threshold: float = 0.1
) -> np.ndarray:
    """Per-user share of the user's minority interests (categories with p(g|u) >= threshold
    other than the user's top category) that some listed item belongs to; NaN for users with
    no minority interest. ``item_categories``: a :class:`personae.Categories` or a matrix in
    the model's item order (module docs)."""
    return _reranker(item_categories).interest_recall(ids, history, p, threshold, True)


def minority_taste_recall(
    ids, truth, item_categories, history=None, p=None, k: int = 10, threshold: float = 0.1
) -> np.ndarray:
    """Per-user minority-taste recall at `k` (definition in the module docs): the share of the
    user's held-out minority-taste items (rows of ``truth``, users x items) found in the first
    `k` of ``ids``. p(g|u) comes from ``history`` (the training rows, users x items) or is
    given as ``p``; ``item_categories``: a :class:`personae.Categories` or an items x
    categories matrix in the model's item order (0/1 flags are normalised per row; module
    docs). NaN for users without a held-out minority-taste item."""
    return _reranker(item_categories).taste_recall(ids, truth, history, p, k, threshold)


def category_coverage(ids, item_categories, history=None, p=None) -> np.ndarray:
    """Per-user share of the categories of the user's history (p(g|u) > 0) that some listed
    item belongs to; NaN for users without categorised history. ``item_categories``: a
    :class:`personae.Categories` or a matrix in the model's item order (module docs)."""
    return _reranker(item_categories).interest_recall(ids, history, p, 0.0, False)


def calibration(ids, item_categories, history=None, p=None, smoothing: float = 0.01) -> dict:
    """Means over the users each applies to: ``ckl`` (C_KL, users with a target),
    ``minority_recall`` and ``category_coverage``.
    ``item_categories``: a :class:`personae.Categories` or a matrix in the model's item order
    (module docs)."""
    r = _reranker(item_categories, smoothing)
    return {
        "ckl": nanmean(r.miscalibration(ids, history, p)),
        "minority_recall": nanmean(r.interest_recall(ids, history, p, 0.1, True)),
        "category_coverage": nanmean(r.interest_recall(ids, history, p, 0.0, False)),
    }


def mean_ndcg(ids, truth, k: int) -> float:
    """Mean NDCG@`k` of lists `ids` (users x >= k item indices, -1 padded) against the rows of
    `truth` (sparse, users x items), over users with held-out items (0.0 when none has any):
    the validation number every fit's search and early stopping reads."""
    m = nanmean(ranking_metrics(ids, truth, k)["ndcg"])
    return 0.0 if np.isnan(m) else m
