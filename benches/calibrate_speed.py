"""Calibrated reranking speed: the Rust greedy vs the straightforward numpy/Python reference
(tests/reference_calibrate.py, the same greedy recomputing the objective per candidate).

Usage: python benches/calibrate_speed.py [--users 10000] [--ref-users 200] [--threads N]

Random seeded data: 10,000 users x 100 candidates x 20 categories -> top-10, lambda 0.5,
alpha 0.01, min-max scores, histories of ~50 items over a 5,000-item catalogue with 1-3 genres
per item. The reference is timed on the first --ref-users users only (it runs ~100 users/s) and
its lists are checked against Rust's on those users.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from personae import CalibratedReranker  # noqa: E402

import reference_calibrate as ref  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--categories", type=int, default=20)
    ap.add_argument("--items", type=int, default=5_000)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--ref-users", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()

    flags, history, cand, scores = data(a.users, a.candidates, a.categories, a.items, seed=0)
    rr = CalibratedReranker(sp.csr_matrix(flags), lam=0.5)
    rr.rerank(cand[:100], scores[:100], history=history[:100], n=a.n)  # warm-up
    best = np.inf
    for _ in range(a.repeat):
        t = time.perf_counter()
        out = rr.rerank(cand, scores, history=history, n=a.n, num_threads=a.threads)
        best = min(best, time.perf_counter() - t)
    rust_ups = a.users / best

    k = min(a.ref_users, a.users)
    cats = rr.item_categories.toarray().astype(np.float64)
    t = time.perf_counter()
    p = ref.target(cats, history[:k])
    ids, _, after = ref.rerank(cand[:k], scores[:k], cats, p, a.n, 0.5)
    ref_s = time.perf_counter() - t
    ref_ups = k / ref_s
    same = float((ids == out.ids[:k]).all(axis=1).mean())
    ckl_err = float(np.max(np.abs(after - out.ckl_after[:k]) / np.maximum(after, 1e-12)))

    print(
        f"{a.users} users x {a.candidates} candidates x {a.categories} categories -> top-{a.n}, "
        f"threads={a.threads or 'all'}"
    )
    print(f"  rust      : {best:8.3f} s  {rust_ups:12,.0f} users/s  (best of {a.repeat})")
    print(f"  reference : {ref_s:8.3f} s  {ref_ups:12,.0f} users/s  (first {k} users)")
    print(f"  ratio     : {rust_ups / ref_ups:,.0f}x")
    print(f"  identical lists on the reference users: {same:.1%}; max C_KL rel. diff {ckl_err:.1e}")
    print(
        f"  mean C_KL plain top-{a.n} {out.ckl_before.mean():.4f} -> "
        f"calibrated {out.ckl_after.mean():.4f}"
    )


if __name__ == "__main__":
    main()
