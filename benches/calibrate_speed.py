"""Calibrated reranking speed: the Rust greedy against its strongest peer, a well-written numpy
greedy batched over users with the exact sparse marginal gain
(``../shared/peers/calibrate_numpy.py``), on the same data in the same run. Every list is
compared: the two must agree. (The slow per-candidate Python oracle in tests/ checks
correctness only; it is no peer for a speed ratio.)

Usage: python benches/calibrate_speed.py [--users 10000] [--threads N] [--repeat 5]
       [--split] [--hash]

--repeat is the number of rounds, each timing the Rust reranker (best of three calls) and the
peer (one call) in turn.

--split also prints the one-thread per-call split (microseconds a user: the full call, n = 1,
lambda 0, one candidate with n = 1). --hash prints SHA-256 digests of the outputs (lists,
scores, C_KL) on the bench's users and on 400 random problems (ties, padding, weighted
categories, two attributes, every setting), to compare two builds bit for bit.

Random seeded data: 10,000 users x 100 candidates x 20 categories -> top-10, lambda 0.5,
smoothing 0.01, min-max scores, histories of ~50 items over a 5,000-item catalogue with 1-3
genres per item. Both sides use all the threads given (numpy's BLAS is not involved: the peer is
element-wise work, single-threaded by nature).
"""

from __future__ import annotations

import hashlib
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


def split(rr, cand, scores, history, repeat: int) -> None:
    """One-thread microseconds a user of the parts of a call."""
    users = cand.shape[0]
    calls = {
        "full": dict(n=10),
        "n = 1 (set-up + one step)": dict(n=1),
        "lambda 0 (plain top-10 + C_KL)": dict(n=10, lam=0.0),
    }
    for name, kw in calls.items():
        s, _ = best_of(
            repeat, lambda kw=kw: rr.rerank(cand, scores, history=history, num_threads=1, **kw)
        )
        print(f"  one thread, {name:32s}: {s / users * 1e6:6.2f} us a user")
    s, _ = best_of(
        repeat,
        lambda: rr.rerank(cand[:, :1], scores[:, :1], history=history, n=1, num_threads=1),
    )
    print(f"  one thread, {'one candidate, n = 1':32s}: {s / users * 1e6:6.2f} us a user")


def digest(out, lists, ckl) -> None:
    """Adds the lists and scores to `lists`, the C_KL before and after to `ckl`."""
    for h, parts in ((lists, (out.ids, out.scores)), (ckl, (out.ckl_before, out.ckl_after))):
        for part in parts:
            for v in part.values() if isinstance(part, dict) else [part]:
                h.update(np.ascontiguousarray(v).tobytes())


def random_categories(rng, items: int, g: int) -> sp.csr_matrix:
    """Items x g categories: flags of a random density, half the time with weights 1-3."""
    f = (rng.random((items, g)) < rng.choice([0.1, 0.3, 0.7])).astype(np.float32)
    if rng.random() < 0.5:
        f *= rng.choice([1, 2, 3], size=f.shape).astype(np.float32)
    return sp.csr_matrix(f)


def random_problems(count: int = 400) -> tuple[str, str]:
    """SHA-256 of the lists and scores (or error messages), and of the C_KL, of `count`
    seeded random problems."""
    h, ckl = hashlib.sha256(), hashlib.sha256()
    for seed in range(count):
        rng = np.random.default_rng(seed)
        items, cats = int(rng.integers(1, 60)), int(rng.integers(1, 12))
        users = int(rng.integers(1, 20))
        width = int(rng.integers(1, min(items, 40) + 1))

        two = rng.random() < 0.3
        lam = float(rng.choice([0.0, 0.3, 0.5, 0.9, 1.0]))
        kw = dict(
            smoothing=float(rng.choice([0.01, 0.2])),
            rank_weighting=bool(rng.random() < 0.5),
            normalize=str(rng.choice(["minmax", "softmax", "none"])),
            min_history=int(rng.integers(0, 3)),
            prior_weight=float(rng.choice([0.0, 0.3])),
        )
        try:
            if two:
                rr = CalibratedReranker(
                    {
                        "a": random_categories(rng, items, cats),
                        "b": random_categories(rng, items, int(rng.integers(1, 5))),
                    },
                    lam={"a": lam / 2, "b": lam / 2},
                    **kw,
                )
            else:
                rr = CalibratedReranker(random_categories(rng, items, cats), lam=lam, **kw)
            cand = np.stack([rng.permutation(items)[:width] for _ in range(users)])
            cand[rng.random(cand.shape) < 0.1] = -1
            if rng.random() < 0.4:
                sc = rng.choice([0.0, 0.5, 1.0], size=cand.shape).astype(np.float32)  # ties
            else:
                sc = rng.standard_normal(cand.shape).astype(np.float32)
            sc[cand < 0] = -np.inf
            hist = sp.random(users, items, density=0.2, format="csr", random_state=seed)
            out = rr.rerank(cand, sc, history=hist, n=int(rng.integers(1, width + 3)))
            digest(out, h, ckl)
        except (ValueError, TypeError) as e:
            h.update(repr(e).encode())
    return h.hexdigest()[:16], ckl.hexdigest()[:16]


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
    )
    a.add_argument("--split", action="store_true", help="one-thread per-call split")
    a.add_argument("--hash", action="store_true", help="output digests to compare builds")
    a = a.parse_args()
    sys.path.insert(0, str(PEERS))
    from calibrate_numpy import rerank_numpy

    flags, history, cand, scores = data(a.users, a.candidates, a.categories, a.items, seed=0)
    rr = CalibratedReranker(sp.csr_matrix(flags), lam=0.5, smoothing=0.01)
    rr.rerank(cand[:100], scores[:100], history=history[:100], n=a.n)  # warm-up
    # Rounds alternate the two sides, so that the host's slow minutes (its speed drifts by tens
    # of percent) hit both alike: each round times Rust (best of three calls) and the peer
    # (one call); the ratio is that of the best times, with the per-round ratios beside it.
    rust_s = peer_s = np.inf
    ratios = []
    for _ in range(a.repeat):
        r_s, out = best_of(
            3, lambda: rr.rerank(cand, scores, history=history, n=a.n, num_threads=a.threads)
        )
        p_s, peer_ids = best_of(
            1, lambda: rerank_numpy(cand, scores, sp.csr_matrix(flags), history, n=a.n, lam=0.5)
        )
        rust_s, peer_s = min(rust_s, r_s), min(peer_s, p_s)
        ratios.append(p_s / r_s)
    same = float((peer_ids == out.ids).all(axis=1).mean())
    print(
        f"{a.users} users x {a.candidates} candidates x {a.categories} categories -> top-{a.n}, "
        f"threads={a.threads or 'all'}; {cpu()}"
    )
    # The greedy's steps, as the core reports them: the certified f32 first pass with AVX-512
    # (look-ups by register permutes) or AVX2 and FMA (by permute trees) for users whose
    # categories in play and terms fit its tables (all of the bench's), else the f64 steps.
    # (PERSONAE_ISA=avx2 holds the core to AVX2.)
    from personae import _core

    kind = {"avx512": "AVX-512", "avx2": "AVX2"}.get(_core.rerank_first_pass())
    path = f"f32 first pass ({kind}), near ties in f64" if kind else "f64 steps"
    print(f"  greedy steps      : {path}")
    print(f"  personae (Rust)   : {rust_s:8.3f} s  {a.users / rust_s:12,.0f} users/s")
    print(f"  numpy peer        : {peer_s:8.3f} s  {a.users / peer_s:12,.0f} users/s")
    print(
        f"  ratio             : {peer_s / rust_s:,.1f}x (per round: median "
        f"{np.median(ratios):.1f}x, {min(ratios):.1f}x-{max(ratios):.1f}x over {len(ratios)})"
    )
    print(f"  identical lists   : {same:.2%} of {a.users} users")
    print(
        f"  mean C_KL plain top-{a.n} {np.nanmean(out.ckl_before):.4f} -> "
        f"calibrated {np.nanmean(out.ckl_after):.4f}"
    )
    if a.split:
        split(rr, cand, scores, history, a.repeat)
    if a.hash:
        h, ckl = hashlib.sha256(), hashlib.sha256()
        digest(out, h, ckl)
        rh, rckl = random_problems()
        print(f"  SHA-256, lists and scores: bench {h.hexdigest()[:16]}, random problems {rh}")
        print(f"  SHA-256, C_KL            : bench {ckl.hexdigest()[:16]}, random problems {rckl}")


if __name__ == "__main__":
    main()
