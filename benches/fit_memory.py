"""Fit memory (issue 23's budget: a fit's peak at most 2x the fitted model): the default
``personae.AMPCF()`` fitted on one dataset, its RSS sampled every 10 ms and tagged by the fit's
phase, against the model's tensors.

Usage: python benches/fit_memory.py ml-latest-small|ml-100k|gowalla

Prints the RSS before the fit (torch imported, the data loaded), the fit's peak and its ratio to the
model's size, and each phase's peak (the phase tags wrap the fit's own functions)."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch  # noqa: F401  (the fit's runtime: imported before "before the fit" is read)

import personae
from personae.train import ampcf as A
from personae.train import filters as F

from _common import PhasePeaks, cpu, rss_gib


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "ml-latest-small"
    if name == "gowalla":
        from _common import gowalla

        X = gowalla()[0]
    else:
        from calibrate_movielens import load

        X = load(name)[0]
    peaks = PhasePeaks()
    for fn in ("validation_carve", "search", "search_graph", "graph_spectrum", "graph_filter"):
        peaks.tag(F, fn)
    for fn in ("dan_ease", "weighted_gram", "fit_filter", "spherical_kmeans", "taste_tensors"):
        peaks.tag(F if hasattr(F, fn) and fn != "fit_filter" else A, fn)
    before = rss_gib()
    t = time.perf_counter()
    model = personae.AMPCF(device="cpu").fit(X, show_progress=False)
    seconds = time.perf_counter() - t
    peak = peaks.done()
    size = sum(np.asarray(v).nbytes for v in model.tensors().values()) / 2**30
    print(f"CPU: {cpu()}")
    print(f"{name}: fit {seconds:.1f} s; RSS before the fit {before:.3f} GiB, peak {peak:.3f} GiB")
    print(f"model tensors {size:.3f} GiB; the fit's peak above its start {peak - before:.3f} GiB")
    print(f"= {(peak - before) / size:.2f}x the model ({peak / size:.2f}x counting the process)")
    peaks.report()


if __name__ == "__main__":
    main()
