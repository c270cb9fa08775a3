"""The graph filter's degree exponents on a validation carve (issue 23): which normalisation?

GF-CF scores a history x with ``x P~ + beta x D^-1/2 V^T V D^1/2``, ``P~ = D_i^-1/2 X^T D_u^-1 X
D_i^-1/2``. This script scores the generalisation

    d^-eta (x D_i^-left X^T D_u^-user X D_i^-1/2 + beta x D^-1/2 V^T V D^1/2)

(GF-CF: user 1, left 0.5, eta 0; ``personae.GraphFilter``'s ``user_weight`` is `user`, its
``eta`` is `eta`; `left` is not a library setting) on the accuracy harness's validation carve,
in numpy, V from the library's spectrum of R~ (rank 448 on Gowalla). The test split is loaded
with the harness's data but never evaluated.

    python benches/graph_degrees.py [--dataset gowalla] [--user 1,0.75,0.6,0.5] [--left 0.5]
        [--eta 0,-0.1,-0.2] [--beta 0.2,0.3]
"""

from __future__ import annotations

import json
import time

import accuracy
import numpy as np
import scipy.sparse as sp

import personae

from _common import RUNS, cpu, parser


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def main() -> None:
    p = parser(__doc__, threads=2)
    p.add_argument("--dataset", default="gowalla")
    p.add_argument("--rank", type=int, default=448)
    p.add_argument("--user", type=floats, default=floats("1,0.75,0.6,0.5"))
    p.add_argument("--left", type=floats, default=floats("0.5"))
    p.add_argument("--eta", type=floats, default=floats("0,-0.1,-0.2"))
    p.add_argument("--beta", type=floats, default=floats("0.2,0.3"))
    a = p.parse_args()
    import torch

    from personae.train.filters import Spectrum

    val = accuracy.load_dataset(a.dataset)["val"]
    X = val.fit.tocsr().astype(np.float64)
    rows = val.rows.tocsr().astype(np.float64)
    du, di = np.asarray(X.sum(1)).ravel(), np.asarray(X.sum(0)).ravel()

    def power(d, e):
        return np.where(d > 0, np.maximum(d, 1e-300) ** (-e), 0.0)

    t0 = time.perf_counter()
    spec = Spectrum(val.fit, a.rank, 0, torch.device("cpu"))
    V = spec.Vt.T.astype(np.float32)
    low = ((rows @ sp.diags(spec.di_mhalf)) @ V) @ (V.T * spec.di_half.astype(np.float32))
    low = np.asarray(low, dtype=np.float32)
    print(f"spectrum and low-pass part: {time.perf_counter() - t0:.0f} s", flush=True)
    out = []
    for user in a.user:
        G = (X.T @ (sp.diags(power(du, user)) @ X)).tocsr()
        for left in a.left:
            lin = np.asarray(((rows @ sp.diags(power(di, left))) @ G).todense(), np.float32)
            lin *= power(di, 0.5).astype(np.float32)
            for eta in a.eta:
                post = power(di, eta).astype(np.float32)
                for beta in a.beta:
                    s = (lin + np.float32(beta) * low) * post
                    ids, _ = personae.top_n(s, val.k, seen=rows, num_threads=a.threads)
                    m = personae.metrics.ranking_metrics(ids, val.truth, val.k)
                    row = dict(user=user, left=left, eta=eta, beta=beta)
                    row[f"ndcg@{val.k}"] = float(m["ndcg"].mean())
                    row[f"recall@{val.k}"] = float(m["recall"].mean())
                    out.append(row)
                    print(
                        f"user {user:<5} left {left:<4} eta {eta:<5} beta {beta:<4} "
                        f"NDCG@{val.k} {row[f'ndcg@{val.k}']:.4f} "
                        f"Recall@{val.k} {row[f'recall@{val.k}']:.4f}",
                        flush=True,
                    )
            del lin
        del G
    path = RUNS / f"graph-degrees-{a.dataset}.json"
    path.parent.mkdir(exist_ok=True)
    command = "python benches/graph_degrees.py " + " ".join(
        f"--{k} {','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(a).items()
    )
    path.write_text(json.dumps({"command": command, "cpu": cpu(), "rows": out}, indent=1))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
