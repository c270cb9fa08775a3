"""Peak memory of streaming top-N over many users: the same model and batch size for 100k,
300k and 1M synthetic users, each run in a fresh process; peak RSS should not grow with users.

Usage: python benches/stream_memory.py [--users 100000 300000 1000000]

Each child generates user batches lazily (power-law item popularity, ~30 items per user),
scores them with ``Model.recommend_stream`` (top-20) and appends the ids to a file on disk.
"""

from __future__ import annotations

import argparse
import tempfile

from _common import run_child, write_result

CHILD = r"""
import json, resource, sys, time
import numpy as np, scipy.sparse as sp
sys.path.insert(0, "benches")
from threads_scaling import random_model
users, items, batch, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
model = random_model(items, 200, 64)
pop = 1.0 / np.arange(1, items + 1); pop /= pop.sum()
def batches():
    rng = np.random.default_rng(0)
    for s in range(0, users, batch):
        b = min(batch, users - s)
        cols = rng.choice(items, size=b * 30, p=pop)
        rows = np.repeat(np.arange(b), 30)
        m = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(b, items))
        m.sum_duplicates(); m.data[:] = 1
        yield m
t = time.perf_counter()
with open(out, "wb") as f:
    for ids, _ in model.recommend_stream(batches(), 20):
        f.write(ids.tobytes())
secs = time.perf_counter() - t
print(json.dumps({"users": users, "seconds": secs,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=20_000)
    a = ap.parse_args()
    rows = []
    for u in a.users:
        with tempfile.NamedTemporaryFile() as f:
            rows.append(run_child(CHILD, u, a.items, a.batch, f.name))
        print(rows[-1], flush=True)
    write_result(
        "stream-memory",
        {
            "command": "python benches/stream_memory.py --users "
            + " ".join(map(str, a.users))
            + f" --items {a.items} --batch {a.batch}",
            "runs": rows,
        },
    )


if __name__ == "__main__":
    main()
