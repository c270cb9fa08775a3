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


def multvae_scores(t: dict[str, np.ndarray], x: sp.csr_matrix) -> np.ndarray:
    """Mult-VAE mean-latent logits from exported tensors, densely, in float64."""
    x = x.toarray().astype(np.float64)
    norm = np.sqrt((x**2).sum(1, keepdims=True))
    xn = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    h1 = np.tanh(xn @ t["enc_item"] + t["enc_b"])
    mu = h1 @ t["mu_w"] + t["mu_b"]
    h2 = np.tanh(mu @ t["dec_w"] + t["dec_b"])
    return h2 @ t["dec_item"].T.astype(np.float64) + t["dec_item_b"]


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


def ampcf_scores(t: dict[str, np.ndarray], personas: np.ndarray, tau: float):
    """AMP-CF scores and attention from the definition, densely, in float64:
    ``(scores [B, I], attention [B, I, K])``."""
    p = personas.astype(np.float64)  # [B, K, d]
    q = t["item_emb"].astype(np.float64)  # [I, d]

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    pa, qa = unit(p @ t["proj_user"]), unit(q @ t["proj_item"])
    logits = np.einsum("bka,ia->bik", pa, qa) / tau
    e = np.exp(logits - logits.max(-1, keepdims=True))
    att = e / e.sum(-1, keepdims=True)
    dots = np.einsum("bkd,id->bik", p, q)
    return (att * dots).sum(-1) + t["item_bias"], att
