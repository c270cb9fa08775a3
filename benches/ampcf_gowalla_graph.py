"""AMP-CF's large-catalogue graph filter on Gowalla's validation carve: which graph settings?

AMP-CF's filter for catalogues above 20,000 items is BSPM-style: ``x P~`` exact, the ideal
low-pass (weight ``graph_beta``) exact, and the sharpening's higher powers of P~ (time
``graph_time``) on the top-``graph_rank`` spectrum only. ``graph_time = 0`` drops the
sharpening and leaves GF-CF's form, which is exact. This script fits ``personae.AMPCF`` with a
few (graph_time, graph_beta) on the validation fit matrix of the accuracy harness (the same
carve: ``personae.data.carve_validation(train, 5000, 0.2, seed=1)``), reports NDCG@20 and
Recall@20 of the validation users, and writes runs/ampcf-gowalla-graph.json. The test split is
loaded with the harness's data but never evaluated.

    python benches/ampcf_gowalla_graph.py
"""

from __future__ import annotations

import json
import time

import accuracy

import personae

from _common import RUNS, cpu, parser

GRID = [(2.5, 0.1), (0.0, 0.1), (0.0, 0.2), (0.0, 0.3)]


def main() -> None:
    a = parser(__doc__, threads=2).parse_args()
    val = accuracy.load_dataset("gowalla")["val"]
    rows = []
    for t, b in GRID:
        t0 = time.perf_counter()
        m = personae.AMPCF(graph_time=t, graph_beta=b).fit(val.fit, show_progress=False)
        fit_s = time.perf_counter() - t0
        r = accuracy.evaluate(m, val, full=False, num_threads=a.threads)
        rows.append({"graph_time": t, "graph_beta": b, **r, "fit_seconds": fit_s})
        print(
            f"graph_time {t:<4} graph_beta {b:<4} NDCG@20 {r['ndcg@20']:.4f} "
            f"Recall@20 {r['recall@20']:.4f} (fit {fit_s:.0f} s)",
            flush=True,
        )
        del m
    out = RUNS / "ampcf-gowalla-graph.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {"command": "python benches/ampcf_gowalla_graph.py", "cpu": cpu(), "rows": rows},
            indent=1,
        )
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
