"""How many items must a certified bf16 (or int16) first pass hand to exact fp32 rescoring?
Mult-VAE top-N on the Gowalla-shaped model, measured on a sample of users.

Usage: python benches/multvae_bf16_bound.py [--model runs/gowalla-multvae] [--users 1024]

The first pass scores ``h' . w'_j + b_j`` with ``h'``, ``w'_j`` the bf16 roundings (round to
nearest even, subnormals flushed, as AVX512_BF16 / AMX see them) and fp32 accumulation. Against
the fp32 path's score ``s_j`` it is off by at most (Cauchy-Schwarz on
``h.w - h'.w' = (h - h').w + h'.(w - w')`` plus fp32 accumulation of both paths)

    E_uj = ||h - h'|| ||w_j|| + ||h'|| ||w_j - w'_j|| + g (||h'|| ||w'_j|| + ||h|| ||w_j||)

with ``g = gamma_K(2^-23)`` (K = padded hidden; 2^-23 covers any rounding mode). An item
survives when its upper bound reaches the user's N-th best lower bound (seen items masked).
Also reported: the plain relative bound ``(2^-7 + 2^-16 + 2 g) ||h|| ||w_j||`` (each operand's
worst-case rounding), and the union of survivors over a chunk of 256 users. The int16 pass of
AVX2 CPUs is measured the same way: each row scaled to int16 within ``floor(sqrt((2^31 - 1) /
K))`` (``h' = q * scale``), its residual norms in the same bound.
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


def int16(x: np.ndarray, kpad: int) -> np.ndarray:
    """Each row scaled to int16 as the AVX2 pass does (``scale = max |x| / lim`` in float32,
    ``q = round(x / scale)`` within ``lim``), returned as the values ``q * scale`` (float64)."""
    lim = np.floor(np.sqrt((2**31 - 1) / kpad))
    x = np.asarray(x, dtype=np.float64)
    scale = (np.abs(x).max(axis=1, keepdims=True) / lim).astype(np.float32).astype(np.float64)
    scale[scale == 0] = 1.0
    return np.clip(np.round(x / scale), -lim, lim) * scale


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
    nh, nw = np.linalg.norm(h64, axis=1), np.linalg.norm(w64, axis=1)
    seen = xs.nonzero()
    print(f"weights: {source}; {a.users} sampled users, {w.shape[0]} items, hidden {k}, top-{a.n}")

    def tight_bound(hq: np.ndarray, wq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The low-precision scores and their certified bound (residual norms)."""
        nhq, nwq = np.linalg.norm(hq, axis=1), np.linalg.norm(wq, axis=1)
        dh, dw = np.linalg.norm(h64 - hq, axis=1), np.linalg.norm(w64 - wq, axis=1)
        bound = (
            dh[:, None] * nw[None]
            + nhq[:, None] * dw[None]
            + g * (nhq[:, None] * nwq[None] + nh[:, None] * nw[None])
        )
        return hq @ wq.T + bias, bound

    s16, tight = tight_bound(h16, w16)
    si16, tight_i16 = tight_bound(int16(h, kpad), int16(w, kpad))
    plain = (2.0**-7 + 2.0**-16 + 2 * g) * nh[:, None] * nw[None]
    err = np.abs(s16 - s32)
    print(
        f"|s_bf16 - s_fp32| / bound: max {np.max(err / tight):.3f} (tight), "
        f"{np.max(err / plain):.3f} (plain); median bound / score spread "
        f"{np.median(tight / s32.std(axis=1, keepdims=True)):.4f}; int16: max "
        f"{np.max(np.abs(si16 - s32) / tight_i16):.3f}, median bound / spread "
        f"{np.median(tight_i16 / s32.std(axis=1, keepdims=True)):.4f}"
    )
    for name, sq, bound in (
        ("bf16, tight (residual norms)", s16, tight),
        ("bf16, plain (2^-7 relative)", s16, plain),
        ("int16 (AVX2), tight", si16, tight_i16),
    ):
        lo, up = sq - bound, sq + bound
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
