"""A user-kNN score blended into ChebyCF's on Gowalla: a validation gain that the test split
does not keep (issue 23).

The graph filters score an item by the user's own items' co-occurrences; a user-kNN scores it by
the items of the users most like this one, a different view that ensembles often gain from.
Here: ``sim(u, v) = x_u . x_v / (d_u^1/2 d_v^ua)`` over the training users (the user left out),
the top ``k`` neighbours, their rows summed with weights ``sim^p``; blended per user as
``z(filter) + w z(kNN)``, each z-scored over the catalogue. The filter is the validated ChebyCF
peer (``baselines.ChebyCF``, phi 2, beta 0.3, alpha 0.1, rank 512: what AMP-CF's default
filter serves on Gowalla, to 0.0004 NDCG@20).

- default: the grid (ua x k x p x w) on the harness's validation carve
  (``accuracy.load_dataset("gowalla")["val"]``), ChebyCF alone beside it;
- ``--test``: reads the test split once, for the validation-best setting (near-ties within
  1e-4 NDCG@20 to the fewest neighbours) and ChebyCF alone, paired per user; and prints how
  popular the held-out items are on the carve and on the test split;
- ``--carve random-all|ordered-all``: the two user-kNN settings of the table and GF-CF's
  filter with and without the lighter normalisation on a carve that holds out items of every
  training user (does such a carve predict the test split better?); ``--carve resplit``, a
  diagnostic that reads the test split: the same on a fresh random 80/20 split of train + test.

    python benches/gowalla_uknn.py [--test]
    python benches/gowalla_uknn.py --carve random-all     # or ordered-all, resplit
"""

from __future__ import annotations

import json
import time

import accuracy
import baselines as bl
import gowalla_order as go
import numpy as np
import scipy.sparse as sp

import personae
from personae.data import carve_validation

from _common import DATA, cpu, parser, write_result

K = go.K
GRID = {
    "ua": (0.5, 0.25),
    "k": (100, 400, 1000),
    "p": (2.0, 3.0, 4.0),
    "w": (0.15, 0.25, 0.35, 0.5),
}
# the chosen setting and the cosine one, as BENCHMARKS' table shows them
TABLE_SETTINGS = (
    {"ua": 0.25, "k": 400, "p": 4.0, "w": 0.25},
    {"ua": 0.5, "k": 400, "p": 3.0, "w": 0.25},
)


def zscore(s: np.ndarray) -> np.ndarray:
    return (s - s.mean(1, keepdims=True)) / (s.std(1, keepdims=True) + 1e-12)


def similarities(X: sp.csr_matrix, users: np.ndarray, rows: sp.csr_matrix, ua: float):
    """(len(users) x n_users) ``x_u . x_v / (d_u^1/2 d_v^ua)``, each user's own entry 0."""
    du = np.asarray(X.sum(1)).ravel()
    right = (sp.diags(np.where(du > 0, du, 1) ** -ua) @ X).T.tocsr().astype(np.float32)
    du_rows = np.maximum(np.asarray(rows.sum(1)).ravel(), 1)
    sim = np.asarray((rows @ right).todense(), np.float32) * (du_rows[:, None] ** -0.5)
    sim[np.arange(len(users)), users] = 0
    return sim


def knn_scores(sim: np.ndarray, X: sp.csr_matrix, k: int, p: float) -> np.ndarray:
    """The top-`k` neighbours' rows of X summed with weights ``sim^p`` (dense)."""
    b = sim.shape[0]
    part = np.argpartition(-sim, k, axis=1)[:, :k]
    vals = np.take_along_axis(sim, part, 1)
    w = sp.csr_matrix(
        (vals.ravel() ** p, (np.repeat(np.arange(b), k), part.ravel())), (b, X.shape[0])
    )
    return np.asarray((w @ X).todense(), np.float32)


def score(ids: np.ndarray, truth) -> tuple[float, float]:
    nd, rc = go.metrics(ids, truth)
    return round(nd, 5), round(rc, 5)


def chebycf(X: sp.csr_matrix) -> bl.ChebyCF:
    """The validated ChebyCF peer (``gowalla_order.CHEBYCF``) fitted on X."""
    return bl.ChebyCF(bl.NormGraph(X, max_rank=go.CHEBYCF["rank"]), **go.CHEBYCF)


def filter_scores(peer: bl.ChebyCF, rows: sp.csr_matrix, batch: int = 500) -> np.ndarray:
    """The peer's dense scores of `rows`, `batch` rows at a time."""
    return np.concatenate(
        [peer.score(None, rows[s : s + batch]) for s in range(0, rows.shape[0], batch)]
    )


def top(s: np.ndarray, rows) -> np.ndarray:
    return personae.top_n(s, K, seen=rows)[0]


def validate(split: accuracy.Split) -> dict:
    """ChebyCF alone and every setting of GRID on `split`: ``{"chebycf": (ndcg, recall),
    "grid": [{"ua", "k", "p", "w", "ndcg", "recall"}, ...]}``."""
    X = sp.csr_matrix(split.fit, dtype=np.float32)
    filt = filter_scores(chebycf(X), split.rows)
    out: dict = {"chebycf": score(top(filt, split.rows), split.truth), "grid": []}
    print("validation, chebycf alone:", out["chebycf"], flush=True)
    zf = zscore(filt)
    del filt
    for ua in GRID["ua"]:
        sim = similarities(X, split.users, split.rows, ua)
        for k in GRID["k"]:
            for p in GRID["p"]:
                zk = zscore(knn_scores(sim, X, k, p))
                rows = []
                for w in GRID["w"]:
                    nd, rc = score(top(zf + w * zk, split.rows), split.truth)
                    rows.append({"ua": ua, "k": k, "p": p, "w": w, "ndcg": nd, "recall": rc})
                out["grid"] += rows
                print(
                    f"validation, ua={ua:g} k={k} p={p:g}",
                    [(r["w"], r["ndcg"], r["recall"]) for r in rows],
                    flush=True,
                )
    return out


def choose(grid: list[dict]) -> dict:
    """The best setting by NDCG; near-ties (within 1e-4) go to fewer neighbours: the same list
    quality, less serving work."""
    top_ndcg = max(r["ndcg"] for r in grid)
    return min(
        (r for r in grid if r["ndcg"] >= top_ndcg - 1e-4), key=lambda r: (r["k"], -r["ndcg"])
    )


def test(split: accuracy.Split, setting: dict, batch: int = 1000) -> dict:
    X = sp.csr_matrix(split.fit, dtype=np.float32)
    peer = chebycf(X)
    n = len(split.users)
    alone, blend = np.empty((n, K), np.int64), np.empty((n, K), np.int64)
    for s in range(0, n, batch):
        users, rows = split.users[s : s + batch], split.rows[s : s + batch]
        filt = peer.score(users, rows)
        alone[s : s + len(users)] = top(filt, rows)
        knn = knn_scores(similarities(X, users, rows, setting["ua"]), X, setting["k"], setting["p"])
        blend[s : s + len(users)] = top(zscore(filt) + setting["w"] * zscore(knn), rows)
    a = np.asarray(accuracy.per_user(alone, split.truth, K), np.float64)  # (ndcg, recall) x users
    b = np.asarray(accuracy.per_user(blend, split.truth, K), np.float64)
    out = {
        "chebycf": tuple(round(float(v), 5) for v in a.mean(1)),
        "chebycf + user-kNN": tuple(round(float(v), 5) for v in b.mean(1)),
    }
    for name, d in zip(("ndcg", "recall"), b - a, strict=True):
        se = d.std(ddof=1) / np.sqrt(len(d))
        out[f"paired {name} difference"] = (round(float(d.mean()), 5), round(float(se), 5))
    return out


def degrees(split: accuracy.Split) -> dict:
    """Mean log(1 + degree) of the held-out items and of the histories, degrees counted in the
    matrix the models are fitted on (reads the held-out items; scores no model)."""
    deg = np.log1p(np.asarray(split.fit.sum(0)).ravel())
    return {
        "held out": round(float(deg[split.truth.indices].mean()), 3),
        "histories": round(float(deg[split.rows.indices].mean()), 3),
    }


def other_carve(kind: str, count: int = 5000, seed: int = 0) -> dict:
    """ChebyCF alone and with the two user-kNN settings of the table, and GF-CF's filter with
    and without the lighter normalisation, on a carve that holds out items of *every* training
    user (``random-all``: a random 20%; ``ordered-all``: the last 20% of each list), scored on
    `count` seeded users of it; training data only. ``resplit`` is a diagnostic that reads the
    test split as data: a fresh random 20% of each user's train + test items held out (the
    split NGCF describes), to see whether the published split behaves as a random one."""
    if kind == "resplit":
        # a diagnostic, not a selection: a fresh random 80/20 split of train + test per user
        t = accuracy.load_dataset("gowalla")["test"]
        owners = np.repeat(t.users, np.diff(t.truth.indptr))
        union = t.fit + sp.csr_matrix(
            (np.ones(t.truth.nnz, np.float32), (owners, t.truth.indices)), t.fit.shape
        )
        union.data[:] = 1
        fit, held, users = carve_validation(union.tocsr(), union.shape[0], 0.2, seed=7)
    else:
        lists = go.read_lists(DATA / "gowalla" / "train.txt")
        n_users, n_items = max(lists) + 1, 1 + max(int(v.max()) for v in lists.values())
        if kind == "ordered-all":
            fit, held, users = go.ordered_carve(lists, n_users, n_items, count=n_users)
        else:
            x = go.matrices(lists, n_users, n_items)[0]
            fit, held, users = carve_validation(x, n_users, 0.2, seed=1)
    users = np.sort(np.random.default_rng(seed).choice(users, count, replace=False))
    split = accuracy.Split("val", fit, users, held[users], K)
    X = sp.csr_matrix(fit, dtype=np.float32)
    filt = filter_scores(chebycf(X), split.rows)
    out = {"chebycf": score(top(filt, split.rows), split.truth)}
    zf = zscore(filt)
    for setting in TABLE_SETTINGS:
        sim = similarities(X, users, split.rows, setting["ua"])
        zk = zscore(knn_scores(sim, X, setting["k"], setting["p"]))
        key = " ".join(f"{k}={v:g}" for k, v in setting.items())
        out[key] = score(top(zf + setting["w"] * zk, split.rows), split.truth)
    for name in ("gfcf", "gfcf-light"):
        model = go.MODELS[name]().fit(fit, show_progress=False)
        out[name] = score(model.recommend(split.rows, K)[0], split.truth)
    print(kind, json.dumps(out), flush=True)
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--test", action="store_true", help="read the test split once (see above)")
    p.add_argument(
        "--carve", choices=("random-all", "ordered-all", "resplit"), help="another carve instead"
    )
    a = p.parse_args()
    t0 = time.perf_counter()
    if a.carve:
        res = {"cpu": cpu(), a.carve: other_carve(a.carve), "seconds": time.perf_counter() - t0}
        write_result(f"gowalla-uknn-{a.carve}", res, echo=False)
        return
    data = accuracy.load_dataset("gowalla")
    res: dict = {"cpu": cpu(), "validation": validate(data["val"])}
    if a.test:
        best = choose(res["validation"]["grid"])
        setting = {key: best[key] for key in ("ua", "k", "p", "w")}
        res["chosen"] = setting
        print("chosen on validation:", setting, flush=True)
        res["log-degrees"] = {s: degrees(data[s]) for s in ("val", "test")}
        print("mean log-degrees:", res["log-degrees"], flush=True)
        res["test"] = test(data["test"], setting)
        print("test:", json.dumps(res["test"]), flush=True)
    res["seconds"] = time.perf_counter() - t0
    write_result(f"gowalla-uknn{'-test' if a.test else ''}", res, echo=False)


if __name__ == "__main__":
    main()
