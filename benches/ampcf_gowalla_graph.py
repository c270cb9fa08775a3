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

``--grid`` (issue 23: why does AMP-CF lose accuracy when its filter sharpens?) measures on the
same carve the harness's exact BSPM peer (``baselines.BSPM``: every power of P~ exact),
``personae.GraphFilter(time=2.5, beta=0.1, rank=448)``, and AMP-CF around that filter and
around the default one at mix 0, 0.05, 0.1 and 0.25 (one fit per filter: the fit does not read
mix), writing each row to runs/ampcf-gowalla-grid.json as it completes. ``--emulate`` adds
AMP-CF's personas and attention computed in numpy over each filter's votes, the exact BSPM's
included, and how the personas' votes split on the filter's top 20. ``--tail`` measures the
spectrum beyond the filter's rank: where the library's sharpening is not applied.

    python benches/ampcf_gowalla_graph.py --grid --emulate
    python benches/ampcf_gowalla_graph.py --tail
"""

from __future__ import annotations

import json
import time

import accuracy
import numpy as np
import scipy.sparse as sp

import personae

from _common import RUNS, cpu, parser

GRID = [(2.5, 0.1), (0.0, 0.1), (0.0, 0.2), (0.0, 0.3)]


# -- --grid: why sharpening loses inside AMP-CF (issue 23) ------------------------------------

GRID_MIXES = (0.0, 0.05, 0.1, 0.25)
# GF-CF's response (flatness 0, no degree normalisation), as these rows were measured before
# ChebyCF's filter became GraphFilter's default.
SHARP = dict(time=2.5, beta=0.1, rank=448, flatness=0.0, item_power=0.0)
PLAIN = dict(time=0.0, beta=0.2, rank=448, flatness=0.0, item_power=0.0)


def _ampcf_tensors(X, filt: dict) -> tuple[dict, float]:
    """One AMP-CF fit (its tensors and seconds) with GraphFilter(**filt): the fit does not read
    ``mix`` (a serving setting, in the manifest only), so every mix is served from these."""
    from personae.models import fit_inputs
    from personae.train.ampcf import fit

    x, _ = fit_inputs(X, None)
    t0 = time.perf_counter()
    cfg = personae.AMPCF(filter=personae.GraphFilter(**filt))._config()
    tensors, _ = fit(x, cfg, show_progress=False)
    return tensors, time.perf_counter() - t0


class _Emulation:
    """AMP-CF's score in numpy on the validation users, over any linear filter's votes: the
    Rust model's own persona split (``AMPCF.personas``), persona directions ``normalise(sum x_i
    z_i)``, attention ``softmax_k(e_k . z_j / tau)`` (delta = gamma = 0, the defaults) and
    ``s = (1 - mix) sum_k v_k + mix sum_k a_k v_k``. Filters are scored from the harness's
    NormGraph (exact sparse powers of P~): GF-CF (time 0), the exact BSPM (the peer) and the
    library's sharpened filter (``x P~`` plus its fitted low-rank pair)."""

    def __init__(self, graph, peer, model, z, low, batch: int = 64, tau: float = 1.0):
        self.g, self.peer, self.model, self.z, self.low = graph, peer, model, z, low
        self.batch, self.tau = batch, tau
        self.k = model.n_personas

    def filters(self, Y: sp.csr_matrix) -> dict[str, np.ndarray]:
        D = Y.toarray().astype(np.float32)
        YP = self.g.apply_P(D)  # shared by the two filters whose x P~ is exact
        left, right = self.low
        return {
            "gfcf beta 0.2": YP + 0.2 * self.g.ideal(D, 448),
            "library sharpened (approx)": YP + (Y @ left) @ right.T,
            "bspm exact": self.peer.score(None, Y),  # the harness's peer, every power exact
        }

    def run(self, val, mixes, threads: int) -> tuple[dict, dict]:
        """({(filter, mix): (ndcg, recall)}, {filter: vote diagnostics on the plain top-20})."""
        import accuracy

        K, n, kk = self.k, val.fit.shape[1], val.k
        nd: dict = {}
        diag: dict = {}
        for s in range(0, len(val.users), self.batch):
            rows = val.rows[s : s + self.batch]
            truth = val.truth[s : s + self.batch]
            b = rows.shape[0]
            entry = self.model.personas(rows)["entry"]
            hu = np.repeat(np.arange(b), np.diff(rows.indptr))
            Xp = sp.csr_matrix((rows.data, (hu * K + entry, rows.indices)), shape=(b * K, n))
            live = np.diff(Xp.indptr) > 0
            E = np.asarray(Xp @ self.z, np.float32)
            E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
            logit = (E @ self.z.T) / self.tau
            logit[~live] = -np.inf
            logit = logit.reshape(b, K, n)
            logit -= logit.max(1, keepdims=True)
            a = np.exp(logit)
            a /= a.sum(1, keepdims=True)
            del logit
            for name, votes in self.filters(Xp[live]).items():
                V = np.zeros((b * K, n), np.float32)
                V[live] = votes
                V = V.reshape(b, K, n)
                t = V.sum(1)
                A = (a * V).sum(1)
                for mix in mixes:
                    sc = np.ascontiguousarray((1 - mix) * t + mix * A, np.float32)
                    ids, _ = personae.top_n(sc, kk, seen=rows, num_threads=threads)
                    d, r = accuracy.per_user(ids, truth, kk)
                    nd.setdefault((name, mix), ([], []))
                    nd[(name, mix)][0].append(d)
                    nd[(name, mix)][1].append(r)
                    if mix == 0.0:
                        top = ids
                # Diagnostics on the filter's own top-20 (mix 0): how the votes split.
                Vt = np.take_along_axis(V, top[:, None, :], 2)  # b x K x 20
                tt = np.take_along_axis(t, top, 1)
                absv = np.abs(Vt).sum(1)
                dd = diag.setdefault(name, {"ratio": [], "neg": [], "share_max": []})
                dd["ratio"].append((absv / np.maximum(np.abs(tt), 1e-30)).ravel())
                dd["neg"].append((np.clip(-Vt, 0, None).sum(1) / np.maximum(absv, 1e-30)).ravel())
                dd["share_max"].append((Vt.max(1) / np.where(tt != 0, tt, np.nan)).ravel())
                del V, t, A
        res = {
            key: (float(np.concatenate(v[0]).mean()), float(np.concatenate(v[1]).mean()))
            for key, v in nd.items()
        }
        summ = {}
        for name, dd in diag.items():
            ratio, neg = np.concatenate(dd["ratio"]), np.concatenate(dd["neg"])
            smax = np.concatenate(dd["share_max"])
            summ[name] = {
                "sum|v_k|/|t| median": float(np.median(ratio)),
                "sum|v_k|/|t| p90": float(np.quantile(ratio, 0.9)),
                "negative vote mass share mean": float(neg.mean()),
                "items with any cancellation (sum|v|>1.01|t|)": float((ratio > 1.01).mean()),
                "max_k v_k / t median": float(np.nanmedian(smax)),
            }
        return res, summ


def run_grid(threads: int, emulate: bool) -> None:
    """Issue 23's measurement (validation carve only): the harness's exact BSPM peer, the
    library's sharpened GraphFilter, AMP-CF around the sharpened and the default filter at
    several mixes, and AMP-CF's attention emulated over the exact BSPM's votes."""
    import baselines as bl

    val = accuracy.load_dataset("gowalla")["val"]
    out = RUNS / "ampcf-gowalla-grid.json"
    out.parent.mkdir(exist_ok=True)
    cmd = "python benches/ampcf_gowalla_graph.py --grid" + (" --emulate" if emulate else "")
    rec: dict = {"command": cmd, "cpu": cpu(), "rows": [], "diagnostics": {}}

    def add(name: str, r: dict, fit_s: float | None, **extra) -> None:
        row = {"model": name, "ndcg@20": r["ndcg@20"], "recall@20": r["recall@20"]}
        rec["rows"].append({**row, "fit_seconds": fit_s, **extra})
        out.write_text(json.dumps(rec, indent=1))
        fs = "" if fit_s is None else f" (fit {fit_s:.0f} s)"
        print(
            f"{name:<58} NDCG@20 {r['ndcg@20']:.4f} Recall@20 {r['recall@20']:.4f}{fs}", flush=True
        )

    def ev(m) -> dict:
        return accuracy.evaluate(m, val, full=False, num_threads=threads)

    # 1. The harness's BSPM peer (baselines.BSPM: exact sparse powers of P~ on Gowalla).
    t0 = time.perf_counter()
    g = bl.NormGraph(val.fit, max_rank=448)
    peer = bl.BSPM(g, beta=0.1, rank=448, T_s=2.5, solver="rk4")
    add("bspm exact (harness peer) beta 0.1 T 2.5 rank 448", ev(peer), time.perf_counter() - t0)
    # 2. AMP-CF around the library's sharpened filter, one fit, every mix.
    tens, fit_s = _ampcf_tensors(val.fit, SHARP)
    low = (tens["low_left"], tens["low_right"])
    for mix in GRID_MIXES:
        m = personae.AMPCF.from_tensors(tens, filter=personae.GraphFilter(**SHARP), mix=mix)
        add(f"ampcf GraphFilter(time 2.5, beta 0.1) mix {mix}", ev(m), fit_s)
        if mix == 0.25:  # the certified pruned lists against the fused scorer on every item
            m._fitted().set_exact_top_n(True)
            add(f"  same, exact_top_n (unpruned) mix {mix}", ev(m), None)
        del m
    sharp_labels = tens["item_cluster"].copy()
    del tens
    # 3. The library's sharpened GraphFilter on its own (= AMP-CF's mix 0 above).
    t0 = time.perf_counter()
    gf = personae.GraphFilter(**SHARP).fit(val.fit, show_progress=False)
    add("GraphFilter(time 2.5, beta 0.1, rank 448)", ev(gf), time.perf_counter() - t0)
    del gf
    # 4. AMP-CF around the default filter (GF-CF form), one fit, every mix.
    tens, fit_s = _ampcf_tensors(val.fit, PLAIN)
    same = bool(np.array_equal(sharp_labels, tens["item_cluster"]))
    rec["same_taste_clusters_in_both_fits"] = same
    for mix in GRID_MIXES:
        m = personae.AMPCF.from_tensors(tens, filter=personae.GraphFilter(**PLAIN), mix=mix)
        add(f"ampcf GraphFilter(time 0, beta 0.2) mix {mix}", ev(m), fit_s)
        if mix != 0.25 or not emulate:
            del m
    if not emulate:
        print(f"written to {out}")
        return
    # 5. AMP-CF's personas and attention over each filter's votes, in numpy.
    z = np.ascontiguousarray(tens["item_space"], np.float32)
    del tens
    t0 = time.perf_counter()
    res, diag = _Emulation(g, peer, m, z, low).run(val, GRID_MIXES, threads)
    sec = time.perf_counter() - t0
    for (name, mix), (d, r) in res.items():
        add(
            f"emulated ampcf over {name} mix {mix}",
            {"ndcg@20": d, "recall@20": r},
            None,
            emulated=True,
        )
    rec["diagnostics"] = diag
    rec["emulation_seconds"] = sec
    out.write_text(json.dumps(rec, indent=1))
    print(json.dumps(diag, indent=1))
    print(f"written to {out}")


def run_tail() -> None:
    """What the library's sharpened filter leaves out on Gowalla: BSPM's polynomial p(lambda)
    at the top and at the 448th eigenvalue of P~, the share of the validation users' ``x P~``
    outside the top-448 spectrum (where the library applies p = 1) and how much the exact
    polynomial shrinks that part. Writes runs/ampcf-gowalla-tail.json."""
    import baselines as bl

    from personae.train.filters import bspm_coefficients

    val = accuracy.load_dataset("gowalla")["val"]
    t0 = time.perf_counter()
    g = bl.NormGraph(val.fit, max_rank=SHARP["rank"])
    c = bspm_coefficients(SHARP["time"], "rk4")

    def p(lam: float) -> float:
        return float(sum(ck * lam**k for k, ck in enumerate(c)))

    lam = g.s.astype(np.float64) ** 2
    YP = g.apply_P(val.rows[:1000].toarray().astype(np.float32))
    tail = YP - (YP @ g.Vt.T) @ g.Vt
    share = (np.linalg.norm(tail, axis=1) ** 2 / np.linalg.norm(YP, axis=1) ** 2).mean()
    y, acc = tail, c[0] * tail
    for ck in c[1:]:
        y = g.apply_P(y)
        acc = acc + ck * y
    shrink = (np.linalg.norm(acc, axis=1) / np.linalg.norm(tail, axis=1)).mean()
    out = {
        "command": "python benches/ampcf_gowalla_graph.py --tail",
        "cpu": cpu(),
        "lambda_1": float(lam[0]),
        "lambda_448": float(lam[-1]),
        "p(lambda_1)": p(lam[0]),
        "p(lambda_448)": p(lam[-1]),
        "tail share of ||x P~||^2 (mean of 1000 validation users)": float(share),
        "||p(P~) tail|| / ||tail|| (mean)": float(shrink),
        "seconds": time.perf_counter() - t0,
    }
    path = RUNS / "ampcf-gowalla-tail.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


def main() -> None:
    ap = parser(__doc__, threads=2)
    ap.add_argument("--grid", action="store_true", help="issue 23's measurement (see run_grid)")
    ap.add_argument("--emulate", action="store_true", help="with --grid: the numpy emulation")
    ap.add_argument("--tail", action="store_true", help="the spectrum beyond the filter's rank")
    a = ap.parse_args()
    if a.tail:
        run_tail()
        return
    if a.grid:
        run_grid(a.threads, a.emulate)
        return
    val = accuracy.load_dataset("gowalla")["val"]
    rows = []
    for t, b in GRID:
        t0 = time.perf_counter()
        graph = personae.GraphFilter(time=t, beta=b, flatness=0.0, item_power=0.0)
        m = personae.AMPCF(filter=graph).fit(val.fit, show_progress=False)
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
