"""Simulated onboarding interviews (issues 13, 20): how fast a new user's list improves.

Usage: python benches/interview.py [--dataset ml-100k|ml-latest-small|synthetic] [--users 300]
           [--folds 1] [--strategies likely,random,...] [--answers history|all]
           [--asks liked-before|would-like] [--flip 0.0] [--no-opinion 0.0]
           [--list fold-in|posterior] [--cache DIR] [--plot interview.png] [--speed]

Protocol. 20% of the users (a disjoint slice of a seed-0 permutation; ``--folds k`` repeats the
protocol on k disjoint slices, one model each) are held out; ``personae.AMPCF()`` with its defaults
is fitted on the others. Each held-out user's items are split 80/20 (seed 1) into a history A and a
test part B. The interview knows nothing of the user: it asks about items of its pool. With
``--answers history`` (the default) the user tells their past: "yes" only for items of the history
A, "no" for everything else including B (the future, not consumed yet); with ``--flip`` that share
of answers is flipped (a past "yes" becomes "no", a "no" becomes "yes"), with ``--no-opinion`` that
share becomes "no opinion" (non-attitudes). After 0, 1, 2, 3, 5, 10, 15 and 20 answers the
interview's top-10 (without the items it excludes: with the default ``--asks liked-before``,
"have you liked it?", the liked ones) is scored with NDCG@10 against B untouched. ``--answers all``
is the first protocol (the issue's targets were stated with it): the user answers "yes" when the
item is one of theirs, A or B, and the truth is B minus the items asked so far (``--asks
would-like``, "would you watch it?", is the interview's question for it). Ceiling: the same
model folded in on the full history A (A masked), scored against B. Floor: popularity, knowing
nothing of the user. Strategies: "likely" (the default), the information criterion, random,
popular and uncertainty; "oracle-liked" asks about the items the user says "yes" to at random and
"oracle-popular" most popular first (every answer "yes"), references. Every user's NDCG is kept
in the record (``per_user``) for paired differences between runs; ``--tag`` names the record.
On the synthetic data the true taste mix is known: the posterior mean over the model's taste
clusters, mapped to true tastes through each cluster's majority taste, is correlated with the true
mix after 10 answers, and so is ``Interview.mix()`` (the posterior's rise above the prior).
``--explore-first``,
``--explore-every`` and ``--explore-with`` set the "likely" questions' exploration schedule,
``--slip`` the interview's slip probability (ablations). ``--speed`` times ``next_question``
and the list on a 40,000-item catalogue."""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import scipy.sparse as sp

import personae
from personae import interview
from personae.data import _split_rows
from personae.interview import GroupQuestion, Interview, Question, Tastes

from _common import RUNS, cpu

STEPS = [0, 1, 2, 3, 5, 10, 15, 20]
STRATEGIES = ["likely", "random", "popular", "information", "uncertainty", "oracle-liked"]
# Baselines ask items only: their interviews get no group questions.
BASELINES = ("random", "popular", "oracle-liked", "oracle-popular")
GROUP_ANSWERS: list = []  # whether each simulated group answer chose a taste (before noise)
# --diagnose: each user's NDCG@10 after 10 answers under oracle repairs of the noisy interview.
DIAGNOSES: dict = {}


def group_answer(q, mine, labels, base, threshold):
    """A simulated user's answer to "which of these tastes is closest to you?", from their own
    items only: the shown taste holding the largest share of their items relative to the
    average training user's share of it (its lift), False ("none of these") when no shown
    taste's lift reaches `threshold`."""
    items = np.fromiter(mine, dtype=np.int64)
    lab = labels[items]
    share = np.bincount(lab[lab >= 0], minlength=len(base)) / max(len(items), 1)
    lift = share[list(q)] / np.maximum(base[list(q)], 1e-12)
    k = int(np.argmax(lift))
    return int(q[k]) if lift[k] >= threshold else False


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


def simulate(model, users, X, test, strategy, args, truth_mix=None, major=None, groups=None):
    """NDCG@10 of every user after each number of answers, and (synthetic) the estimated and
    true taste mixes after 10 answers. ``"oracle-liked"`` and ``"oracle-popular"`` are
    references, not interviews: they ask about the items the user says "yes" to (A or B with
    ``--answers all``, A with ``--answers history``), at random or most popular first, so every
    answer is "yes"."""
    out = {s: [] for s in STEPS}
    est, shift, true = [], [], []
    n_items = X.shape[1]
    source = model if args.list == "fold-in" else model.base_tastes()
    popularity = np.asarray(model.base_tastes().popularity)
    for r in users:
        rng = np.random.default_rng([args.seed, int(r)])
        held = set(test[r].indices.tolist())
        # What the user says "yes" to: all their items, or (--answers history) only their past
        # A, the test part B being their future, not yet consumed.
        mine = set(X[r].indices.tolist())
        if args.answers == "history":
            mine -= held
        oracle = strategy.startswith("oracle-")
        true_answers = []  # (question, the answer before noise)
        it = Interview(
            source,
            strategy="random" if oracle else strategy,
            seed=int(r),
            posterior_weight=args.posterior_weight,
            dislike_weight=args.dislike_weight,
            slip=args.slip,
            explore_first=args.explore_first,
            explore_every=args.explore_every,
            groups=0 if strategy in BASELINES else args.groups,
            group_size=args.group_size,
            asks=args.asks,
        )
        for k in range(max(STEPS) + 1):
            if k in STEPS:
                # --answers all: an asked test item leaves the truth (it was answered);
                # --answers history: B is the future, untouched by the answers.
                truth = held if args.answers == "history" else held - set(it.asked().tolist())
                # nan when every test item was asked: users stay aligned across runs.
                out[k].append(ndcg_one(it.recommend(10)[0], truth, n_items) if truth else np.nan)
            if k == 10 and args.diagnose and truth:
                diagnose(it, true_answers, truth, n_items)
            if k == 10 and truth_mix is not None:
                w = np.maximum(it.weights, 0)
                mix = np.zeros(truth_mix.shape[1])
                np.add.at(mix, major, w)
                est.append(mix / max(mix.sum(), 1e-12))
                moved = np.zeros(truth_mix.shape[1])
                np.add.at(moved, major, it.mix())
                shift.append(moved)
                true.append(truth_mix[r])
            if k == max(STEPS):
                break
            left = sorted(mine - set(it.asked().tolist()))
            if oracle and left:
                if strategy == "oracle-popular":
                    j = max(left, key=lambda i: (popularity[i], -i))
                else:
                    j = int(rng.choice(left))
                q = it._pending = Question(int(j))
            else:
                q = it.next_question()
            u = rng.random()
            if isinstance(q, GroupQuestion):
                labels, base = groups
                liked = group_answer(q, mine, labels, base, args.group_threshold)
                GROUP_ANSWERS.append(liked is not False)
                true_answers.append((q, liked))
                if u < args.no_opinion:
                    liked = None
                elif u < args.no_opinion + args.flip and args.flip_only in ("", "group"):
                    # another option, at random
                    options = [c for c in [*q, False] if c is not liked]
                    liked = options[int(rng.integers(len(options)))]
                it.answer(q, liked)
                continue
            liked = int(q) in mine
            true_answers.append((q, liked))
            if u < args.no_opinion:
                liked = None
            elif u < args.no_opinion + args.flip and args.flip_only in (
                "",
                "yes" if liked else "no",
            ):
                liked = not liked
            it.answer(q, liked)
    return out, (est, shift), true


def _replay(it: Interview, answers) -> Interview:
    """A new interview with `it`'s settings given `answers` to the same questions."""
    again = Interview(
        it.model if it.model is not None else it.tastes,
        strategy=it.strategy,
        seed=it.seed,
        posterior_weight=it.posterior_weight,
        dislike_weight=it.dislike_weight,
        slip=it.slip,
        groups=it.groups,
        group_size=it.group_size,
        asks=it.asks,
    )
    for q, a in answers:
        again._pending = q
        again.answer(q, a)
    return again


def diagnose(it: Interview, true_answers, truth: set, n_items: int) -> None:
    """Where a noisy interview's loss comes from, after 10 answers (``--diagnose``): its list
    beside oracle repairs. ``true answers``: the same questions answered without noise (what
    is left is the questions' path); ``noisy dropped``: the answers noise changed turned into
    "no opinion" (a perfect detector of flips); ``false no off``: the items the user truly
    liked but answered "no" also left off the list (the slots they take); ``false yes on``:
    the items answered "yes" by a flip put back on the list."""

    def ndcg(ids):
        return ndcg_one(ids, truth, n_items)

    def top(scores, off):
        s = np.array(scores, dtype=np.float64)
        s[np.asarray(off, dtype=np.int64)] = -np.inf
        return np.argsort(-s, kind="stable")[:10]

    noisy = [a for _, a in it.answers]
    qs = [q for q, _ in it.answers]
    truths = [a for _, a in true_answers]
    row = {"noisy": ndcg(it.recommend(10)[0])}
    row["true answers"] = ndcg(_replay(it, true_answers).recommend(10)[0])
    kept = [(q, a if a == t else None) for q, a, t in zip(qs, noisy, truths, strict=True)]
    row["noisy dropped"] = ndcg(_replay(it, kept).recommend(10)[0])

    def fixed(which):
        """The noisy answers with the kind `which` picks set back to the truth."""
        out = [
            (q, t if a != t and which(q, a, t) else a)
            for q, a, t in zip(qs, noisy, truths, strict=True)
        ]
        return ndcg(_replay(it, out).recommend(10)[0])

    group = lambda q, a, t: isinstance(q, GroupQuestion)  # noqa: E731
    row["groups true"] = fixed(group)
    row["false yes true"] = fixed(lambda q, a, t: not group(q, a, t) and a is True)
    row["false no true"] = fixed(lambda q, a, t: not group(q, a, t) and a is False)
    row["no opinion true"] = fixed(lambda q, a, t: not group(q, a, t) and a is None)
    items = [
        (q, a, t)
        for q, a, t in zip(qs, noisy, truths, strict=True)
        if not isinstance(q, GroupQuestion)
    ]
    false_no = [int(q) for q, a, t in items if t is True and a is not True]
    false_yes = [int(q) for q, a, t in items if a is True and t is not True]
    s = it._list_scores()
    row["false no off"] = ndcg(top(s, np.concatenate([it.excluded(), false_no])))
    row["false yes on"] = ndcg(top(s, np.setdiff1d(it.excluded(), false_yes)))
    row["n false no"], row["n false yes"] = len(false_no), len(false_yes)
    row["n groups changed"] = sum(
        isinstance(q, GroupQuestion) and a != t for q, a, t in zip(qs, noisy, truths, strict=True)
    )
    for key, v in row.items():
        DIAGNOSES.setdefault(key, []).append(v)


def fitted(args, X, fold: int = 0):
    """``personae.AMPCF()`` with its defaults fitted on X, or the copy cached in ``--cache``
    by an earlier run with the same dataset and seed: (model, fit seconds, 0 when cached)."""
    from pathlib import Path

    name = f"{args.dataset}-seed{args.seed}-fold{fold}"
    path = Path(args.cache) / name if args.cache else None
    if path is not None and path.exists():
        return personae.load(path), 0.0
    t = time.perf_counter()
    model = personae.AMPCF(device="cpu", seed=args.seed).fit(X, show_progress=False)
    fit_s = time.perf_counter() - t
    if path is not None:
        model.save(path)
    return model, fit_s


def speed(repeat: int = 30, asks: str = interview.ASKS_DEFAULT) -> dict:
    """Median milliseconds of ``next_question`` and of the list after each answer on a
    40,000-item catalogue, 64 tastes (bare taste tables: the posterior list), with the default
    schedule: the group questions first (timed apart, ``group_ms``; the first is computed once
    per model and read back after), then item (or pair) questions."""
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
        it = Interview(t, kind=kind, asks=asks)
        times, lists, groups = [], [], []
        for k in range(repeat + it.groups):
            s = time.perf_counter()
            q = it.next_question()
            took = time.perf_counter() - s
            if isinstance(q, GroupQuestion):
                groups.append(took)
                it.answer(q, q[k % len(q)])  # a taste chosen: its items join the list
            else:
                times.append(took)
                it.answer(q, bool(k % 2))
            s = time.perf_counter()
            it.recommend(10)
            lists.append(time.perf_counter() - s)
        out[kind] = {
            "median_ms": 1e3 * float(np.median(times)),
            "list_median_ms": 1e3 * float(np.median(lists)),
            "group_ms": [1e3 * g for g in groups],
            "pool": int(len(it.pool)),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--users", type=int, default=300, help="held-out users interviewed")
    p.add_argument(
        "--answers",
        default="history",
        choices=["history", "all"],
        help="history (default): 'yes' only for the history A (B is the future: 'no'), the "
        "truth B untouched; all: 'yes' for the user's items A or B, an asked item leaves the "
        "truth",
    )
    p.add_argument(
        "--asks",
        default=interview.ASKS_DEFAULT,
        choices=list(interview.ASKS),
        help="Interview(asks=...) for every strategy: liked-before (default) leaves the liked "
        "items off the list (and 'likely' asks the list's best item), would-like every asked one",
    )
    p.add_argument("--flip", type=float, default=0.0, help="share of answers flipped")
    p.add_argument("--no-opinion", type=float, default=0.0, help="share of 'no opinion'")
    p.add_argument(
        "--flip-only",
        default="",
        choices=["", "yes", "no", "group"],
        help="flip only the item answers 'yes', only the item answers 'no' or only the group "
        "answers (ablation; --no-opinion still applies to every answer)",
    )
    p.add_argument("--tag", default="", help="suffix of the record's file name in runs/")
    p.add_argument("--plot", default=None, help="write the NDCG curves to this PNG")
    p.add_argument("--speed", action="store_true", help="only time next_question")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="after 10 answers: the list beside oracle repairs of the noise",
    )
    p.add_argument("--cache", default=None, help="directory to keep fitted models in")
    p.add_argument("--folds", type=int, default=1, help="disjoint 20%% slices of new users")
    p.add_argument(
        "--list",
        default="fold-in",
        choices=["fold-in", "posterior"],
        help="the list: the model's fold-in of the liked answers, or the taste posterior alone",
    )
    p.add_argument("--posterior-weight", type=float, default=interview.POSTERIOR_WEIGHT)
    p.add_argument("--dislike-weight", type=float, default=interview.DISLIKE_WEIGHT)
    p.add_argument("--slip", type=float, default=0.1, help="the interview's slip probability")
    p.add_argument("--explore-first", type=int, default=interview.EXPLORE_FIRST)
    p.add_argument("--explore-every", type=int, default=interview.EXPLORE_EVERY)
    p.add_argument("--explore-with", default=interview.EXPLORE_WITH)
    p.add_argument("--groups", type=int, default=interview.GROUPS, help="group questions first")
    p.add_argument("--group-size", type=int, default=interview.GROUP_SIZE)
    p.add_argument(
        "--group-threshold",
        type=float,
        default=1.5,
        help="the simulated user answers 'none' when no shown taste's lift reaches this",
    )
    p.add_argument("--group-weight", type=float, default=interview.GROUP_WEIGHT)
    p.add_argument("--group-items", type=int, default=interview.GROUP_ITEMS)
    p.add_argument("--skip-top", type=int, default=interview.SKIP_TOP)
    p.add_argument("--group-min-share", type=float, default=interview.GROUP_MIN_SHARE)
    p.add_argument("--choice-scale", type=float, default=interview.CHOICE_SCALE)
    p.add_argument("--choice-none", type=float, default=interview.CHOICE_NONE)
    p.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="comma-separated question strategies (the first is reported against the others)",
    )
    args = p.parse_args()
    interview.EXPLORE_WITH = args.explore_with
    interview.GROUP_WEIGHT, interview.GROUP_ITEMS = args.group_weight, args.group_items
    interview.GROUP_MIN_SHARE = args.group_min_share
    interview.SKIP_TOP = args.skip_top
    interview.CHOICE_SCALE, interview.CHOICE_NONE = args.choice_scale, args.choice_none
    if args.speed:
        load = os.getloadavg()[0]
        record = {"cpu": cpu(), "load_average": load, "next_question": speed(asks=args.asks)}
        print(json.dumps(record, indent=1))
        return
    data, truth = dataset(args.dataset)
    X = data.matrix.tocsr()
    strategies = args.strategies.split(",")
    # Disjoint 20% slices of the users (seed 0), one model per slice: --folds 2 interviews
    # twice as many new users, on the same protocol.
    perm = np.random.default_rng(args.seed).permutation(X.shape[0])
    per = {s: {k: [] for k in STEPS} for s in strategies}
    secs = dict.fromkeys(strategies, 0.0)
    mixes = {s: ([], [], []) for s in strategies}
    ceil_all, floor_all, fit_s, n_users = [], [], 0.0, 0
    for fold in range(args.folds):
        fold_users = X.shape[0] // 5
        held_users = np.sort(perm[fold * fold_users : (fold + 1) * fold_users])
        train_users = np.setdiff1d(np.arange(X.shape[0]), held_users)
        model, f_s = fitted(args, X[train_users], fold)
        fit_s += f_s
        Xh = X[held_users]
        A, B = _split_rows(Xh, 0.2, np.random.default_rng(args.seed + 1))
        live = np.flatnonzero(np.diff(B.indptr) > 0)
        users = live[: max(args.users - n_users, 0)]
        n_users += len(users)
        if not len(users):
            break
        each = lambda ids, m: personae.metrics.ranking_metrics(ids, m, 10)["ndcg"]  # noqa: E731
        ceil_all += list(each(model.recommend(A[users], 10)[0], B[users]))
        pop = personae.Popularity().fit(X[train_users])
        empty = sp.csr_matrix((len(users), X.shape[1]), dtype=np.float32)
        floor_all += list(each(pop.recommend(empty, 10)[0], B[users]))
        # Group answers: each item's taste cluster, and the average training user's share of
        # each cluster (what a taste's lift for a new user is measured against).
        labels = np.asarray(model.item_tastes(), dtype=np.int64)
        Xt = X[train_users].tocsr()
        rows = np.repeat(np.arange(Xt.shape[0]), np.diff(Xt.indptr))
        lab = labels[Xt.indices]
        ok = lab >= 0
        per_user = np.zeros((Xt.shape[0], model.n_tastes))
        np.add.at(per_user, (rows[ok], lab[ok]), 1.0)
        base = (per_user / np.maximum(np.diff(Xt.indptr), 1)[:, None]).mean(0)
        truth_mix = major = None
        if truth is not None:
            labels = model.item_tastes()
            n_true = truth.user_mixture.shape[1]
            major = np.array(
                [
                    np.bincount(truth.item_taste[labels == c], minlength=n_true).argmax()
                    if (labels == c).any()
                    else 0
                    for c in range(model.n_tastes)
                ]
            )
            truth_mix = truth.user_mixture[held_users]
        for s in strategies:
            t = time.perf_counter()
            out, est, true = simulate(
                model, users, Xh, B, s, args, truth_mix, major, (labels, base)
            )
            secs[s] += time.perf_counter() - t
            for k in STEPS:
                per[s][k] += out[k]
            mixes[s][0].extend(est[0])
            mixes[s][1].extend(true)
            mixes[s][2].extend(est[1])
    ceiling, floor = float(np.nanmean(ceil_all)), float(np.nanmean(floor_all))
    results = {}
    for s in strategies:
        results[s] = {"ndcg@10": {k: float(np.nanmean(v)) for k, v in per[s].items()}}
        results[s]["seconds"] = secs[s]
        est, true, shift = mixes[s]
        if est:
            corr = float(np.corrcoef(np.ravel(est), np.ravel(true))[0, 1])
            results[s]["mix_correlation@10"] = corr
            # Interview.mix(): the posterior's rise above the prior.
            corr = float(np.corrcoef(np.ravel(shift), np.ravel(true))[0, 1])
            results[s]["shift_correlation@10"] = corr
        curve = " ".join(f"{k}:{v:.4f}" for k, v in results[s]["ndcg@10"].items())
        extra = results[s].get("mix_correlation@10")
        if extra is not None:
            curve += f"  mix corr@10 {extra:.3f} (mix() {results[s]['shift_correlation@10']:.3f})"
        print(f"{s:<13} {curve}")
    if DIAGNOSES:
        base = np.asarray(DIAGNOSES["noisy"])
        for key, v in DIAGNOSES.items():
            v = np.asarray(v, dtype=np.float64)
            if key.startswith("n "):
                print(f"diagnose {key:<16} mean {v.mean():.2f} per user")
                continue
            d = v - base
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
            print(
                f"diagnose {key:<16} {v.mean():.4f}  (paired vs noisy {d.mean():+.4f} +- {se:.4f})"
            )
    if GROUP_ANSWERS:
        print(f"group answers choosing a taste (not 'none'): {np.mean(GROUP_ANSWERS):.0%}")
    print(f"{n_users} users; ceiling (full-history fold-in) {ceiling:.4f}; floor {floor:.4f}")
    first = strategies[0]
    for k in (10, 20):
        v = results[first]["ndcg@10"][k]
        line = f"{first} after {k} answers: {v / ceiling:.1%} of the ceiling, {v / floor:.2f}x pop"
        if "random" in results:
            line += f", {v / max(results['random']['ndcg@10'][k], 1e-12):.2f}x random questions"
        print(line)
    RUNS.mkdir(exist_ok=True)
    tag = f"interview-{args.dataset}-flip{args.flip}-noop{args.no_opinion}-folds{args.folds}"
    tag += f"-only{args.flip_only}" if args.flip_only else ""
    tag += "-history" if args.answers == "history" else ""
    tag += "-liked-before" if args.asks == "liked-before" else ""
    tag += f"-{args.tag}" if args.tag else ""
    out = RUNS / f"{tag}.json"
    record = {
        "command": "python benches/interview.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)
        ),
        "cpu": cpu(),
        "fit_seconds": fit_s,
        "users": int(n_users),
        "ceiling": ceiling,
        "floor": floor,
        "results": results,
        # Each user's NDCG@10 (same users, same order for every strategy and run): paired
        # differences between runs.
        "per_user": {s: {k: [float(x) for x in v] for k, v in per[s].items()} for s in strategies},
    }
    if DIAGNOSES:
        record["diagnose"] = {k: [float(x) for x in v] for k, v in DIAGNOSES.items()}
    out.write_text(json.dumps(record, indent=1))
    print(f"written to {out}")
    if args.plot:
        curves = {s: r["ndcg@10"] for s, r in results.items()}
        title = f"{args.dataset}: new users ({n_users}), --answers {args.answers}, asks {args.asks}"
        personae.plot.interview_curves(curves, args.plot, ceiling, floor, title=title)
        print(f"picture written to {args.plot}")


if __name__ == "__main__":
    main()
