"""AMP-CF on MovieLens-100K: one user with two distinct tastes, the personas found, and the
recommendations explained by persona (the example in the README).

Usage: python benches/ampcf_movielens.py [--user ID]

Ratings >= 4 are positives; ``personae.AMPCF()`` with its defaults is fitted on a seeded 80%
per-user split. The genres only describe the personas (an item with k genres gives each 1/k).
Without --user, the script picks the user whose two largest personas both hold >= 25% of the
history and share no top-2 genre, then prints each persona (share, top genres, its best-known
history movies) and the top-10 with the persona behind each item and the history movie that
votes most for it.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import scipy.sparse as sp

import personae

from _common import DATA, need
from calibrate_movielens import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--user", type=int, default=None, help="external MovieLens user id")
    a = ap.parse_args()

    data, flags, genres = load("ml-100k")
    counts = np.asarray(flags.sum(1)).ravel()
    dist = sp.diags(1.0 / np.maximum(counts, 1)) @ flags  # an item's genres share it equally
    items = pd.read_csv(need(DATA / "ml-100k") / "u.item", sep="|", header=None, encoding="latin-1")
    title = dict(zip(items[0], items[1], strict=True))
    train, _ = personae.holdout_split(data, test_fraction=0.2, seed=a.seed)
    m = personae.AMPCF(seed=a.seed).fit(train, show_progress=False)
    tr = m.manifest["training"]
    print(
        f"ml-100k: {data.n_users} users, {data.n_items} items; AMP-CF defaults, "
        f"{m.n_tastes} taste clusters, fit {tr['seconds']:.1f} s"
    )
    x = train.matrix
    s = m.persona_summary(x, item_categories=dist, top=2)
    share = s["share"]
    if a.user is None:
        best, best_key = -1, -1.0
        for u in range(x.shape[0]):
            t1, t2 = set(s["top_categories"][u, 0]), set(s["top_categories"][u, 1])
            if share[u, 1] >= 0.25 and not (t1 & t2) - {-1} and x[u].nnz >= 30:
                if share[u, 1] > best_key:
                    best, best_key = u, share[u, 1]
        u = best
    else:
        u = int(np.flatnonzero(train.user_ids.astype(str) == str(a.user))[0])
    row = x[u]
    entry = m.personas(row)["entry"]
    pop = np.asarray((x > 0).sum(0)).ravel()
    print(f"\nuser {train.user_ids[u]} ({row.nnz} liked movies in training)")
    for k in range(m.n_personas):
        if not share[u, k] > 0:
            continue
        cs = s["category_share"][u, k]
        top = ", ".join(f"{genres[g]} {cs[g]:.0%}" for g in s["top_categories"][u, k] if g >= 0)
        mine = row.indices[entry == k]
        known = mine[np.argsort(-pop[mine], kind="stable")[:3]]
        print(f"  persona {k}: {share[u, k]:.0%} of history; {top}")
        print("     e.g. " + "; ".join(title[train.item_ids[j]] for j in known))
    ids, _, dom = m.recommend(row, 10, explain=True)
    why = m.explain(ids, row, n_history=1)["because"][0, :, 0]
    print("  top-10, with the persona behind each item (and the history movie voting most):")
    for r, (j, k, b) in enumerate(zip(ids[0], dom[0], why, strict=True), 1):
        g = "|".join(genres[c] for c in flags[j].indices)
        because = title[train.item_ids[b]] if b >= 0 else "-"
        print(f"    {r:2d}. persona {k}  {title[train.item_ids[j]]}  ({g})  <- {because}")


if __name__ == "__main__":
    main()
