"""How many items must a certified bf16 first pass hand to exact fp32 rescoring? Mult-VAE top-N
on the Gowalla-shaped model, measured on a sample of users.

Usage: python benches/multvae_bf16_bound.py [--model runs/gowalla-multvae] [--users 1024]

The first pass scores ``h' . w'_j + b_j`` with ``h'``, ``w'_j`` the bf16 roundings (round to
nearest even, subnormals flushed, as AVX512_BF16 / AMX see them) and fp32 accumulation. Against
the fp32 path's score ``s_j`` it is off by at most (Cauchy-Schwarz on
``h.w - h'.w' = (h - h').w + h'.(w - w')`` plus fp32 accumulation of both paths)

    E_uj = ||h - h'|| ||w_j|| + ||h'|| ||w_j - w'_j|| + g (||h'|| ||w'_j|| + ||h|| ||w_j||)

with ``g = gamma_K(2^-23)`` (K = padded hidden; 2^-23 covers any rounding mode). An item
survives when its upper bound reaches the user's N-th best lower bound (seen items masked).
Also reported: the plain relative bound ``(2^-7 + 2^-16 + 2 g) ||h|| ||w_j||`` (each operand's
worst-case rounding), and the union of survivors over a chunk of 256 users.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import RUNS, gowalla


def bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> nearest-even bf16 value (as float32), subnormal results flushed to zero."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)
    return np.where(np.abs(r) < np.finfo(np.float32).tiny, np.float32(0), r)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(RUNS / "gowalla-multvae"))
    ap.add_argument("--users", type=int, default=1024)
    ap.add_argument("--n", type=int, default=100)
    a = ap.parse_args()
    import torch

    import personae
    from personae.train.loop import sparse_batch
    from personae.train.multvae import MultVAENet

    train, _ = gowalla()
    x = train.matrix
    if (Path(a.model) / "manifest.json").exists():
        t = personae.load(a.model).tensors()
        source = a.model
    else:
        torch.manual_seed(0)
        t = MultVAENet(x.shape[1]).export()
        source = "random init (seed 0)"
    rows = np.sort(np.random.default_rng(0).choice(x.shape[0], a.users, replace=False))
    xs = x[rows]
    # h: the decoder's last hidden layer, float32, from the same network the bench times.
    net = MultVAENet(x.shape[1]).load_tensors(t).eval()
    with torch.no_grad():
        b = sparse_batch(xs, np.arange(a.users), torch.device("cpu"))
        h = torch.tanh(net.dec(net.encode(b)[0])).numpy().astype(np.float32)
    w, bias = t["dec_item"], t["dec_item_b"]
    k = h.shape[1]
    kpad = -(-k // 32) * 32
    g = kpad * 2.0**-23 / (1 - kpad * 2.0**-23)
    s32 = (h @ w.T + bias).astype(np.float64)  # an fp32 path on the same h
    h16, w16 = bf16(h).astype(np.float64), bf16(w).astype(np.float64)
    h64, w64 = h.astype(np.float64), w.astype(np.float64)
    s16 = h16 @ w16.T + bias
    nh, nw = np.linalg.norm(h64, axis=1), np.linalg.norm(w64, axis=1)
    nh16, nw16 = np.linalg.norm(h16, axis=1), np.linalg.norm(w16, axis=1)
    dh, dw = np.linalg.norm(h64 - h16, axis=1), np.linalg.norm(w64 - w16, axis=1)
    tight = (
        dh[:, None] * nw[None]
        + nh16[:, None] * dw[None]
        + g * (nh16[:, None] * nw16[None] + nh[:, None] * nw[None])
    )
    plain = (2.0**-7 + 2.0**-16 + 2 * g) * nh[:, None] * nw[None]
    seen = xs.nonzero()
    err = np.abs(s16 - s32)
    print(f"weights: {source}; {a.users} sampled users, {w.shape[0]} items, hidden {k}, top-{a.n}")
    print(
        f"|s_bf16 - s_fp32| / bound: max {np.max(err / tight):.3f} (tight), "
        f"{np.max(err / plain):.3f} (plain); median bound / score spread "
        f"{np.median(tight / s32.std(axis=1, keepdims=True)):.4f}"
    )
    for name, bound in (("tight (residual norms)", tight), ("plain (2^-7 relative)", plain)):
        lo, up = s16 - bound, s16 + bound
        lo[seen] = up[seen] = -np.inf
        cut = -np.sort(-lo, axis=1)[:, a.n - 1]
        surv = up >= cut[:, None]
        per_user = surv.sum(1)
        masked = s32.copy()
        masked[seen] = -np.inf
        tau = -np.sort(-masked, axis=1)[:, a.n - 1]
        assert ((masked >= tau[:, None]) <= surv).all(), "a true top-N item was pruned"
        unions = [surv[c : c + 256].any(0).mean() for c in range(0, a.users, 256)]
        p99 = np.percentile(per_user, 99)
        print(
            f"{name}: survivors per user mean {per_user.mean():.0f} "
            f"({per_user.mean() / w.shape[0]:.2%} of items), p99 {p99:.0f}, "
            f"max {per_user.max()}; union over 256 users {np.mean(unions):.1%} of items"
        )


if __name__ == "__main__":
    main()
