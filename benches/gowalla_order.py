"""Gowalla's training lists are ordered: recency weights and an ordered carve (issue 23).

The LightGCN split lists each user's training items in an order the set-based protocol ignores.
This script measures what the order holds, on training data only unless ``--test``:

- **order**: items next to each other in a list against random pairs of the same list, by
  the item-item cosine ``D^-1/2 X^T X D^-1/2`` (a session or time order makes neighbours
  alike);
- **carves**: the harness's random carve (``carve_validation(train, 5000, 0.2, seed=1)``)
  and an *ordered* one (5,000 seeded users' last round(20%) list items held out), each scored
  with the history as a set (uniform weights) and with recency weights ``exp(a (z - 1))`` or
  ``1 + a z`` (z: the item's place in the fold-in list, 0 first .. 1 last), for
  ``GraphFilter()`` and ``AMPCF()`` with default arguments;
- ``--test``: measures how alike each fifth of the lists is to the test items (no model),
  and reads the test split once for AMP-CF and the validated ChebyCF peer (phi 2,
  beta 0.3, alpha 0.1, rank 512: ``accuracy.py gowalla --models chebycf``), as sets and with
  the weighting AMP-CF scores best on the ordered carve.

    python benches/gowalla_order.py [--test] [--models graph,ampcf] [--carves random,ordered]
    python benches/gowalla_order.py --models gfcf,gfcf-light --carves ordered
"""

from __future__ import annotations

import json
import time

import accuracy
import baselines as bl
import numpy as np
import scipy.sparse as sp

import personae
from personae.data import carve_validation, recency_weights
from personae.metrics import ranking_metrics

from _common import DATA, cpu, need, parser, write_result

K = 20
WEIGHTINGS = (("exp", 0.5), ("exp", 1.0), ("exp", 2.0), ("lin", 1.0), ("lin", 3.0))
CHEBYCF = {"phi": 2.0, "beta": 0.3, "alpha": 0.1, "rank": 512}
GF_CF = {"flatness": 0.0, "item_power": 0.0, "beta": 0.2}
MODELS = {
    "graph": personae.GraphFilter,  # ChebyCF's filter, the default
    "ampcf": personae.AMPCF,
    "gfcf": lambda: personae.GraphFilter(**GF_CF),
    # the lighter normalisation the random carve preferred and the test split did not
    "gfcf-light": lambda: personae.GraphFilter(**GF_CF, user_weight=0.6, eta=-0.1),
}


def read_lists(path) -> dict[int, np.ndarray]:
    """user -> items in file order (LightGCN text format)."""
    out = {}
    for line in open(path):
        p = line.split()
        if len(p) > 1:
            out[int(p[0])] = np.array([int(v) for v in p[1:]], dtype=np.int64)
    return out


def matrices(lists, n_users, n_items):
    """The binary matrix and, on the same pattern, each entry's place z in its list (0 .. 1)."""
    rows = np.concatenate([np.full(len(v), u) for u, v in lists.items()])
    cols = np.concatenate(list(lists.values()))
    z = np.concatenate([np.arange(len(v)) / max(len(v) - 1, 1) for v in lists.values()])
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), (n_users, n_items))
    # + 1 keeps z = 0 entries stored; subtracted where read
    place = sp.csr_matrix((z + 1.0, (rows, cols)), (n_users, n_items))
    return x, place


def item_normalised(x) -> sp.csr_matrix:
    """``X D^-1/2``: its item-item products are the cosine this script compares items by."""
    d = np.asarray(x.sum(0)).ravel()
    return (x @ sp.diags(1 / np.sqrt(np.maximum(d, 1)))).astype(np.float32).tocsr()


def adjacency(lists, x, n_pairs_users: int = 3000, seed: int = 0) -> dict:
    xn = item_normalised(x)
    g = (xn.T @ xn).tocsr()
    rng = np.random.default_rng(seed)
    users = rng.choice([u for u, v in lists.items() if len(v) >= 3], n_pairs_users, replace=False)
    adj, shuffled = [], []
    for u in users:
        v = lists[u]
        p = rng.permutation(v)
        adj.append(np.asarray(g[v[:-1], v[1:]]).ravel().mean())
        shuffled.append(np.asarray(g[p[:-1], p[1:]]).ravel().mean())
    return {"adjacent": float(np.mean(adj)), "shuffled": float(np.mean(shuffled))}


def ordered_carve(lists, n_users, n_items, count=5000, fraction=0.2, seed=1):
    """The last round(fraction * n) items of `count` random lists of two or more items held
    out (at least one kept), as ``carve_validation`` counts them."""
    rng = np.random.default_rng(seed)
    eligible = np.array(sorted(u for u, v in lists.items() if len(v) >= 2))
    users = np.sort(rng.choice(eligible, min(count, len(eligible)), replace=False))
    chosen = set(users.tolist())
    fit, held = [], []
    for u, v in lists.items():
        h = min(max(round(fraction * len(v)), 1), len(v) - 1) if u in chosen else 0
        fit += [(u, j) for j in v[: len(v) - h]]
        held += [(u, j) for j in v[len(v) - h :]]

    def csr(pairs):
        r, c = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
        return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), (n_users, n_items))

    return csr(fit), csr(held), users


def recency(hist, place, kind: str, a: float):
    """`hist` (binary rows) weighted by each item's place in its row's list (the fold-in's own
    first item at z = 0, its last at 1): ``exp(a (z - 1))``, the library's
    ``recency_weights``, or ``1 + a z``."""
    h = hist.tocoo()
    t = np.asarray(place[h.row, h.col]).ravel()
    if kind == "exp":
        w = recency_weights(h.row, t, a)
    else:
        z = recency_weights(h.row, t, 1.0)  # exp(z - 1): the place z back from it
        w = 1 + a * (np.log(z) + 1)
    return sp.csr_matrix((w.astype(np.float32), (h.row, h.col)), hist.shape)


def metrics(ids, truth) -> tuple[float, float]:
    m = ranking_metrics(ids, truth, K)
    return float(np.nanmean(m["ndcg"])), float(np.nanmean(m["recall"]))


def ranked(model, hist, truth) -> tuple[float, float]:
    """(NDCG@K, Recall@K) of `model`'s top-K for the histories `hist` (rows aligned with
    `truth`), ranked as the harness ranks: ``recommend``, or ``top_n`` of dense scores."""
    split = accuracy.Split("test", hist, np.arange(hist.shape[0]), truth, K)
    return metrics(accuracy.rank(model, split, K)[0], truth)


def test_lean(lists, test_lists, x, count: int = 3000, seed: int = 0) -> list[float]:
    """How alike each fifth of a training list (first .. last) is to the user's test items,
    relative to its likeness to their own training items, by the cosine of ``adjacency``;
    the mean over `count` seeded users with ten or more training items. Reads test items,
    scores no model."""
    xn = item_normalised(x)
    rng = np.random.default_rng(seed)
    users = rng.choice([u for u in test_lists if len(lists[u]) >= 10], count, replace=False)
    sums = np.zeros(5)
    for u in users:
        v = lists[u]
        fifth = (np.arange(len(v)) * 5) // len(v)
        t = np.zeros(x.shape[1], np.float32)
        t[test_lists[u]] = 1
        to_test = xn.T @ (xn @ t)
        to_own = xn.T @ (xn @ x[u].toarray().ravel())
        for k in range(5):
            sums[k] += (to_test[v[fifth == k]] / np.maximum(to_own[v[fifth == k]], 1e-9)).mean()
    return [round(float(v), 4) for v in sums / len(users)]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--test", action="store_true", help="read the test split once (see above)")
    p.add_argument("--models", default="graph,ampcf", help=f"of {', '.join(MODELS)}")
    p.add_argument("--carves", default="random,ordered")
    a = p.parse_args()
    t0 = time.perf_counter()
    d = need(DATA / "gowalla")
    lists = read_lists(d / "train.txt")
    n_users, n_items = max(lists) + 1, 1 + max(int(v.max()) for v in lists.values())
    x, place = matrices(lists, n_users, n_items)
    res: dict = {"cpu": cpu(), "order": adjacency(lists, x)}
    print("order:", res["order"], flush=True)

    carves = {
        "random": lambda: carve_validation(x, 5000, 0.2, seed=1),
        "ordered": lambda: ordered_carve(lists, n_users, n_items),
    }
    carves = {c: carves[c]() for c in a.carves.split(",")}
    res["carves"] = {}
    for cname, (fit, held, users) in carves.items():
        for mname in a.models.split(","):
            t = time.perf_counter()
            model = MODELS[mname]().fit(fit, show_progress=False)
            fit_s = time.perf_counter() - t
            rows = {"set": metrics(model.recommend(fit[users], K)[0], held[users])}
            for kind, w in WEIGHTINGS:
                hist = recency(fit[users], place[users], kind, w)
                rows[f"{kind} {w:g}"] = metrics(model.recommend(hist, K)[0], held[users])
            res["carves"][f"{cname} {mname}"] = {"fit_s": fit_s, "rows": rows}
            print(cname, mname, f"fit {fit_s:.0f} s", json.dumps(rows), flush=True)

    if a.test:
        if "ordered ampcf" not in res["carves"]:
            raise SystemExit("--test chooses the weighting by AMP-CF on the ordered carve")
        rows = res["carves"]["ordered ampcf"]["rows"]
        best = max((r for r in rows if r != "set"), key=lambda r: rows[r][0])
        res["chosen"] = best
        print("chosen on the ordered carve:", best, flush=True)
        kind, w = best.split()
        test_lists = read_lists(d / "test.txt")
        users = np.array(sorted(u for u in test_lists if len(test_lists[u])))
        truth, _ = matrices({u: test_lists[u] for u in users}, n_users, n_items)
        hist_set = x[users]
        hist_w = recency(hist_set, place[users], kind, float(w))
        res["test lean"] = test_lean(lists, test_lists, x)
        print("test items' likeness to each fifth of the lists:", res["test lean"], flush=True)
        t = time.perf_counter()
        model = personae.AMPCF().fit(x, show_progress=False)
        res["test"] = {"ampcf fit_s": time.perf_counter() - t}
        peer = bl.ChebyCF(bl.NormGraph(x, max_rank=CHEBYCF["rank"]), **CHEBYCF)
        for name, m in (("ampcf", model), ("chebycf", peer)):
            res["test"][f"{name} set"] = ranked(m, hist_set, truth[users])
            res["test"][f"{name} {best}"] = ranked(m, hist_w, truth[users])
        print("test:", json.dumps(res["test"]), flush=True)

    res["seconds"] = time.perf_counter() - t0
    tag = "test" if a.test else f"{a.models.replace(',', '+')}-{a.carves.replace(',', '+')}"
    write_result(f"gowalla-order-{tag}", res, echo=False)


if __name__ == "__main__":
    main()
