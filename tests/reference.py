"""Slow, obvious references that pin every fast path (numpy only)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_n(scores: np.ndarray, n: int, seen: sp.csr_matrix | None = None, exclude=None):
    """Stable descending sort per row (ties to the lower index), masked items dropped, padded
    with -1 / -inf."""
    b, i = scores.shape
    ids = np.full((b, n), -1, dtype=np.int64)
    out = np.full((b, n), -np.inf, dtype=np.float32)
    for u in range(b):
        keep = np.ones(i, dtype=bool)
        if seen is not None:
            keep[seen[u].indices] = False
        if exclude is not None:
            keep[exclude] = False
        cand = np.flatnonzero(keep)
        order = cand[np.lexsort((cand, -scores[u, cand].astype(np.float64)))][:n]
        ids[u, : len(order)] = order
        out[u, : len(order)] = scores[u, order]
    return ids, out


def assert_same_lists(got_ids, got_scores, dense, ref_ids, ref_scores):
    """`got` is the reference list up to ties: the same padding, the reference's scores in
    order (the dense scores of the listed items), and the same item wherever its score is
    apart from every other candidate's near the list."""
    np.testing.assert_array_equal(got_ids < 0, ref_ids < 0)
    listed = ref_ids >= 0
    scale = max(1.0, float(np.abs(dense[np.isfinite(dense)]).max(initial=0.0)))
    tol = 1e-4 * scale
    at = np.take_along_axis(dense, np.where(listed, got_ids, 0), 1)
    np.testing.assert_allclose(at[listed], ref_scores[listed], rtol=0, atol=tol)
    np.testing.assert_allclose(got_scores[listed], ref_scores[listed], rtol=0, atol=tol)
    for u in range(dense.shape[0]):
        row = dense[u]
        for p in np.flatnonzero(listed[u]):
            s = ref_scores[u, p]
            # Ties: another unmasked item within tol of this score.
            if (np.abs(row - s) <= 2 * tol).sum() == 1:
                assert got_ids[u, p] == ref_ids[u, p], (u, p)


def multvae_scores(t: dict[str, np.ndarray], x: sp.csr_matrix) -> np.ndarray:
    """Mult-VAE mean-latent logits from exported tensors, densely, in float64."""
    x = x.toarray().astype(np.float64)
    norm = np.sqrt((x**2).sum(1, keepdims=True))
    xn = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    h1 = np.tanh(xn @ t["enc_item"] + t["enc_b"])
    mu = h1 @ t["mu_w"] + t["mu_b"]
    h2 = np.tanh(mu @ t["dec_w"] + t["dec_b"])
    return h2 @ t["dec_item"].T.astype(np.float64) + t["dec_item_b"]


def multvae_top_n(t: dict[str, np.ndarray], x: sp.csr_matrix, n: int):
    """Top-`n` of the float64 Mult-VAE logits, each user's own items masked: (ids, scores,
    the dense float64 logits)."""
    dense = multvae_scores(t, x)
    b, i = dense.shape
    ids = np.full((b, n), -1, dtype=np.int64)
    out = np.full((b, n), -np.inf)
    for u in range(b):
        keep = np.ones(i, dtype=bool)
        keep[x[u].indices] = False
        cand = np.flatnonzero(keep)
        order = cand[np.lexsort((cand, -dense[u, cand]))][:n]
        ids[u, : len(order)] = order
        out[u, : len(order)] = dense[u, order]
    return ids, out, dense


def ranking(ids: np.ndarray, truth: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """Per-user metrics written from their textbook definitions."""
    out = {key: [] for key in ("recall", "recall_multvae", "ndcg", "hit")}
    for u in range(ids.shape[0]):
        rel = set(truth[u].indices.tolist())
        if not rel:
            for key in out:
                out[key].append(np.nan)
            continue
        lst = [x for x in ids[u, :k].tolist()]
        hits = [r for r, x in enumerate(lst) if x in rel]
        dcg = sum(1 / np.log2(r + 2) for r in hits)
        idcg = sum(1 / np.log2(r + 2) for r in range(min(k, len(rel))))
        out["recall"].append(len(hits) / len(rel))
        out["recall_multvae"].append(len(hits) / min(k, len(rel)))
        out["ndcg"].append(dcg / idcg)
        out["hit"].append(float(len(hits) > 0))
    return {key: np.array(v) for key, v in out.items()}


def unit_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its largest value (all-zero rows stay zero), in float64."""
    x = sp.csr_matrix(x, dtype=np.float64, copy=True)
    for u in range(x.shape[0]):
        row = x.data[x.indptr[u] : x.indptr[u + 1]]
        if len(row) and row.max() > 0:
            row /= row.max()
    return x


def ampcf_scores(t: dict[str, np.ndarray], cfg: dict, x: sp.csr_matrix):
    """AMP-CF scores, attention, personas and each persona's part of the score from the
    definition (personae.ampcf), one user and one item at a time, in float64: ``(scores [B, I],
    attention [B, I, K], taste [B, K], parts [B, I, K])``.
    `t`: the model's tensors; `cfg`: n_personas, tau, mix, delta, gamma. Each history is
    first divided by its largest weight, as the model does (lists independent of the scale)."""
    x = unit_rows(x)
    n = x.shape[1]
    k, tau, mix = cfg["n_personas"], cfg["tau"], cfg["mix"]
    delta, gamma = cfg["delta"], cfg["gamma"]
    if "votes" in t:
        S = t["votes"].astype(np.float64)
    else:
        S = (
            sp.csr_matrix((t["votes_data"], t["votes_indices"], t["votes_indptr"]), shape=(n, n))
            .toarray()
            .astype(np.float64)
        )
    if "low_left" in t:
        S = S + t["low_left"].astype(np.float64) @ t["low_right"].T.astype(np.float64)
    Z = t["item_space"].astype(np.float64)
    lab = t["item_cluster"]
    M = t["centroids"].astype(np.float64)
    scores = np.zeros((x.shape[0], n))
    att = np.zeros((x.shape[0], n, k))
    taste = np.full((x.shape[0], k), -1)
    parts = np.zeros((x.shape[0], n, k))
    for u in range(x.shape[0]):
        items, w = x[u].indices, x[u].data.astype(np.float64)
        if not len(items):
            continue
        mass = {}
        for i, v in zip(items, w, strict=False):
            if lab[i] >= 0:
                mass[lab[i]] = mass.get(lab[i], 0.0) + v
        kept = sorted((c for c in mass if mass[c] > 0), key=lambda c: (-mass[c], c))[:k]
        n_p = max(len(kept), 1)
        taste[u, : len(kept)] = kept
        persona = []
        for i in items:
            if not kept:
                persona.append(0)
            elif lab[i] in kept:
                persona.append(kept.index(lab[i]))
            else:
                sims = [M[c] @ Z[i] for c in kept]
                persona.append(int(np.argmax(sims)))
        persona = np.array(persona)
        share = np.array([w[persona == p].sum() for p in range(n_p)]) / w.sum()
        votes = np.array([w[persona == p] @ S[items[persona == p]] for p in range(n_p)])
        e = np.array([w[persona == p] @ Z[items[persona == p]] for p in range(n_p)])
        norm = np.linalg.norm(e, axis=1, keepdims=True)
        e = np.divide(e, norm, out=np.zeros_like(e), where=norm > 0)
        logits = (e @ Z.T) / tau + delta * np.log(share)[:, None]  # [P, I]
        a = np.exp(logits - logits.max(0))
        a /= a.sum(0)
        att[u, :, :n_p] = a.T
        total = votes.sum(0)
        if n_p == 1 or mix == 0:
            scores[u] = total
            parts[u, :, :n_p] = votes.T
        else:
            part = (1 - mix) * votes + mix * a * share[:, None] ** (-gamma) * votes
            scores[u] = part.sum(0)
            parts[u, :, :n_p] = part.T
    return scores, att, taste, parts


def minority_taste_recall(ids, truth, cats, history, k: int, threshold: float = 0.1):
    """Per-user minority-taste recall at k, from the definition (personae.metrics), in loops:
    p(g|u) from the history with each item's categories normalised to sum 1."""
    c = np.asarray(sp.csr_matrix(cats).todense(), dtype=np.float64)
    sums = c.sum(1, keepdims=True)
    c = np.divide(c, sums, out=np.zeros_like(c), where=sums > 0)
    out = []
    for u in range(ids.shape[0]):
        mass = np.zeros(c.shape[1])
        for i, w in zip(history[u].indices, history[u].data, strict=False):
            mass += w * c[i]
        p = mass / mass.sum() if mass.sum() > 0 else mass
        minority = [
            i for i in truth[u].indices if (c[i] > 0).any() and p[c[i] > 0].max() < threshold
        ]
        if not minority:
            out.append(np.nan)
            continue
        listed = set(ids[u, :k].tolist())
        out.append(sum(i in listed for i in minority) / len(minority))
    return np.array(out)
