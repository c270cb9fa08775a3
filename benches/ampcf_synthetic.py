"""Does AMP-CF find the true tastes? On the built-in synthetic generator (users are mixtures of
latent tastes, every item belongs to one taste), fit ``personae.AMPCF()`` with its defaults on a
per-user 80/20 holdout split, then ask, for the held-out items of users with >= 2 true tastes:
does the persona that ``explain`` names for the item stand for the item's true taste?

A taste cluster stands for the true taste that most of its items have (read from the fitted
clusters and the generator's item tastes; the held-out items play no part). Two references:
the user's most frequent true taste in their history for every item (one average taste), and a
persona drawn at random from the user's personas in proportion to their shares.

    python benches/ampcf_synthetic.py                  # the generator's defaults
    python benches/ampcf_synthetic.py --users 3000 --items 1500 --tastes 8
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import personae

from _common import RUNS, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=6000)
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--tastes", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data = personae.synthetic(
        n_users=args.users, n_items=args.items, n_tastes=args.tastes, seed=args.seed
    )
    train, test = personae.holdout_split(data.interactions, 0.2, seed=args.seed)
    t = time.perf_counter()
    model = personae.AMPCF(seed=args.seed).fit(train, show_progress=False)
    fit_s = time.perf_counter() - t
    taste = data.item_taste
    labels = model.item_tastes()
    stands = np.full(model.n_tastes, -1)
    for c in range(model.n_tastes):
        members = taste[labels == c]
        if len(members):
            stands[c] = np.bincount(members, minlength=args.tastes).argmax()

    multi = (data.user_mixture > 0).sum(1) >= 2
    users = np.flatnonzero(multi & (np.diff(test.matrix.indptr) > 0))
    held, hist = test.matrix[users], train.matrix[users]
    lens = np.diff(held.indptr)
    items = np.full((len(users), max(int(lens.max()), 1)), -1, np.int64)
    for r in range(len(users)):
        items[r, : lens[r]] = held.indices[held.indptr[r] : held.indptr[r + 1]]
    ex = model.explain(items, hist, n_history=0)
    p = model.personas(hist)
    rng = np.random.default_rng(args.seed)
    hit = base = rand = total = 0.0
    for r in range(len(users)):
        it = items[r, : lens[r]]
        truth = taste[it]
        dom_taste = ex["taste"][r, : lens[r]]
        hit += float((stands[np.maximum(dom_taste, 0)] == truth)[dom_taste >= 0].sum())
        base += float((truth == np.bincount(taste[hist[r].indices]).argmax()).sum())
        share = p["share"][r]
        ok = p["taste"][r] >= 0
        pick = rng.choice(np.flatnonzero(ok), size=len(it), p=share[ok] / share[ok].sum())
        rand += float((stands[p["taste"][r][pick]] == truth).sum())
        total += len(it)
    res = {
        "command": "python benches/ampcf_synthetic.py "
        f"--users {args.users} --items {args.items} --tastes {args.tastes} --seed {args.seed}",
        "cpu": cpu(),
        "fit_seconds": fit_s,
        "taste_clusters": int(model.n_tastes),
        "users": int(len(users)),
        "held_out_items": int(total),
        "persona_taste_agreement": hit / total,
        "majority_taste_baseline": base / total,
        "random_persona_baseline": rand / total,
    }
    print(json.dumps(res, indent=1))
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / "ampcf-synthetic.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
