"""AMP-CF scoring speed: personae's fused Rust top-N against the obvious torch forward pass
that materialises ``batch x K x items`` (logits, attention, dot products), on Gowalla-sized
random weights (29,858 users, 40,981 items, K = 3, d = 64), top-100 with each user's training
items masked (LightGCN's Gowalla train.txt).

Each implementation runs in its own subprocess so peak memory is measured cleanly: the reported
"peak extra" is the growth of the process's peak RSS (ru_maxrss) during scoring, over its peak
after loading the data and weights. Both sides use the same number of threads and the same
precomputed normalised item projections.

    python benches/ampcf_speed.py --threads 2
    python benches/ampcf_speed.py --threads 2 --users 5000   # a subset, for a quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GOWALLA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gowalla"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(args):
    import personae

    inter = personae.Interactions.from_lightgcn(GOWALLA / "train.txt")
    m = inter.matrix.tocsr()
    if args.users:
        m = m[: args.users]
    m.sort_indices()
    u, i, k, d = inter.n_users, inter.n_items, args.k, args.dim
    rng = np.random.default_rng(0)
    t = {
        "personas": rng.normal(0, 0.1, (u, k, d)).astype(np.float32),
        "item_emb": rng.normal(0, 0.1, (i, d)).astype(np.float32),
        "item_bias": rng.normal(0, 0.1, i).astype(np.float32),
        "proj_user": (np.eye(d) + rng.normal(0, 0.1, (d, d))).astype(np.float32),
        "proj_item": (np.eye(d) + rng.normal(0, 0.1, (d, d))).astype(np.float32),
    }
    return m, t, personae.AMPCF.from_tensors(t, tau=0.2)


def run_rust(args) -> dict:
    m, _, model = setup(args)
    users = np.arange(m.shape[0])
    model.recommend(m[:300], 100, users=users[:300], num_threads=args.threads)  # warm-up
    base = peak_mib()
    t0 = time.perf_counter()
    ids, scores = model.recommend(m, 100, users=users, num_threads=args.threads)
    secs = time.perf_counter() - t0
    np.save(args.out + ".rust.npy", ids[:500])
    return {"seconds": secs, "users": len(users), "peak_extra_mib": peak_mib() - base}


def run_torch(args) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    m, t, _ = setup(args)
    tt = {k: torch.from_numpy(v) for k, v in t.items()}
    tau = 0.2
    n_users = m.shape[0]
    ids = np.empty((n_users, 100), dtype=np.int64)

    @torch.no_grad()
    def forward(rows, qa):
        p = tt["personas"][rows]  # [B, K, d]
        pa = F.normalize(p @ tt["proj_user"], dim=-1)
        att = torch.softmax(torch.einsum("bka,ia->bki", pa, qa) / tau, dim=1)  # [B, K, I]
        dots = torch.einsum("bkd,id->bki", p, tt["item_emb"])  # [B, K, I]
        s = (att * dots).sum(1) + tt["item_bias"]
        sub = m[rows]
        r = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
        s[torch.from_numpy(r), torch.from_numpy(sub.indices.astype(np.int64))] = -torch.inf
        return torch.topk(s, 100, dim=1).indices.numpy()

    with torch.no_grad():
        qa = F.normalize(tt["item_emb"] @ tt["proj_item"], dim=-1)  # precomputed, as in Rust
    forward(np.arange(16), qa)  # warm-up
    base = peak_mib()
    t0 = time.perf_counter()
    for s in range(0, n_users, args.batch):
        rows = np.arange(s, min(s + args.batch, n_users))
        ids[rows] = forward(rows, qa)
    secs = time.perf_counter() - t0
    np.save(args.out + ".torch.npy", ids[:500])
    return {"seconds": secs, "users": n_users, "peak_extra_mib": peak_mib() - base}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--users", type=int, default=0, help="first N users only (0: all)")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=256, help="torch users per batch")
    ap.add_argument("--which", choices=["rust", "torch"], default=None)
    ap.add_argument("--out", default="/tmp/ampcf_speed")
    args = ap.parse_args()
    if args.which:
        res = run_rust(args) if args.which == "rust" else run_torch(args)
        print(json.dumps(res))
        return
    out = {}
    for which in ("rust", "torch"):
        cmd = [sys.executable, __file__, "--which", which] + sys.argv[1:]
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[which] = json.loads(r.stdout.strip().splitlines()[-1])
        o = out[which]
        print(
            f"{which:5s}: {o['seconds']:.1f}s  {o['users'] / o['seconds']:.0f} users/s  "
            f"peak extra {o['peak_extra_mib']:.0f} MiB"
        )
    a, b = np.load(args.out + ".rust.npy"), np.load(args.out + ".torch.npy")
    overlap = np.mean([len(set(x) & set(y)) / 100 for x, y in zip(a, b, strict=True)])
    print(
        f"speed-up rust vs torch (batch {args.batch}, {args.threads} threads): "
        f"{out['torch']['seconds'] / out['rust']['seconds']:.2f}x; "
        f"memory ratio torch/rust: "
        f"{out['torch']['peak_extra_mib'] / max(out['rust']['peak_extra_mib'], 1):.1f}x; "
        f"top-100 overlap on 500 users: {overlap:.4f}"
    )


if __name__ == "__main__":
    main()
