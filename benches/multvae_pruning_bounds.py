"""Could exact top-N skip part of the Mult-VAE decoder? Two upper bounds on a user's item scores,
measured on the exported Gowalla model: how many items each leaves to score exactly for top-100.

Usage: python benches/multvae_pruning_bounds.py [--model runs/gowalla-multvae] [--users 1000]

- Rank-r bound: with V the top-r right singular vectors of the decoder's item matrix W,
  ``h.w_j = (hV).(W V)_j + h_perp.r_j`` with ``|h_perp.r_j| <= ||h_perp|| ||r_j||``. An item must
  be scored exactly when its upper bound reaches the user's 100th best lower bound; the cheap
  part costs r / hidden of the full decoder.
- L1 bound: ``h`` is a tanh output, so ``h.w_j + b_j <= ||w_j||_1 + b_j``; an item whose bound is
  below every user's 100th score (per chunk of 256 users) could be skipped for the chunk.

BENCHMARKS.md (Mult-VAE speed) cites the output: neither bound leaves little enough work to pay.
"""

from __future__ import annotations

import argparse

import numpy as np

import personae

from _common import RUNS, gowalla


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(RUNS / "gowalla-multvae"))
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--n", type=int, default=100)
    a = ap.parse_args()
    train, _ = gowalla()
    model = personae.load(a.model)
    t = model._core.tensors()
    rows = np.sort(np.random.default_rng(0).choice(train.n_users, a.users, replace=False))
    x = train.matrix[rows]
    # The decoder's last hidden layer h for each sampled user, in float64 (numpy reference).
    xin = x.toarray().astype(np.float64)
    xin /= np.maximum(np.linalg.norm(xin, axis=1, keepdims=True), 1e-12)
    h = np.tanh(xin @ t["enc_item"] + t["enc_b"])
    z = h @ t["mu_w"] + t["mu_b"]
    h = np.tanh(z @ t["dec_w"] + t["dec_b"])
    w, b = t["dec_item"].astype(np.float64), t["dec_item_b"].astype(np.float64)
    seen = x.nonzero()
    scores = h @ w.T + b
    scores[seen] = -np.inf
    tau = -np.sort(-scores, axis=1)[:, a.n - 1]  # each user's n-th best score

    _, v = np.linalg.eigh(w.T @ w)
    v = v[:, ::-1]
    print(f"{a.users} Gowalla users, {w.shape[0]} items, hidden {w.shape[1]}, top-{a.n}")
    for r in (64, 100, 150, 200):
        vr = v[:, :r]
        wv = w @ vr
        resid = np.linalg.norm(w - wv @ vr.T, axis=1)
        hv = h @ vr
        h_perp = np.linalg.norm(h - hv @ vr.T, axis=1)
        approx = hv @ wv.T + b
        lower = approx - h_perp[:, None] * resid
        upper = approx + h_perp[:, None] * resid
        lower[seen] = upper[seen] = -np.inf
        cut = -np.sort(-lower, axis=1)[:, a.n - 1]
        left = (upper >= cut[:, None]).mean()
        print(f"rank-{r} bound ({r / w.shape[1]:.0%} of the FLOPs): {left:.1%} of items left")
    l1 = np.abs(w).sum(1) + b
    chunk_min = [tau[c : c + 256].min() for c in range(0, a.users, 256)]
    skippable = np.mean([(l1 < m).mean() for m in chunk_min])
    print(f"L1 bound: {skippable:.1%} of items skippable per chunk of 256 users")


if __name__ == "__main__":
    main()
