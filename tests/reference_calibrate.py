"""A slow, obvious numpy/Python reference of calibrated reranking (Steck, RecSys 2018).

Same definitions as ``rust/core/src/calibrate.rs``: natural log; q(g|u) = sum_r w_r c(g|L_r) /
sum_r w_r with w_r = 1 or 1/log2(r + 2); q~ = (1 - alpha) q + alpha p; C_KL = KL(p || q~) over
categories with p(g) > 0; greedy maximisation of (1 - lambda) * sum of relevance - lambda * C_KL,
recomputing the whole objective for every candidate at every step (ties to the earlier column).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def normalise_rows(flags) -> np.ndarray:
    """Each item's category distribution: its row of 0/1 flags divided by the row's sum."""
    f = np.asarray(flags.toarray() if sp.issparse(flags) else flags, dtype=np.float64)
    s = f.sum(1, keepdims=True)
    return np.divide(f, s, out=np.zeros_like(f), where=s > 0)


def target(cats: np.ndarray, history: sp.csr_matrix | None = None, p=None) -> np.ndarray:
    """Dense p(g|u) (users x categories) from a dense item x category matrix."""
    if p is not None:
        p = np.asarray(p, dtype=np.float64)
        s = p.sum(1, keepdims=True)
        return np.divide(p, s, out=np.zeros_like(p), where=s > 0)
    mass = np.asarray(history.astype(np.float64) @ cats)
    s = mass.sum(1, keepdims=True)
    return np.divide(mass, s, out=np.zeros_like(mass), where=s > 0)


def weights(k: int, rank_weighting: bool) -> np.ndarray:
    r = np.arange(k)
    return 1.0 / np.log2(r + 2) if rank_weighting else np.ones(k)


def ckl(items, p_u, cats, alpha, rank_weighting=False) -> float:
    """C_KL of a list; NaN without a target (p_u all zero): KL(p || q~) needs p."""
    if not p_u.sum() > 0:
        return float("nan")
    items = list(items)
    w = weights(len(items), rank_weighting)
    keep = np.array([i >= 0 for i in items], dtype=bool)
    ids = np.array(items, dtype=np.int64)[keep]
    w = w[keep]
    q = (w[:, None] * cats[ids]).sum(0) / w.sum() if len(ids) else np.zeros(cats.shape[1])
    qt = (1 - alpha) * q + alpha * p_u
    pos = p_u > 0
    return float((p_u[pos] * np.log(p_u[pos] / qt[pos])).sum())


def normalise(s: np.ndarray, how: str) -> np.ndarray:
    s = s.astype(np.float64)
    if how == "none":
        return s
    if how == "minmax":
        span = s.max() - s.min()
        return (s - s.min()) / span if span > 0 else np.zeros_like(s)
    e = np.exp(s - s.max())
    return e / e.sum()


def objective(items, rel_of, p_u, cats, lam, alpha, rank_weighting=False) -> float:
    return (1 - lam) * sum(rel_of[i] for i in items) - lam * ckl(
        items, p_u, cats, alpha, rank_weighting
    )


def objective_multi(items, rel_of, ps, cats, lams, alpha, rank_weighting=False) -> float:
    """Several attributes: (1 - sum lam_a) * relevance - sum_a lam_a * C_KL,a (attributes
    whose target is all zero contribute no term)."""
    kl = sum(
        lam * ckl(items, p, c, alpha, rank_weighting)
        for p, c, lam in zip(ps, cats, lams, strict=True)
        if p.sum() > 0
    )
    return (1 - sum(lams)) * sum(rel_of[i] for i in items) - kl


def rerank_user_multi(cand, scores, ps, cats, n, lams, alpha, normalize="minmax"):
    """The greedy with several attributes, recomputing everything (ties to the earlier column)."""
    valid = [j for j in range(len(cand)) if cand[j] >= 0]
    plain = [int(cand[j]) for j in sorted(valid, key=lambda j: (-float(scores[j]), j))[:n]]
    if sum(lams) == 0 or all(p.sum() == 0 for p in ps) or not valid:
        return plain
    rel = normalise(np.array([scores[j] for j in valid]), normalize)
    rel_of = {int(cand[j]): r for j, r in zip(valid, rel, strict=True)}
    chosen: list[int] = []
    left = [int(cand[j]) for j in valid]
    for _ in range(min(n, len(valid))):
        vals = [objective_multi(chosen + [i], rel_of, ps, cats, lams, alpha) for i in left]
        best = left[int(np.argmax(vals))]
        chosen.append(best)
        left.remove(best)
    return chosen


def rerank_user(cand, scores, p_u, cats, n, lam, alpha, rank_weighting=False, normalize="minmax"):
    """(chosen item ids, C_KL before, C_KL after) for one user."""
    valid = [j for j in range(len(cand)) if cand[j] >= 0]
    plain = sorted(valid, key=lambda j: (-float(scores[j]), j))[:n]
    plain_ids = [int(cand[j]) for j in plain]
    before = ckl(plain_ids, p_u, cats, alpha, rank_weighting)
    if lam == 0 or p_u.sum() == 0 or not valid:
        return plain_ids, before, before
    rel = normalise(np.array([scores[j] for j in valid]), normalize)
    rel_of = {int(cand[j]): r for j, r in zip(valid, rel, strict=True)}
    chosen: list[int] = []
    left = [int(cand[j]) for j in valid]
    for _ in range(min(n, len(valid))):
        vals = [
            objective(chosen + [i], rel_of, p_u, cats, lam, alpha, rank_weighting) for i in left
        ]
        best = left[int(np.argmax(vals))]
        chosen.append(best)
        left.remove(best)
    return chosen, before, ckl(chosen, p_u, cats, alpha, rank_weighting)


def rerank(cand, scores, cats, p, n, lam, alpha=0.01, rank_weighting=False, normalize="minmax"):
    """Batch version: (ids [b x n] padded with -1, ckl_before, ckl_after)."""
    b = cand.shape[0]
    ids = np.full((b, n), -1, dtype=np.int64)
    before = np.zeros(b)
    after = np.zeros(b)
    for u in range(b):
        chosen, before[u], after[u] = rerank_user(
            cand[u], scores[u], p[u], cats, n, lam, alpha, rank_weighting, normalize
        )
        ids[u, : len(chosen)] = chosen
    return ids, before, after


def interest_recall(ids, p, cats, threshold=0.1, exclude_top=True) -> np.ndarray:
    out = []
    for u in range(ids.shape[0]):
        present = set()
        for i in ids[u]:
            if i >= 0:
                present |= set(np.flatnonzero(cats[i] > 0).tolist())
        top = int(np.argmax(p[u])) if p[u].max() > 0 else -1
        interests = [
            g
            for g in range(p.shape[1])
            if (p[u, g] >= threshold if threshold > 0 else p[u, g] > 0)
            and not (exclude_top and g == top)
        ]
        out.append(np.mean([g in present for g in interests]) if interests else np.nan)
    return np.array(out)
