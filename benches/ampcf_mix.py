"""AMP-CF's persona settings against accuracy and minority-taste recall, on the accuracy
harness's validation carves only (the test splits are not read): do the persona-attentive
share of the score (``mix``; the default 0.25) or the weight of minority personas' votes
(``gamma``: votes times ``share^-gamma``; the default 0) move either, with the default or
another number of taste clusters (``n_clusters``, ``none`` for the default rule)?

Usage: python benches/ampcf_mix.py [ml-100k] [ml-latest-small] [synthetic]
       [--mix 0,0.25,0.5,0.75,1] [--gamma 0] [--n-clusters none] [--split-seeds 0]

With several ``--split-seeds`` (``accuracy.load_dataset``'s other splits) the last lines give
each setting's mean over the splits' validation carves.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from accuracy import evaluate, load_dataset

import personae


def floats(s: str) -> list[float]:
    return [float(v) for v in s.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="*", default=["ml-100k", "ml-latest-small"])
    ap.add_argument("--mix", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--gamma", default="0")
    ap.add_argument("--n-clusters", default="none")
    ap.add_argument("--split-seeds", default="0")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    clusters = [None if v == "none" else int(v) for v in a.n_clusters.split(",")]
    settings = list(itertools.product(floats(a.mix), floats(a.gamma), clusters))
    for name in a.datasets:
        seen: dict[tuple, list] = {s: [] for s in settings}
        for seed in (int(v) for v in a.split_seeds.split(",")):
            val = load_dataset(name, seed)["val"]
            k = val.k
            for mix, gamma, n_c in settings:
                t = time.perf_counter()
                model = personae.AMPCF(mix=mix, gamma=gamma, n_clusters=n_c)
                model.fit(val.fit, show_progress=False)
                r = evaluate(model, val, num_threads=a.threads)
                row = (
                    r[f"ndcg@{k}"],
                    r.get("minority_recall@10", np.nan),
                    r.get(f"multi_third_ndcg@{k}", np.nan),
                )
                seen[(mix, gamma, n_c)].append(row)
                print(
                    f"{name} split {seed} mix={mix:g} gamma={gamma:g} clusters={n_c}: val NDCG@{k} "
                    f"{row[0]:.4f}, minority-taste R@10 {row[1]:.4f}, multi-taste third "
                    f"NDCG@{k} {row[2]:.4f} ({time.perf_counter() - t:.0f} s)",
                    flush=True,
                )
        for (mix, gamma, n_c), rows in seen.items():
            m = np.mean(rows, axis=0)
            print(
                f"{name} mean of {len(rows)} splits, mix={mix:g} gamma={gamma:g} "
                f"clusters={n_c}: val NDCG "
                f"{m[0]:.4f}, minority-taste R@10 {m[1]:.4f}, multi-taste third {m[2]:.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
