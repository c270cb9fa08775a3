"""Simulated onboarding interviews (issue 13): how fast a new user's list improves with answers.

Usage: python benches/interview.py [--dataset ml-100k|ml-latest-small|synthetic] [--users 300]
           [--flip 0.0] [--no-opinion 0.0] [--plot interview.png] [--speed]

Protocol. 20% of the users (seed 0) are held out; ``personae.AMPCF()`` with its defaults is fitted
on the others. Each held-out user's items are split 80/20 (seed 1) into a history A and a test
part B. The interview knows nothing of the user: it asks about items of its pool, and the user
answers "yes" when the item is one of theirs (A or B), "no" otherwise; with ``--flip`` that share
of answers is flipped, with ``--no-opinion`` that share becomes "no opinion" (non-attitudes).
After 0, 1, 2, 3, 5, 10, 15 and 20 answers the interview's top-10 (asked items excluded) is
scored with NDCG@10 against B minus the items asked so far. Ceiling: the same model folded in on
the full history A (A masked), scored against B. Floor: popularity, knowing nothing of the user.
Strategies: the information criterion and the baselines random, popular and uncertainty.
On the synthetic data the true taste mix is known: the posterior mean over the model's taste
clusters, mapped to true tastes through each cluster's majority taste, is correlated with the
true mix after 10 answers. ``--speed`` times ``next_question`` on a 40,000-item catalogue.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import scipy.sparse as sp

import personae
from personae.data import _split_rows
from personae.interview import Interview, Tastes

from _common import RUNS, cpu

STEPS = [0, 1, 2, 3, 5, 10, 15, 20]
STRATEGIES = ["information", "random", "popular", "uncertainty"]


def dataset(name: str):
    """(Interactions, the true taste of every item or None)."""
    if name == "synthetic":
        d = personae.synthetic(n_users=3000, n_items=1500, n_tastes=8, seed=0)
        return d.interactions, d
    from calibrate_movielens import load

    return load(name)[0], None


def ndcg_one(ids: np.ndarray, truth: set, n_items: int) -> float:
    t = sorted(truth)
    m = sp.csr_matrix((np.ones(len(t), np.float32), (np.zeros(len(t), int), t)), (1, n_items))
    return float(personae.metrics.ranking_metrics(ids[None, :], m, 10)["ndcg"][0])


def simulate(tastes: Tastes, users, X, test, strategy, args, truth_mix=None, major=None):
    """Mean NDCG@10 after each number of answers, and (synthetic) mix correlations."""
    out = {s: [] for s in STEPS}
    est, true = [], []
    n_items = X.shape[1]
    for r in users:
        rng = np.random.default_rng([args.seed, int(r)])
        mine = set(X[r].indices.tolist())
        held = set(test[r].indices.tolist())
        it = Interview(tastes, strategy=strategy, seed=int(r))
        for k in range(max(STEPS) + 1):
            if k in STEPS:
                truth = held - set(it.asked().tolist())
                if truth:
                    out[k].append(ndcg_one(it.recommend(10)[0], truth, n_items))
            if k == 10 and truth_mix is not None:
                w = np.maximum(it.weights, 0)
                mix = np.zeros(truth_mix.shape[1])
                np.add.at(mix, major, w)
                est.append(mix / max(mix.sum(), 1e-12))
                true.append(truth_mix[r])
            if k == max(STEPS):
                break
            q = it.next_question()
            liked = int(q) in mine
            u = rng.random()
            if u < args.no_opinion:
                liked = None
            elif u < args.no_opinion + args.flip:
                liked = not liked
            it.answer(q, liked)
    res = {"ndcg@10": {s: float(np.mean(v)) for s, v in out.items()}}
    if est:
        res["mix_correlation@10"] = float(np.corrcoef(np.ravel(est), np.ravel(true))[0, 1])
    return res


def fitted(args, X):
    """``personae.AMPCF()`` with its defaults fitted on X, or the copy cached in ``--cache``
    by an earlier run with the same dataset and seed: (model, fit seconds, 0 when cached)."""
    from pathlib import Path

    path = Path(args.cache) / f"{args.dataset}-seed{args.seed}" if args.cache else None
    if path is not None and path.exists():
        return personae.load(path), 0.0
    t = time.perf_counter()
    model = personae.AMPCF(device="cpu", seed=args.seed).fit(X, show_progress=False)
    fit_s = time.perf_counter() - t
    if path is not None:
        model.save(path)
    return model, fit_s


def speed(repeat: int = 30) -> dict:
    """Median milliseconds of ``next_question`` on a 40,000-item catalogue, 64 tastes."""
    rng = np.random.default_rng(0)
    n, b = 40_000, 64
    t = Tastes(
        rng.standard_normal((n, b)),
        rng.standard_normal(n),
        rng.random(n),
        [str(k) for k in range(b)],
        np.zeros(b),
        np.eye(b),
    )
    out = {}
    for kind in ("item", "pair"):
        it = Interview(t, kind=kind)
        times = []
        for k in range(repeat):
            s = time.perf_counter()
            q = it.next_question()
            times.append(time.perf_counter() - s)
            it.answer(q, bool(k % 2))
        out[kind] = {"median_ms": 1e3 * float(np.median(times)), "pool": int(len(it.pool))}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--users", type=int, default=300, help="held-out users interviewed")
    p.add_argument("--flip", type=float, default=0.0, help="share of answers flipped")
    p.add_argument("--no-opinion", type=float, default=0.0, help="share of 'no opinion'")
    p.add_argument("--plot", default=None, help="write the NDCG curves to this PNG")
    p.add_argument("--speed", action="store_true", help="only time next_question")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None, help="directory to keep fitted models in")
    args = p.parse_args()
    if args.speed:
        print(json.dumps({"cpu": cpu(), "next_question": speed()}, indent=1))
        return
    data, truth = dataset(args.dataset)
    X = data.matrix.tocsr()
    rng = np.random.default_rng(args.seed)
    held_users = np.sort(rng.choice(X.shape[0], size=X.shape[0] // 5, replace=False))
    train_users = np.setdiff1d(np.arange(X.shape[0]), held_users)
    model, fit_s = fitted(args, X[train_users])
    Xh = X[held_users]
    A, B = _split_rows(Xh, 0.2, np.random.default_rng(args.seed + 1))
    live = np.flatnonzero(np.diff(B.indptr) > 0)
    users = live[: args.users]
    ndcg = lambda ids, m: float(np.nanmean(personae.metrics.ranking_metrics(ids, m, 10)["ndcg"]))  # noqa: E731
    ceiling = ndcg(model.recommend(A[users], 10)[0], B[users])
    pop = personae.Popularity().fit(X[train_users])
    floor = ndcg(
        pop.recommend(sp.csr_matrix((len(users), X.shape[1]), dtype=np.float32), 10)[0], B[users]
    )
    tastes = model.base_tastes()
    truth_mix = major = None
    if truth is not None:
        labels = model._fitted().item_cluster()
        major = np.array(
            [
                np.bincount(
                    truth.item_taste[labels == c], minlength=truth.user_mixture.shape[1]
                ).argmax()
                if (labels == c).any()
                else 0
                for c in range(model.n_tastes)
            ]
        )
        truth_mix = truth.user_mixture[held_users]
    results = {}
    for s in STRATEGIES:
        t = time.perf_counter()
        results[s] = simulate(tastes, users, Xh, B, s, args, truth_mix, major)
        results[s]["seconds"] = time.perf_counter() - t
        curve = " ".join(f"{k}:{v:.4f}" for k, v in results[s]["ndcg@10"].items())
        extra = results[s].get("mix_correlation@10")
        print(f"{s:<12} {curve}" + (f"  mix corr@10 {extra:.3f}" if extra is not None else ""))
    print(f"ceiling (full-history fold-in) {ceiling:.4f}; floor (popularity) {floor:.4f}")
    info10, rand10 = results["information"]["ndcg@10"][10], results["random"]["ndcg@10"][10]
    print(
        f"after 10 answers: {info10 / ceiling:.1%} of the ceiling, "
        f"{info10 / max(rand10, 1e-12):.2f}x random questions"
    )
    RUNS.mkdir(exist_ok=True)
    tag = f"interview-{args.dataset}-flip{args.flip}-noop{args.no_opinion}"
    out = RUNS / f"{tag}.json"
    record = {
        "command": "python benches/interview.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)
        ),
        "cpu": cpu(),
        "fit_seconds": fit_s,
        "users": int(len(users)),
        "ceiling": ceiling,
        "floor": floor,
        "results": results,
    }
    out.write_text(json.dumps(record, indent=1))
    print(f"written to {out}")
    if args.plot:
        curves = {s: r["ndcg@10"] for s, r in results.items()}
        title = f"{args.dataset}: new users, NDCG@10 by number of answers"
        personae.plot.interview_curves(curves, args.plot, ceiling, floor, title=title)
        print(f"picture written to {args.plot}")


if __name__ == "__main__":
    main()
