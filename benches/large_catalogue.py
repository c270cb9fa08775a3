"""GraphFilter beyond 41k items: the sparse filter that keeps each item's top neighbours of P~
(``GraphFilter(neighbours=k)``), on a synthetic catalogue of 200,000 items and 1,000,000 users.

Usage: python benches/large_catalogue.py [--items 200000 --users 1000000 --neighbours 200
       --rank 448 --sample 2000]

The data is ``personae.synthetic`` (users mixing 1-4 of `--tastes` tastes, power-law item
popularity inside each taste, ~`--mean-items` items per user), generated in a child process
and read back from disk, so this process's peak RSS (``ru_maxrss``) is the fit's and the
data's, not the generator's. Reports: the fit's time (and its spectrum's share), peak RSS
against the fitted model's size (the bytes of its tensors), the size the exact P~ would have
(its row lengths counted on a sample of items), serving speed (top-20 for the sample users),
and the pruned filter's top-20 against the exact filter's on `--sample` users: the exact
scores are ``x P~ = (x R~^T) R~`` (two sparse products, P~ never formed) plus the same
low-rank part.
"""

from __future__ import annotations

import resource
import tempfile
import time

import numpy as np
import scipy.sparse as sp

from _common import PhasePeaks, cpu, parser, run_child, write_result

GENERATE = r"""
import json, sys, time
import scipy.sparse as sp
import personae
users, items, tastes, mean_items, seed, out = sys.argv[1:]
t = time.perf_counter()
d = personae.synthetic(n_users=int(users), n_items=int(items), n_tastes=int(tastes),
                       mean_items=float(mean_items), seed=int(seed))
sp.save_npz(out, d.interactions.matrix.tocsr(), compressed=False)
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def rss_mib() -> float:
    """This process's peak resident set so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def exact_top(model, X: sp.csr_matrix, rows: np.ndarray, n: int, chunk: int = 50) -> np.ndarray:
    """The exact graph filter's top-`n` (seen items masked) for the users `rows` of X, from the
    pruned `model`: its scores minus its kept votes plus the whole votes ``b (x w) P~ v``, P~
    never formed (``x P~ = (x R~^T) R~``: two sparse products), with the fit's tail slope b,
    the history's weights ``w = d^-item_power`` and the scores' ``v = d^(item_power - eta)``
    (all 1 for GF-CF's form: the votes are then P~'s own values)."""
    from personae.train.filters import scaled

    t = model.tensors()
    training = model.manifest["training"]
    p = training["settings"]["item_power"]
    eta = training["settings"]["eta"]
    n_items = X.shape[1]
    kept = sp.csr_matrix(
        (t["votes_data"], t["votes_indices"], t["votes_indptr"]), shape=(n_items, n_items)
    )
    Xs = scaled(X)
    du, di = np.asarray(Xs.sum(1)).ravel(), np.asarray(Xs.sum(0)).ravel()
    inv = lambda v: np.where(v > 0, 1 / np.sqrt(np.maximum(v, 1e-30)), 0.0)  # noqa: E731
    R = (sp.diags(inv(du)) @ Xs @ sp.diags(inv(di))).astype(np.float32).tocsr()
    RT = R.T.tocsr()
    d = np.maximum(di, 1.0)
    w = training["tail_slope"] * np.where(di > 0, d**-p, 1.0)
    v = np.where(di > 0, d ** (p - eta), 0.0).astype(np.float32)
    out = np.empty((len(rows), n), np.int64)
    for s in range(0, len(rows), chunk):
        x = X[rows[s : s + chunk]]
        x = sp.diags(1 / x.max(axis=1).toarray().ravel()) @ x  # the scorer's row scaling
        x = x.astype(np.float32).tocsr()
        x.sort_indices()
        xw = (x @ sp.diags(w)).astype(np.float32).tocsr()
        full = model.score(x) - (x @ kept).toarray() + ((xw @ RT) @ R).toarray() * v
        full[x.nonzero()] = -np.inf
        part = np.argpartition(-full, n, axis=1)[:, :n]
        order = np.argsort(-np.take_along_axis(full, part, 1), axis=1, kind="stable")
        out[s : s + chunk] = np.take_along_axis(part, order, 1)
    return out


def exact_entries(X: sp.csr_matrix, n_rows: int, seed: int) -> float:
    """The entries the exact P~ would hold, from the row lengths of `n_rows` random items."""
    rng = np.random.default_rng(seed)
    XT = X.T.tocsr()
    pick = np.sort(rng.choice(X.shape[1], size=min(n_rows, X.shape[1]), replace=False))
    total = 0
    for s in range(0, len(pick), 200):
        total += (XT[pick[s : s + 200]] @ X).nnz
    return total / len(pick) * X.shape[1]


def main() -> None:
    ap = parser(
        __doc__,
        items=200_000,
        users=1_000_000,
        tastes=50,
        mean_items=30.0,
        neighbours=200,
        rank=448,
        sample=2000,
        seed=0,
    )
    a = ap.parse_args()
    import personae

    print(f"CPU: {cpu()}", flush=True)
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/x.npz"
        gen = run_child(GENERATE, a.users, a.items, a.tastes, a.mean_items, a.seed, path)
        X = sp.load_npz(path).tocsr()
    X.sort_indices()
    print(
        f"data: {X.shape[0]:,} users x {X.shape[1]:,} items, {X.nnz:,} interactions "
        f"(generated in {gen['seconds']:.0f} s)",
        flush=True,
    )
    import torch  # noqa: F401  (its runtime, ~0.5 GiB, is loaded by any fit, not the fit's)

    from personae.train import filters as F

    peaks = PhasePeaks()
    for fn in ("graph_spectrum", "graph_filter", "graph_votes", "fit_filter"):
        peaks.tag(F, fn)
    before = rss_mib()
    est = personae.GraphFilter(rank=a.rank, neighbours=a.neighbours, device="cpu", seed=a.seed)
    t = time.perf_counter()
    model = est.fit(X, show_progress=False)
    fit_s = time.perf_counter() - t
    peak = rss_mib()
    peaks.done()
    tensors = model.tensors()
    size_mib = sum(v.nbytes for v in tensors.values()) / 2**20
    votes_mib = sum(tensors[k].nbytes for k in ("votes_indices", "votes_data")) / 2**20
    training = model.manifest["training"]
    print(
        f"fit: {fit_s:.1f} s (spectrum {training['spectrum_seconds']:.1f} s); peak RSS "
        f"{peak:,.0f} MiB ({before:,.0f} before the fit); model {size_mib:,.0f} MiB "
        f"(votes {votes_mib:,.0f} MiB)",
        flush=True,
    )
    print(f"fit's phases (peak RSS; after fit_filter: the build), {before / 1024:.3f} GiB before:")
    peaks.report()

    rng = np.random.default_rng(a.seed + 1)
    live = np.flatnonzero(np.diff(X.indptr) > 0)
    rows = np.sort(rng.choice(live, size=min(a.sample, len(live)), replace=False))
    t = time.perf_counter()
    ids, _ = model.recommend(X[rows], 20)
    serve_s = time.perf_counter() - t
    t = time.perf_counter()
    exact = exact_top(model, X, rows, 20)
    exact_s = time.perf_counter() - t
    hits = np.array([len(np.intersect1d(p, e)) for p, e in zip(ids, exact, strict=True)])
    recall = float(hits.mean() / 20)
    same = float((hits == 20).mean())
    entries = exact_entries(X, 2000, a.seed)
    print(
        f"serving: {len(rows) / serve_s:,.0f} users/s (top-20, {len(rows)} users); "
        f"exact reference {exact_s:.1f} s",
        flush=True,
    )
    print(
        f"recall@20 against the exact filter: {recall:.4f}; identical top-20 sets "
        f"{same:.1%} of {len(rows)} users",
        flush=True,
    )
    print(
        f"exact P~: ~{entries:,.0f} entries (~{entries * 8 / 2**30:.1f} GiB as float32 CSR); "
        f"kept {len(tensors['votes_data']):,}",
        flush=True,
    )
    write_result(
        f"large-catalogue-{a.items}x{a.users}",
        {
            "command": f"python benches/large_catalogue.py --items {a.items} --users {a.users} "
            f"--tastes {a.tastes} --mean-items {a.mean_items} --neighbours {a.neighbours} "
            f"--rank {a.rank} --sample {a.sample} --seed {a.seed}",
            "cpu": cpu(),
            "interactions": int(X.nnz),
            "generate_seconds": gen["seconds"],
            "fit_seconds": fit_s,
            "spectrum_seconds": training["spectrum_seconds"],
            "rss_before_fit_mib": before,
            "peak_rss_mib": peak,
            "phase_peaks_gib": {k: v for k, v in peaks.peaks.items() if k != "done"},
            "model_mib": size_mib,
            "votes_mib": votes_mib,
            "exact_p_entries_estimate": entries,
            "kept_entries": int(len(tensors["votes_data"])),
            "serve_users_per_s": len(rows) / serve_s,
            "recall20_vs_exact": recall,
            "identical_top20_share": same,
            "sample_users": int(len(rows)),
        },
    )


if __name__ == "__main__":
    main()
