"""Memory of ``personae recommend``'s output path: every user's top-N written to a Parquet file
batch by batch (``personae.data.write_recommendations``, what the CLI calls) against the lists
held for all users and written at once (what the CLI did before issue 22), each in a fresh
process on the same data.

Usage: python benches/recommend_to_file.py [--users 1000000] [--items 200] [--n 10]

The data: every user has 3 random items of a small catalogue, a popularity model (scoring
is not what is measured). Reported: the peak resident memory the write adds over the process
before it (Linux's VmHWM, reset through /proc/self/clear_refs after one warm-up batch, so
imports and thread pools are not counted), and the seconds it takes.
"""

from __future__ import annotations

import argparse
import tempfile

from _common import cpu, run_child, write_result

CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np, scipy.sparse as sp
import personae
from personae.data import Interactions, long_format, write_recommendations, write_table
mode, users, items, n, batch, out = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
rng = np.random.default_rng(0)
m = sp.csr_matrix((np.ones(3 * users, np.float32), rng.integers(0, items, 3 * users),
                   np.arange(0, 3 * users + 1, 3)), shape=(users, items))
m.sum_duplicates(); m.sort_indices()
data = Interactions(m, np.arange(users), np.arange(items))
model = personae.Popularity().fit(data)
def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
def stream(x, path):
    write_recommendations(model, x, path, n, batch_size=batch)
def at_once(x, path):
    ids, scores = model.recommend(x, n)
    write_table(long_format(x.user_ids, model.item_ids, ids, scores), path)
job = {"stream": stream, "at_once": at_once}[mode]
job(Interactions(m[:batch], data.user_ids[:batch], data.item_ids), out)  # warm-up
Path("/proc/self/clear_refs").write_text("5")
base = status("VmRSS")
t = time.perf_counter()
job(data, out)
secs = time.perf_counter() - t
print(json.dumps({"mode": mode, "users": users, "seconds": round(secs, 2),
                  "peak_extra_mib": round((status("VmHWM") - base) / 2**20, 1)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--batch", type=int, default=10_000)
    a = ap.parse_args()
    rows = []
    for mode in ("stream", "at_once"):
        with tempfile.TemporaryDirectory() as d:
            rows.append(
                run_child(CHILD, mode, a.users, a.items, a.n, a.batch, f"{d}/lists.parquet")
            )
        print(rows[-1], flush=True)
    write_result(
        "recommend-to-file",
        {
            "command": f"python benches/recommend_to_file.py --users {a.users} --items "
            f"{a.items} --n {a.n} --batch {a.batch}",
            "cpu": cpu(),
            "runs": rows,
        },
    )


if __name__ == "__main__":
    main()
