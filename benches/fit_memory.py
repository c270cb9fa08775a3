"""Fit memory (issue 23's budget: a fit's peak at most 2x the fitted model): the default
``personae.AMPCF()`` fitted on one dataset, its RSS sampled every 10 ms and tagged by the fit's
phase, against the model's tensors.

Usage: python benches/fit_memory.py ml-latest-small|ml-100k|gowalla

Prints the RSS before the fit (torch imported, the data loaded), the fit's peak and its ratio to the
model's size, and each phase's peak (the phase tags wrap the fit's own functions)."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import torch  # noqa: F401  (the fit's runtime: imported before "before the fit" is read)

import personae
from personae.train import ampcf as A
from personae.train import filters as F

from _common import cpu


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**30


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "ml-latest-small"
    if name == "gowalla":
        from _common import gowalla

        X = gowalla()[0]
    else:
        from calibrate_movielens import load

        X = load(name)[0]
    phase, peaks = ["before the fit"], {}

    def sample():
        while True:
            p = phase[-1]
            peaks[p] = max(peaks.get(p, 0.0), rss_gib())
            time.sleep(0.01)

    def tag(mod, fn):
        orig = getattr(mod, fn)

        def wrapped(*a, **k):
            phase.append(fn)
            try:
                return orig(*a, **k)
            finally:
                phase.append(f"after {fn}")

        setattr(mod, fn, wrapped)

    for fn in ("validation_carve", "search", "search_graph", "graph_spectrum", "graph_filter"):
        tag(F, fn)
    for fn in ("dan_ease", "weighted_gram", "fit_filter", "spherical_kmeans", "taste_tensors"):
        tag(F if hasattr(F, fn) and fn != "fit_filter" else A, fn)
    threading.Thread(target=sample, daemon=True).start()
    before = rss_gib()
    t = time.perf_counter()
    model = personae.AMPCF(device="cpu").fit(X, show_progress=False)
    seconds = time.perf_counter() - t
    phase.append("done")
    time.sleep(0.05)
    peak = max(v for k, v in peaks.items() if k != "done")
    size = sum(np.asarray(v).nbytes for v in model.tensors().values()) / 2**30
    print(f"CPU: {cpu()}")
    print(f"{name}: fit {seconds:.1f} s; RSS before the fit {before:.3f} GiB, peak {peak:.3f} GiB")
    print(f"model tensors {size:.3f} GiB; the fit's peak above its start {peak - before:.3f} GiB")
    print(f"= {(peak - before) / size:.2f}x the model ({peak / size:.2f}x counting the process)")
    for k, v in peaks.items():
        if k != "done":
            print(f"  {k:<28} {v:.3f} GiB")


if __name__ == "__main__":
    main()
