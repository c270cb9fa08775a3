"""Calibrated reranking speed: the Rust greedy against its strongest peer, a well-written numpy
greedy batched over users with the exact sparse marginal gain
(``../shared/peers/calibrate_numpy.py``), on the same data in the same run. Every list is
compared: the two must agree. (The slow per-candidate Python oracle in tests/ checks
correctness only; it is no peer for a speed ratio.)

Usage: python benches/calibrate_speed.py [--users 10000] [--threads N] [--repeat 5]

Random seeded data: 10,000 users x 100 candidates x 20 categories -> top-10, lambda 0.5,
smoothing 0.01, min-max scores, histories of ~50 items over a 5,000-item catalogue with 1-3
genres per item. Both sides use all the threads given (numpy's BLAS is not involved: the peer is
element-wise work, single-threaded by nature).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from personae import CalibratedReranker

from _common import cpu, parser

PEERS = Path(__file__).resolve().parent.parent.parent / "shared" / "peers"


def data(users: int, cands: int, cats: int, items: int, seed: int):
    rng = np.random.default_rng(seed)
    flags = np.zeros((items, cats), dtype=np.float32)
    for i in range(items):
        flags[i, rng.choice(cats, size=rng.integers(1, 4), replace=False)] = 1
    history = sp.random(
        users, items, density=50 / items, format="csr", random_state=rng, dtype=np.float32
    )
    history.data[:] = 1
    cand = np.argsort(rng.random((users, items)), axis=1)[:, :cands].astype(np.int64)
    scores = rng.standard_normal((users, cands)).astype(np.float32)
    return flags, history, cand, scores


def best_of(repeat: int, f):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    a = parser(
        __doc__,
        users=10_000,
        candidates=100,
        categories=20,
        items=5_000,
        n=10,
        threads=None,
        repeat=5,
    ).parse_args()
    sys.path.insert(0, str(PEERS))
    from calibrate_numpy import rerank_numpy

    flags, history, cand, scores = data(a.users, a.candidates, a.categories, a.items, seed=0)
    rr = CalibratedReranker(sp.csr_matrix(flags), lam=0.5, smoothing=0.01)
    rr.rerank(cand[:100], scores[:100], history=history[:100], n=a.n)  # warm-up
    rust_s, out = best_of(
        a.repeat, lambda: rr.rerank(cand, scores, history=history, n=a.n, num_threads=a.threads)
    )
    peer_s, peer_ids = best_of(
        max(1, a.repeat // 2),
        lambda: rerank_numpy(cand, scores, sp.csr_matrix(flags), history, n=a.n, lam=0.5),
    )
    same = float((peer_ids == out.ids).all(axis=1).mean())
    print(
        f"{a.users} users x {a.candidates} candidates x {a.categories} categories -> top-{a.n}, "
        f"threads={a.threads or 'all'}; {cpu()}"
    )
    print(f"  personae (Rust)   : {rust_s:8.3f} s  {a.users / rust_s:12,.0f} users/s")
    print(f"  numpy peer        : {peer_s:8.3f} s  {a.users / peer_s:12,.0f} users/s")
    print(f"  ratio             : {peer_s / rust_s:,.1f}x")
    print(f"  identical lists   : {same:.2%} of {a.users} users")
    print(
        f"  mean C_KL plain top-{a.n} {out.ckl_before.mean():.4f} -> "
        f"calibrated {out.ckl_after.mean():.4f}"
    )


if __name__ == "__main__":
    main()
