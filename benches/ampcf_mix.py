"""AMP-CF's persona mix against accuracy and minority-taste recall, on the accuracy harness's
validation carve only (the test split is not read): does the persona-attentive share of the
score (``mix``; the default 0.25) move either?

Usage: python benches/ampcf_mix.py [ml-100k] [ml-latest-small] [synthetic]
       [--mix 0,0.25,0.5,0.75,1]
"""

from __future__ import annotations

import argparse
import time

from accuracy import evaluate, load_dataset

import personae


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="*", default=["ml-100k", "ml-latest-small"])
    ap.add_argument("--mix", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    for name in a.datasets:
        val = load_dataset(name)["val"]
        k = val.k
        for mix in (float(m) for m in a.mix.split(",")):
            t = time.perf_counter()
            model = personae.AMPCF(mix=mix).fit(val.fit)
            r = evaluate(model, val, num_threads=a.threads)
            print(
                f"{name} mix={mix:g}: val NDCG@{k} {r[f'ndcg@{k}']:.4f}, minority-taste "
                f"R@10 {r.get('minority_recall@10', float('nan')):.4f}, multi-taste third "
                f"NDCG@{k} {r.get(f'multi_third_ndcg@{k}', float('nan')):.4f} "
                f"({time.perf_counter() - t:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
