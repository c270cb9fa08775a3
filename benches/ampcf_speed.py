"""AMP-CF serving speed: personae's Rust top-N (the certified pruned path, the default; the
exact path, the fused scorer on every item, beside it) against a batched PyTorch forward pass of
the same model.

The model is ``personae.AMPCF()`` fitted with its defaults on the dataset (ML-latest-small by
default; Gowalla uses the graph filter with sparse votes), cached under runs/ampcf-speed/
(``--refit`` fits again). Every user is scored from their training rows, top-100 with their
training items masked. All contenders get the same threads and run in their own subprocesses,
one after the other, ``--repeat`` times (the machine is shared: compare within a run). PyTorch
takes each history item's persona from the Rust core (``personas``, timed with it) and does the
rest per batch of users, looping over personas so that no ``batch x K x items`` tensor exists:
each persona's sparse votes (scipy, its rows of the history times ``S``), its low-rank votes
(``x_k L`` times ``R^T``), its cosines, an online softmax over personas, the mix, masking and
top-k; a persona is computed only for the users who have it. "als": implicit's 64-factor ALS
serving top-100 for the same users, a cheaper model's speed beside ours (skipped with a note
when implicit is not installed; its lists are not compared). "peak extra": growth of the
process's peak RSS while scoring.

    python benches/ampcf_speed.py                       # ML-latest-small
    python benches/ampcf_speed.py --dataset gowalla --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from _common import RUNS, cpu

MODEL_DIR = RUNS / "ampcf-speed"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rows_of(args):
    import personae

    if args.dataset == "gowalla":
        from _common import gowalla

        X = gowalla()[0].matrix
    elif args.dataset == "synthetic":
        X = personae.synthetic().interactions.matrix
    else:
        from calibrate_movielens import load

        X = load(args.dataset)[0].matrix
    X = X.tocsr()
    X.sort_indices()
    return X[: args.users] if args.users else X


def model_path(args):
    return MODEL_DIR / args.dataset


def fit(args) -> dict:
    import personae

    X = rows_of(args)
    t = time.perf_counter()
    model = personae.AMPCF().fit(X, show_progress=False)
    secs = time.perf_counter() - t
    model.save(model_path(args))
    return {"fit_seconds": secs}


def run_rust(args, exact: bool = False, explain: bool = False) -> dict:
    import personae

    X = rows_of(args)
    model = personae.load(model_path(args))
    model._fitted().set_exact_top_n(exact)
    model.recommend(X[:200], 100, num_threads=args.threads)  # warm-up
    base = peak_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    out = model.recommend(X, 100, num_threads=args.threads, explain=explain)
    secs, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    name = "rust-exact" if exact else ("rust-explain" if explain else "rust")
    np.save(MODEL_DIR / f"{name}.npy", out[0])
    return {
        "seconds": secs,
        "cpu_seconds": cpu_s,
        "users": X.shape[0],
        "peak_extra_mib": peak_mib() - base,
    }


def run_torch(args) -> dict:
    import scipy.sparse as sp
    import torch

    import personae

    torch.set_num_threads(args.threads)
    X = rows_of(args)
    model = personae.load(model_path(args))
    t = {k: np.asarray(v) for k, v in model.tensors().items()}
    p = model.params
    K, tau, mix, delta, gamma = (p[k] for k in ("n_personas", "tau", "mix", "delta", "gamma"))
    n = X.shape[1]
    if "votes" in t:
        S = sp.csr_matrix(t["votes"])
    else:
        S = sp.csr_matrix((t["votes_data"], t["votes_indices"], t["votes_indptr"]), shape=(n, n))
    L = torch.from_numpy(t["low_left"]) if "low_left" in t else None
    RT = torch.from_numpy(t["low_right"]).T.contiguous() if "low_right" in t else None
    ZT = torch.from_numpy(t["item_space"]).T.contiguous()
    Z = torch.from_numpy(t["item_space"])
    ids = np.empty((X.shape[0], 100), np.int64)

    @torch.no_grad()
    def batch(rows: sp.csr_matrix) -> np.ndarray:
        # The model scores each history divided by its largest weight.
        top = rows.max(axis=1).toarray().ravel()
        rows = sp.csr_matrix(sp.diags(np.where(top > 0, 1 / np.maximum(top, 1e-30), 0)) @ rows)
        rows.sort_indices()
        per = model.personas(rows)  # the persona of each history entry (Rust)
        share = per["share"]
        np_ = (share > 0).sum(1)
        order = np.argsort(-np_, kind="stable")  # persona k: a prefix of the sorted users
        lens = np.diff(rows.indptr)[order]
        at = np.repeat(rows.indptr[:-1][order] - np.r_[0, np.cumsum(lens)[:-1]], lens)
        entry = per["entry"][at + np.arange(lens.sum())]
        rows, share, np_ = rows[order], share[order], np_[order]
        b = rows.shape[0]
        r = np.repeat(np.arange(b), np.diff(rows.indptr))
        total = torch.zeros(b, n)
        mx = torch.full((b, n), -torch.inf)
        den = torch.zeros(b, n)
        num = torch.zeros(b, n)
        for k in range(int(np_.max(initial=0))):
            c = int((np_ > k).sum())  # users 0..c have persona k
            sel = entry == k
            xk = sp.csr_matrix((rows.data[sel], (r[sel], rows.indices[sel])), shape=(c, n))
            v = torch.from_numpy((xk @ S).toarray())
            xt = torch.sparse_csr_tensor(
                torch.from_numpy(xk.indptr.astype(np.int64)),
                torch.from_numpy(xk.indices.astype(np.int64)),
                torch.from_numpy(xk.data.astype(np.float32)),
                size=(c, n),
            )
            if L is not None:
                v += (xt @ L) @ RT
            total[:c] += v
            e = torch.nn.functional.normalize(xt @ Z, dim=1)
            sk = torch.from_numpy(share[:c, k])
            lg = (e @ ZT) / tau + (delta * torch.log(sk)).unsqueeze(1)
            m_new = torch.maximum(mx[:c], lg)
            scale = torch.exp(mx[:c] - m_new)
            ek = torch.exp(lg - m_new)
            den[:c] = den[:c] * scale + ek
            num[:c] = num[:c] * scale + ek * (sk**-gamma).unsqueeze(1) * v
            mx[:c] = m_new
        s = total
        multi = torch.from_numpy(np_ > 1)
        s[multi] = (1 - mix) * total[multi] + mix * num[multi] / den[multi]
        s[torch.from_numpy(r), torch.from_numpy(rows.indices.astype(np.int64))] = -torch.inf
        out = np.empty((b, 100), np.int64)
        out[order] = torch.topk(s, 100, dim=1).indices.numpy()
        return out

    batch(X[:16])  # warm-up
    base = peak_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(0, X.shape[0], args.batch):
        ids[s : s + args.batch] = batch(X[s : s + args.batch])
    secs, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    np.save(MODEL_DIR / "torch.npy", ids)
    return {
        "seconds": secs,
        "cpu_seconds": cpu_s,
        "users": X.shape[0],
        "peak_extra_mib": peak_mib() - base,
    }


def isa() -> str:
    """The kernels the Rust core takes on this CPU (the core's own switches, so PERSONAE_GEMM and
    PERSONAE_FIRST_PASS are reported as they run)."""
    from personae import _core

    kernel, first = _core.gemm_kernel(), _core.first_pass()
    flags = ""
    try:
        info = open("/proc/cpuinfo").read().split("\n")
        flags = next(x for x in info if x.startswith("flags"))
    except (OSError, StopIteration):
        pass
    capped = os.environ.get("PERSONAE_ISA") == "avx2"  # the core held to AVX2
    loops = (
        "AVX-512"
        if " avx512f" in flags and not capped
        else "AVX2"
        if " avx2" in flags
        else "baseline x86-64"
    )
    if kernel == "portable":
        gemm = "the gemm crate's kernels (AVX2+FMA at most on stable Rust)"
    else:
        gemm = "personae's " + {"avx512": "AVX-512", "avx2": "AVX2"}[kernel] + " GEMM kernel"
    t = (
        f"in {first} within a certified bound (PERSONAE_FIRST_PASS=fp32: fp32)"
        if first != "fp32"
        else "in fp32"
    )
    return (
        f"every product in {gemm} (the pruned path's t = (x L) R^T {t}), the per-user loops "
        f"built for {loops}"
    )


def run_als(args) -> dict:
    """implicit's 64-factor ALS serving top-100 for the same users: a reference speed for a
    cheaper model (its lists are another model's, not compared)."""
    from threadpoolctl import threadpool_limits

    try:
        import implicit
    except ImportError:
        print("implicit is not installed: the ALS row is skipped (pip install implicit)")
        return {"skipped": True}
    X = rows_of(args)
    with threadpool_limits(1, "blas"):
        als = implicit.cpu.als.AlternatingLeastSquares(
            factors=64, iterations=3, num_threads=args.threads, random_state=0
        )
        als.fit(X, show_progress=False)
        users = np.arange(X.shape[0])
        als.recommend(users[:200], X[:200], N=100)  # warm-up
        base = peak_mib()
        t0, c0 = time.perf_counter(), time.process_time()
        als.recommend(users, X, N=100)
        secs, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": secs,
        "cpu_seconds": cpu_s,
        "users": X.shape[0],
        "peak_extra_mib": peak_mib() - base,
    }


CONTENDERS = {
    "rust": lambda a: run_rust(a),
    "rust-exact": lambda a: run_rust(a, exact=True),
    "rust-explain": lambda a: run_rust(a, explain=True),
    "torch": run_torch,
    "als": run_als,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--dataset",
        default="ml-latest-small",
        choices=["ml-100k", "ml-latest-small", "gowalla", "synthetic"],  # fmt: skip
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--users", type=int, default=0, help="first N users only (0: all)")
    ap.add_argument("--batch", type=int, default=256, help="PyTorch users per batch")
    ap.add_argument("--which", choices=["fit", *CONTENDERS], default=None)
    ap.add_argument("--repeat", type=int, default=1, help="rounds of the contenders")
    ap.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated, of " + ", ".join(CONTENDERS),
    )
    ap.add_argument("--refit", action="store_true", help="fit even when a cached model exists")
    args = ap.parse_args()
    if args.which:
        run = {"fit": fit, **CONTENDERS}[args.which]
        print(json.dumps(run(args)))
        return
    out = {
        "command": "python benches/ampcf_speed.py " + " ".join(sys.argv[1:]),
        "cpu": cpu(),
        "isa": isa(),
        "threads": args.threads,
    }
    print(f"CPU: {out['cpu']}\nISA path: {out['isa']}\nthreads: {args.threads}", flush=True)

    def child(which: str) -> dict:
        cmd = [sys.executable, __file__, "--which", which] + sys.argv[1:]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"{which} failed:\n{r.stderr[-3000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    if args.refit or not (model_path(args) / "manifest.json").exists():
        out["fit"] = child("fit")
        print(f"fit {out['fit']['fit_seconds']:.1f} s", flush=True)
    names = args.contenders.split(",")
    runs: dict[str, list[dict]] = {w: [] for w in names}
    for rep in range(args.repeat):
        for which in names:
            o = child(which)
            if o.get("skipped"):
                continue
            o["users_per_second"] = o["users"] / o["seconds"]
            o["users_per_cpu_second"] = o["users"] / o["cpu_seconds"]
            runs[which].append(o)
            print(
                f"round {rep + 1} {which:12s}: {o['seconds']:7.2f} s  "
                f"{o['users_per_second']:6.0f} users/s  (CPU {o['cpu_seconds']:.1f} s: "
                f"{args.threads * o['users_per_cpu_second']:.0f} users/s on {args.threads} "
                f"busy cores)  peak extra {o['peak_extra_mib']:.0f} MiB",
                flush=True,
            )
    out["runs"] = runs
    best = {w: max(o["users_per_second"] for o in rs) for w, rs in runs.items() if rs}
    out["best_users_per_second"] = best
    ref = np.load(MODEL_DIR / f"{names[0]}.npy")
    for w in names[1:]:
        if w == "als":  # another model: its speed beside ours, its lists not compared
            if w in best:
                print(
                    f"als (64 factors): best {best[w]:.0f} users/s; {names[0]} best "
                    f"{best[names[0]]:.0f} users/s ({best[names[0]] / best[w]:.2f}x)"
                )
            continue
        other = np.load(MODEL_DIR / f"{w}.npy")
        same = float((other == ref).all(1).mean())
        overlap = float(
            np.mean([len(set(x) & set(y)) / 100 for x, y in zip(ref, other, strict=True)])
        )
        out[f"{w}_same_list"] = same
        print(
            f"{w} vs {names[0]}: identical lists for {same:.4%} of users, top-100 overlap "
            f"{overlap:.5f}; best {best[names[0]] / best[w]:.2f}x",
            flush=True,
        )
    (RUNS / f"ampcf-speed-{args.dataset}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
