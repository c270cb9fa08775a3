"""The accuracy harness: every model on the same split, with the same metric code, its
hyper-parameters chosen on a validation slice of the training data, the test split read once.

Usage:
    python benches/accuracy.py DATASET [--models a,b,c] [--threads 2] [--device cpu]
    python benches/accuracy.py DATASET --table          # print the stored results, run nothing
    python benches/accuracy.py gowalla --models ease --ease-lambda 200   # see "Gowalla EASE"
    python benches/accuracy.py gowalla --models ease --ease-final
    python benches/accuracy.py ml-100k --models ease,ampcf --split-seed 3   # another split
    python benches/accuracy.py ml-100k --splits-table   # every stored split, AMP-CF paired

DATASET: ml-100k, ml-latest-small, gowalla, synthetic. Models (``benches/baselines.py``):
popularity, ease, als, gfcf, bspm, multvae, ampcf (all by default); on Gowalla also chebycf, and
all but ease by default.

Protocol:
- MovieLens (``calibrate_movielens.load``: ratings >= 4 are positives) and synthetic
  (``personae.synthetic()`` defaults; an item's true taste is its one-hot "genre"):
  test = ``personae.holdout_split(data, 0.2, seed=0)``, validation =
  ``personae.holdout_split(train, 0.2, seed=1)`` of the training part. K = 10.
- Gowalla: the LightGCN split (``_common.gowalla``); validation hides 20% of the training items
  (rounded, one kept) of 5,000 seeded users with two or more items
  (``personae.data.carve_validation(train, 5000, 0.2, seed=1)``, the carve AMP-CF's own search
  uses); everyone else fits on all their training data. K = 20.
- Lists: top-K over the items not in the user's fit rows (``personae.top_n``, ties to the lower
  index, or the model's own Rust ``recommend``). Metrics from ``personae.metrics``: Recall@K =
  hits / |held-out|, NDCG@K with binary gains over the ideal of min(K, |held-out|), means over
  the users with >= 1 held-out item.
- With genres (MovieLens, synthetic), also: minority-taste recall@10
  (``personae.metrics.minority_taste_recall`` against the fit rows; mean over users with a
  held-out minority-taste item); NDCG@10 / Recall@10 of the most multi-taste third of the
  evaluated users (highest natural-log entropy of p(g|u) from
  ``CalibratedReranker(genres).target``, stable sort, the first len // 3); and NDCG@10, Recall@10
  and minority-taste recall@10 after ``CalibratedReranker(genres, lam=0.5)`` reranks the top-100
  to 10.
- Selection: each family's grid (``baselines.grid``) is fitted on the validation fit matrix and
  scored on the validation held-out items by NDCG@K; the best configuration is refitted on the
  whole training split (timed: ``fit_seconds``, on ``--threads`` threads) and read on test once.
  GF-CF and BSPM read their whole grids from shared powers of P~ (``baselines.GraphScorer``);
  Mult-VAE is early-stopped on the validation split (NDCG@K) and its test fit reruns the chosen
  configuration for the best epoch count on the whole training split; AMP-CF runs with default
  arguments, fitted on the validation fit matrix for its validation numbers and on the training
  split for the test (its fit runs its own search on a carve of that matrix, inside
  ``fit_seconds``).

Gowalla EASE: inverting the 41k x 41k Gram matrix takes too long for the default run, so EASE
is not in Gowalla's default list. ``--models ease`` on Gowalla runs the in-place float32
Cholesky form (``baselines.EASEBig``, 6.7 GB), one lambda per run: ``--ease-lambda L`` fits on
the validation fit matrix and adds L to the stored validation grid; ``--ease-final`` refits the
best stored lambda on the training split and reads the test split.

Results are merged per (dataset, model) into ``runs/accuracy/<dataset>.json`` (another split's
into ``<dataset>-split<S>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import baselines as bl
import numpy as np
import scipy.sparse as sp

import personae
from personae.data import carve_validation

from _common import RUNS, cpu, gowalla

DATASETS = ("ml-100k", "ml-latest-small", "gowalla", "synthetic")
MODELS = ("popularity", "ease", "als", "gfcf", "bspm", "multvae", "ampcf")
GOWALLA_MODELS = ("popularity", "als", "gfcf", "bspm", "chebycf", "multvae", "ampcf")
OUT = RUNS / "accuracy"
CANDIDATES = 100  # the calibrated reranker's candidate list
CAL_LAMBDA = 0.5
TASTE_K = 10


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ----------------------------------------------------------------------------- splits


@dataclass
class Split:
    """One evaluation setting: the matrix models are fitted on (all users), the evaluated users
    (row indices of `fit`, each with >= 1 held-out item) and their held-out items (`truth`,
    rows aligned with `users`)."""

    kind: str  # "val" or "test"
    fit: sp.csr_matrix
    users: np.ndarray
    truth: sp.csr_matrix
    k: int
    genres: sp.csr_matrix | None = None
    _rows: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def rows(self) -> sp.csr_matrix:
        """The evaluated users' fit rows: the models' input and the seen items."""
        if self._rows is None:
            self._rows = self.fit[self.users]
        return self._rows


def _split(kind, fit, held, k, genres=None) -> Split:
    """A Split from a fit matrix and a held-out matrix of the same shape."""
    users = np.flatnonzero(np.diff(held.indptr) > 0)
    return Split(kind, fit, users, held[users], k, genres)


def load_dataset(name: str, split_seed: int = 0) -> dict:
    """{"val": Split, "test": Split, "info": sizes}. Validation comes from training data only.
    `split_seed` s draws the MovieLens / synthetic holdouts with seeds 2s (test) and 2s + 1
    (validation): 0 is the harness's split."""
    if name in ("ml-100k", "ml-latest-small", "synthetic"):
        if name == "synthetic":
            s = personae.synthetic()
            data = s.interactions
            n_items, n_tastes = data.n_items, s.user_mixture.shape[1]
            genres = sp.csr_matrix(
                (np.ones(n_items, np.float32), (np.arange(n_items), s.item_taste)),
                shape=(n_items, n_tastes),
            )
        else:
            from calibrate_movielens import load

            data, genres, _ = load(name)
        train, test = personae.holdout_split(data, 0.2, seed=2 * split_seed)
        fit, val = personae.holdout_split(train, 0.2, seed=2 * split_seed + 1)
        k = 10
        vs = _split("val", fit.matrix, val.matrix, k, genres)
        ts = _split("test", train.matrix, test.matrix, k, genres)
    elif name == "gowalla":
        if split_seed:
            raise ValueError("Gowalla has one split (LightGCN's): split_seed must be 0")
        train, test = gowalla()
        X = train.matrix
        fit, held, vu = carve_validation(X, 5000, 0.2, seed=1)
        k = 20
        vs = Split("val", fit, vu, held[vu], k)
        ts = _split("test", X, test.matrix, k)
    else:
        raise ValueError(f"unknown dataset {name!r}; one of {DATASETS}")
    info = {
        "users": int(ts.fit.shape[0]),
        "items": int(ts.fit.shape[1]),
        "train_interactions": int(ts.fit.nnz),
        "test_interactions": int(ts.truth.nnz),
        "val_fit_interactions": int(vs.fit.nnz),
        "val_interactions": int(vs.truth.nnz),
        "val_users": int(len(vs.users)),
        "test_users": int(len(ts.users)),
        "k": k,
    }
    return {"val": vs, "test": ts, "info": info}


# ----------------------------------------------------------------------------- metrics


def rank(model, split: Split, n: int, batch: int = 1024, num_threads=None):
    """Top-`n` ids and scores of the evaluated users (fit items masked): the model's own
    ``recommend(rows, n)``, or ``personae.top_n`` of its dense ``score(users, rows)``."""
    ids = np.empty((len(split.users), n), np.int64)
    scores = np.empty((len(split.users), n), np.float32)
    for s in range(0, len(split.users), batch):
        u = split.users[s : s + batch]
        rows = split.rows[s : s + batch]
        if hasattr(model, "recommend"):
            i, sc = model.recommend(rows, n)
        else:
            dense = np.asarray(model.score(u, rows), dtype=np.float32)
            i, sc = personae.top_n(dense, n, seen=rows, num_threads=num_threads)
        ids[s : s + len(u)], scores[s : s + len(u)] = i, sc
    return ids, scores


def per_user(ids, truth, k):
    """Per-user (NDCG@k, Recall@k) from the project's metric code."""
    m = personae.metrics.ranking_metrics(ids[:, :k], truth, k)
    return m["ndcg"], m["recall"]


def taste_entropy(rows, genres) -> np.ndarray:
    """Natural-log entropy of each user's p(g|u) over their fit rows."""
    p = personae.CalibratedReranker(genres).target(history=rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return t.sum(1)


def multi_taste_third(rows, genres) -> np.ndarray:
    """Positions (into the rows) of the most multi-taste third: highest entropy first (stable
    sort), the first len // 3."""
    h = taste_entropy(rows, genres)
    return np.argsort(-h, kind="stable")[: len(h) // 3]


def minority_recall(ids, truth, genres, rows, k: int = TASTE_K) -> tuple[float, int]:
    """(mean minority-taste recall@k over users with a held-out minority-taste item, their
    number)."""
    v = personae.metrics.minority_taste_recall(ids, truth, genres, history=rows, k=k)
    ok = np.isfinite(v)
    return (float(v[ok].mean()) if ok.any() else float("nan")), int(ok.sum())


def evaluate(model, split: Split, full: bool = True, num_threads=None) -> dict:
    """NDCG@K / Recall@K (full=False: only those, for grids); with genres and full, the taste
    metrics and the calibrated ones too."""
    k = split.k
    taste = full and split.genres is not None
    ids, scores = rank(model, split, CANDIDATES if taste else k, num_threads=num_threads)
    nd, rc = per_user(ids, split.truth, k)
    res = {f"ndcg@{k}": float(nd.mean()), f"recall@{k}": float(rc.mean()), "users": len(nd)}
    if not taste:
        return res
    g, rows, truth = split.genres, split.rows, split.truth
    res["minority_recall@10"], res["minority_users"] = minority_recall(ids, truth, g, rows)
    third = multi_taste_third(rows, g)
    res["multi_third_ndcg@10"] = float(nd[third].mean())
    res["multi_third_recall@10"] = float(rc[third].mean())
    res["multi_third_users"] = len(third)
    rr = personae.CalibratedReranker(g, lam=CAL_LAMBDA)
    cal = rr.rerank(ids, scores, history=rows, n=TASTE_K).ids
    cnd, crc = per_user(cal, truth, TASTE_K)
    res["cal_ndcg@10"] = float(cnd.mean())
    res["cal_recall@10"] = float(crc.mean())
    res["cal_minority_recall@10"], _ = minority_recall(cal, truth, g, rows)
    return res


# ----------------------------------------------------------------------------- grids


def graph_grids(names, split: Split, dataset: str, batch: int = 500, num_threads=None):
    """Validation rows of every GF-CF / BSPM configuration of `names`, read from one NormGraph
    and shared per-batch powers of P~. Returns ({name: rows}, the NormGraph)."""
    cfgs = [(n, c) for n in names for c in bl.grid(n, dataset)]
    max_rank = max(c["rank"] for _, c in cfgs)
    g = bl.NormGraph(split.fit, max_rank=max_rank)
    log(f"graph of the validation fit matrix (rank {g.Vt.shape[0]}) ready")
    gs = bl.GraphScorer(g, max_power=5 if "bspm" in names else 1)
    nd = [[] for _ in cfgs]
    rc = [[] for _ in cfgs]
    k = split.k
    # beta / alpha innermost, so that each (rank, T) ideal part is computed once per batch
    order = sorted(
        range(len(cfgs)),
        key=lambda i: (
            cfgs[i][0],
            cfgs[i][1]["rank"],
            cfgs[i][1].get("solver", "rk4"),
            cfgs[i][1].get("T_s", 0.0),
        ),
    )
    for s in range(0, len(split.users), batch):
        rows = split.rows[s : s + batch]
        truth = split.truth[s : s + batch]
        parts = gs.batch(rows)
        for i in order:
            n, c = cfgs[i]
            ids, _ = personae.top_n(gs.score(parts, n, c), k, seen=rows, num_threads=num_threads)
            a, b = per_user(ids, truth, k)
            nd[i].append(a)
            rc[i].append(b)
    out = {n: [] for n in names}
    for i, (n, c) in enumerate(cfgs):
        a, b = np.concatenate(nd[i]), np.concatenate(rc[i])
        out[n].append({"config": c, f"ndcg@{k}": float(a.mean()), f"recall@{k}": float(b.mean())})
    return out, g


def fit_kwargs(split: Split, args, validation: bool) -> dict:
    kw = {"k": split.k, "device": args.device, "num_threads": args.threads}
    if validation:
        kw["validation"] = (split.rows, split.truth)
    return kw


def run_grid(name: str, configs, split: Split, args):
    """Fits every configuration on the validation fit matrix; returns (grid rows, the best
    model, its configuration)."""
    rows, best, cache = [], (-np.inf, None, None), {}
    key = f"ndcg@{split.k}"
    for c in configs:
        t = time.perf_counter()
        m = bl.fit(name, split.fit, c, cache, **fit_kwargs(split, args, validation=True))
        sec = time.perf_counter() - t
        r = evaluate(m, split, full=False, num_threads=args.threads)
        row = {"config": c, key: r[key], f"recall@{split.k}": r[f"recall@{split.k}"]}
        row["fit_seconds"] = sec
        if name == "multvae":
            row["best_epoch"] = int(m.manifest["training"]["best_epoch"])
            row["epochs_run"] = int(m.manifest["training"]["epochs_run"])
        rows.append(row)
        log(f"  {name} {c}: {key} {r[key]:.4f} ({sec:.1f} s)")
        if r[key] > best[0]:
            best = (r[key], m, c)
        del m
    return rows, best[1], best[2]


def run_model(name: str, data: dict, dataset: str, args, graph_rows=None) -> dict:
    """Validation grid, then the test refit of the chosen configuration, read once."""
    val, test = data["val"], data["test"]
    key = f"ndcg@{val.k}"
    t0 = time.perf_counter()
    if name in bl.GRAPH:
        rows, g, shared = graph_rows[name], graph_rows["graph"], graph_rows["seconds"]
        cfg = max(rows, key=lambda r: r[key])["config"]
        vmodel = bl.fit(name, val.fit, cfg, {"graph": g})
    else:
        rows, vmodel, cfg = run_grid(name, bl.grid(name, dataset), val, args)
        shared = 0.0
    vres = evaluate(vmodel, val, num_threads=args.threads)
    chosen = max(r[key] for r in rows)
    if abs(vres[key] - chosen) > 1e-3:  # the grid and the full evaluation disagree
        log(f"  warning: {name} validation {key} {vres[key]:.4f} vs grid {chosen:.4f}")
    grid_s = time.perf_counter() - t0 + shared
    test_cfg = bl.multvae_refit_config(cfg, vmodel) if name == "multvae" else cfg
    extra = {}
    if name == "ampcf":
        extra["val_fit_summary"] = _ampcf_summary(vmodel)
    del vmodel
    log(f"{name}: chosen {cfg} (validation {key} {vres[key]:.4f}); test fit {test_cfg}")
    t = time.perf_counter()
    model = bl.fit(name, test.fit, test_cfg, None, **fit_kwargs(test, args, validation=False))
    fit_s = time.perf_counter() - t
    tres = evaluate(model, test, num_threads=args.threads)
    if name == "ampcf":
        extra["test_fit_summary"] = _ampcf_summary(model)
    shown = {m: round(v, 4) for m, v in tres.items() if isinstance(v, float)}
    log(f"{name}: test {shown}, fit {fit_s:.1f} s, grid {grid_s:.1f} s")
    return {
        "config": cfg,
        "test_config": test_cfg,
        "val": vres,
        "grid": rows,
        "test": tres,
        "fit_seconds": fit_s,
        "grid_seconds": grid_s,
        **extra,
    }


def _ampcf_summary(model) -> dict:
    tr = model.manifest.get("training", {})
    return {k: v for k, v in tr.items() if k != "search"}


# ----------------------------------------------------------------------------- Gowalla EASE


def gowalla_ease(data: dict, args, entry: dict) -> dict:
    """One lambda of EASEBig on the validation split (merged into the stored grid), or the
    final refit of the best stored lambda (``--ease-final``)."""
    val, test = data["val"], data["test"]
    key = f"ndcg@{val.k}"
    rows = [r for r in entry.get("grid", []) if r["config"]["lam"] != args.ease_lambda]
    if args.ease_lambda is not None:
        t = time.perf_counter()
        m = bl.fit("ease_big", val.fit, {"lam": args.ease_lambda})
        sec = time.perf_counter() - t
        r = evaluate(m, val, full=False, num_threads=args.threads)
        del m
        rows.append({"config": {"lam": args.ease_lambda}, **r, "fit_seconds": sec})
        rows.sort(key=lambda r: r["config"]["lam"])
        entry["grid"] = rows
        entry["grid_seconds"] = sum(r["fit_seconds"] for r in rows)
        log(f"ease lam {args.ease_lambda}: validation {key} {r[key]:.4f} ({sec:.0f} s)")
    if args.ease_final:
        if not rows:
            sys.exit("--ease-final: no validated lambda stored; run --ease-lambda first")
        best = max(rows, key=lambda r: r[key])
        cfg = best["config"]
        entry["config"] = entry["test_config"] = cfg
        entry["val"] = {m: best[m] for m in (key, f"recall@{val.k}", "users")}
        t = time.perf_counter()
        m = bl.fit("ease_big", test.fit, cfg)
        entry["fit_seconds"] = time.perf_counter() - t
        entry["test"] = evaluate(m, test, num_threads=args.threads)
        log(f"ease: chosen {cfg}; test {entry['test']}, fit {entry['fit_seconds']:.0f} s")
    return entry


# ----------------------------------------------------------------------------- results


def result_path(dataset: str, split_seed: int = 0) -> Path:
    return OUT / (f"{dataset}.json" if not split_seed else f"{dataset}-split{split_seed}.json")


def read_results(dataset: str, split_seed: int = 0) -> dict:
    p = result_path(dataset, split_seed)
    return json.loads(p.read_text()) if p.exists() else {"dataset": dataset, "models": {}}


def write_results(dataset: str, res: dict, split_seed: int = 0) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    p = result_path(dataset, split_seed)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1, default=_jsonable))
    tmp.replace(p)
    return p


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _f(x, d: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if x != x else f"{x:.{d}f}"
    return str(x)


def _cfg(c: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in c.items()) if c else "defaults"


def table(dataset: str, split_seed: int = 0) -> str:
    """The stored results of `dataset` as a markdown table (rows = models)."""
    res = read_results(dataset, split_seed)
    models = res.get("models", {})
    k = 20 if dataset == "gowalla" else 10
    cols = [f"val NDCG@{k}", f"NDCG@{k}", f"Recall@{k}"]
    keys = [("val", f"ndcg@{k}"), ("test", f"ndcg@{k}"), ("test", f"recall@{k}")]
    if dataset != "gowalla":
        cols += ["multi-taste third NDCG@10", "minority-taste R@10", "calibrated NDCG@10",
                 "calibrated minority-taste R@10"]  # fmt: skip
        keys += [("test", m) for m in ("multi_third_ndcg@10", "minority_recall@10",
                                       "cal_ndcg@10", "cal_minority_recall@10")]  # fmt: skip
    lines = [
        f"### {dataset}",
        "",
        "| model | chosen on validation | " + " | ".join(cols) + " | fit (s) | grid (s) |",
        "|---" * (len(cols) + 4) + "|",
    ]
    order = [m for m in MODELS if m in models] + [m for m in models if m not in MODELS]
    for m in order:
        e = models[m]
        if "test" not in e:
            continue
        cells = [_f(e.get(part, {}).get(key)) for part, key in keys]
        cfg = _cfg(e.get("config", {}))
        if e.get("test_config") not in (None, e.get("config")):
            cfg += f" (test fit: {_cfg(e['test_config'])})"
        fit_s, grid_s = _f(e.get("fit_seconds"), 1), _f(e.get("grid_seconds"), 1)
        lines.append(f"| {m} | {cfg} | " + " | ".join(cells) + f" | {fit_s} | {grid_s} |")
    if res.get("cpu"):
        lines += ["", f"CPU: {res['cpu']}; threads: {res.get('threads', '?')}."]
    return "\n".join(lines)


def splits_table(dataset: str) -> str:
    """Test NDCG@K (and, with genres, minority-taste recall@10) of each model over every
    stored split (``--split-seed``), with AMP-CF against each model paired per split: mean and
    standard error over the splits."""
    k = 20 if dataset == "gowalla" else 10
    seeds = sorted(
        int(p.stem.rsplit("split", 1)[1]) if "-split" in p.stem else 0
        for p in OUT.glob(f"{dataset}*.json")
        if p.stem == dataset or p.stem.startswith(f"{dataset}-split")
    )
    runs = {s: read_results(dataset, s)["models"] for s in seeds}
    models = [m for m in MODELS if any(m in r and "test" in r[m] for r in runs.values())]
    metrics = [f"ndcg@{k}"] + ([] if dataset == "gowalla" else ["minority_recall@10"])
    head = " | ".join(f"{m} mean | se | AMP-CF / model | se" for m in metrics)
    lines = [
        f"### {dataset}: test metrics over splits {', '.join(map(str, seeds))}",
        "",
        f"| model | splits | {head} |",
        "|---" * (2 + 4 * len(metrics)) + "|",
    ]

    def se(x: np.ndarray) -> float:
        return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")

    for m in models:
        have = [s for s in seeds if "test" in runs[s].get(m, {})]
        both = [s for s in have if "test" in runs[s].get("ampcf", {})]
        cells = []
        for key in metrics:
            v = np.array([runs[s][m]["test"][key] for s in have])
            # A split where the model scores 0 (GF-CF's minority recall on the synthetic data)
            # has no ratio: left out of the mean.
            r = np.array([runs[s]["ampcf"]["test"][key] / runs[s][m]["test"][key] for s in both
                          if runs[s][m]["test"][key] > 0])  # fmt: skip
            cells += [f"{v.mean():.4f}", f"{se(v):.4f}"]
            cells += [f"{r.mean():.4f}", f"{se(r):.4f}"] if len(r) else ["-", "-"]
        lines.append(f"| {m} | {len(have)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def limit_threads(n: int) -> None:
    """At most `n` threads for BLAS, torch and the Rust core (which follows the CPU affinity)."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > n:
            os.sched_setaffinity(0, cpus[:n])
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch ships with the train extra
        pass


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", choices=DATASETS)
    ap.add_argument("--models", default=None, help="comma-separated; default: all")
    ap.add_argument("--table", action="store_true", help="print the stored table, run nothing")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="Mult-VAE's training device")
    ap.add_argument("--ease-lambda", type=float, default=None, help="Gowalla EASE: one lambda")
    ap.add_argument("--ease-final", action="store_true", help="Gowalla EASE: test refit")
    ap.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="another MovieLens / synthetic split (holdout seeds 2s, 2s + 1), stored apart",
    )
    ap.add_argument(
        "--splits-table", action="store_true", help="print every stored split's test NDCG"
    )
    a = ap.parse_args(argv)
    if a.table:
        print(table(a.dataset, a.split_seed))
        return
    if a.splits_table:
        print(splits_table(a.dataset))
        return
    if a.split_seed < 0:
        ap.error(f"--split-seed must be >= 0, got {a.split_seed}")
    if a.split_seed and a.dataset == "gowalla":
        ap.error("--split-seed: Gowalla has one split (LightGCN's)")
    default = GOWALLA_MODELS if a.dataset == "gowalla" else MODELS
    models = a.models.split(",") if a.models else list(default)
    known = GOWALLA_MODELS + MODELS if a.dataset == "gowalla" else MODELS
    bad = [m for m in models if m not in known]
    if bad:
        ap.error(f"unknown model(s) {bad}; choose from {sorted(set(known))}")
    if a.dataset == "gowalla" and "ease" in models and a.ease_lambda is None and not a.ease_final:
        ap.error("EASE on Gowalla runs one lambda per run: give --ease-lambda L or --ease-final")
    limit_threads(a.threads)
    import warnings

    warnings.filterwarnings("ignore", message="OpenBLAS is configured")
    command = "python benches/accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv)
    t = time.perf_counter()
    data = load_dataset(a.dataset, a.split_seed)
    log(f"{a.dataset}: {data['info']} ({time.perf_counter() - t:.1f} s)")
    res = read_results(a.dataset, a.split_seed)
    res.update(
        dataset=a.dataset, info=data["info"], cpu=cpu(), threads=a.threads, split_seed=a.split_seed
    )
    graphs = [m for m in models if m in bl.GRAPH]
    graph_rows = None
    if graphs:
        t = time.perf_counter()
        graph_rows, g = graph_grids(graphs, data["val"], a.dataset, num_threads=a.threads)
        graph_rows.update(graph=g, seconds=time.perf_counter() - t)
        log(f"graph-filter grids ({', '.join(graphs)}): {graph_rows['seconds']:.1f} s")
    for m in models:
        log(f"== {m}")
        if a.dataset == "gowalla" and m == "ease":
            entry = gowalla_ease(data, a, res["models"].get("ease", {}))
        else:
            entry = run_model(m, data, a.dataset, a, graph_rows)
        if m in bl.GRAPH and len(graphs) > 1:
            entry["grid_seconds_note"] = f"one shared pass for {', '.join(graphs)}"
        entry.update(command=command, when=time.strftime("%Y-%m-%d %H:%M:%S"))
        res["models"][m] = entry
        write_results(a.dataset, res, a.split_seed)
    print()
    print(table(a.dataset, a.split_seed))


if __name__ == "__main__":
    main()
