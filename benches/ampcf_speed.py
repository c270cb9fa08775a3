"""AMP-CF serving speed: personae's fused Rust top-N against a batched PyTorch forward pass of
the same model, which materialises the ``batch x K x items`` votes and attention.

The model is ``personae.AMPCF()`` fitted with its defaults on the dataset (ML-latest-small by
default; Gowalla uses the graph filter with sparse votes). Every user is scored from their
training rows, top-100 with their training items masked. Both sides get the same threads; the
PyTorch side takes each history item's persona from the Rust core (``personas``, timed with
it) and does the rest (votes, low-rank part, attention, mixing, masking, top-k) in batches.
Each side runs in its own subprocess so that its peak memory is measured cleanly ("peak extra":
growth of the process's peak RSS while scoring).

    python benches/ampcf_speed.py                       # ML-latest-small
    python benches/ampcf_speed.py --dataset gowalla --users 5000
"""

from __future__ import annotations

import argparse
import json
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


def fit(args) -> dict:
    import personae

    X = rows_of(args)
    t = time.perf_counter()
    model = personae.AMPCF().fit(X, show_progress=False)
    secs = time.perf_counter() - t
    model.save(MODEL_DIR / args.dataset)
    return {"fit_seconds": secs}


def run_rust(args) -> dict:
    import personae

    X = rows_of(args)
    model = personae.load(MODEL_DIR / args.dataset)
    model.recommend(X[:200], 100, num_threads=args.threads)  # warm-up
    base = peak_mib()
    t0 = time.perf_counter()
    ids, _ = model.recommend(X, 100, num_threads=args.threads)
    secs = time.perf_counter() - t0
    np.save(MODEL_DIR / "rust.npy", ids[:1000])
    return {"seconds": secs, "users": X.shape[0], "peak_extra_mib": peak_mib() - base}


def run_torch(args) -> dict:
    import scipy.sparse as sp
    import torch

    import personae

    torch.set_num_threads(args.threads)
    X = rows_of(args)
    model = personae.load(MODEL_DIR / args.dataset)
    t = {k: np.asarray(v) for k, v in model.tensors().items()}
    p = model.params
    K, tau, mix, delta, gamma = (p[k] for k in ("n_personas", "tau", "mix", "delta", "gamma"))
    n = X.shape[1]
    if "votes" in t:
        S = torch.from_numpy(t["votes"])
        sparse_votes = False
    else:
        S = torch.sparse_csr_tensor(
            torch.from_numpy(t["votes_indptr"]),
            torch.from_numpy(t["votes_indices"].astype(np.int64)),
            torch.from_numpy(t["votes_data"]),
            size=(n, n),
        )
        sparse_votes = True
    L = torch.from_numpy(t["low_left"]) if "low_left" in t else None
    R = torch.from_numpy(t["low_right"]) if "low_right" in t else None
    Z = torch.from_numpy(t["item_space"])
    ids = np.empty((X.shape[0], 100), np.int64)

    @torch.no_grad()
    def batch(rows: sp.csr_matrix) -> np.ndarray:
        b = rows.shape[0]
        per = model.personas(rows)  # the persona of each history entry (Rust)
        r = np.repeat(np.arange(b), np.diff(rows.indptr))
        split = sp.csr_matrix(
            (rows.data, (r * K + per["entry"], rows.indices)), shape=(b * K, n), dtype=np.float32
        )
        xs = torch.from_numpy(split.toarray())
        if sparse_votes:
            votes = torch.from_numpy(
                (split @ sp.csr_matrix((t["votes_data"], t["votes_indices"], t["votes_indptr"])))
                .toarray()
                .astype(np.float32)
            )
        else:
            votes = xs @ S
        if L is not None:
            votes += (xs @ L) @ R.T
        votes = votes.view(b, K, n)
        e = torch.nn.functional.normalize(xs @ Z, dim=1).view(b, K, -1)
        share = torch.from_numpy(per["share"])  # [b, K], 0 for absent personas
        logits = torch.einsum("bka,ia->bki", e, Z) / tau + delta * torch.log(
            share.clamp_min(1e-30)
        ).unsqueeze(2)
        logits = logits.masked_fill((share == 0).unsqueeze(2), -torch.inf)
        att = torch.softmax(logits, dim=1).nan_to_num(0.0)
        weight = torch.where(share > 0, share.clamp_min(1e-30) ** -gamma, 0.0).unsqueeze(2)
        total = votes.sum(1)
        s = (1 - mix) * total + mix * (att * weight * votes).sum(1)
        single = (share > 0).sum(1) <= 1
        s[single] = total[single]
        s[torch.from_numpy(r), torch.from_numpy(rows.indices.astype(np.int64))] = -torch.inf
        return torch.topk(s, 100, dim=1).indices.numpy()

    batch(X[:16])  # warm-up
    base = peak_mib()
    t0 = time.perf_counter()
    for s in range(0, X.shape[0], args.batch):
        ids[s : s + args.batch] = batch(X[s : s + args.batch])
    secs = time.perf_counter() - t0
    np.save(MODEL_DIR / "torch.npy", ids[:1000])
    return {"seconds": secs, "users": X.shape[0], "peak_extra_mib": peak_mib() - base}


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
    ap.add_argument("--which", choices=["fit", "rust", "torch"], default=None)
    args = ap.parse_args()
    if args.which:
        run = {"fit": fit, "rust": run_rust, "torch": run_torch}[args.which]
        print(json.dumps(run(args)))
        return
    out = {"command": "python benches/ampcf_speed.py " + " ".join(sys.argv[1:]), "cpu": cpu()}
    for which in ("fit", "rust", "torch"):
        cmd = [sys.executable, __file__, "--which", which] + sys.argv[1:]
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[which] = json.loads(r.stdout.strip().splitlines()[-1])
    for which in ("rust", "torch"):
        o = out[which]
        o["users_per_second"] = o["users"] / o["seconds"]
        print(
            f"{which:5s}: {o['seconds']:.2f} s  {o['users_per_second']:.0f} users/s  "
            f"peak extra {o['peak_extra_mib']:.0f} MiB"
        )
    a, b = np.load(MODEL_DIR / "rust.npy"), np.load(MODEL_DIR / "torch.npy")
    out["top100_overlap"] = float(
        np.mean([len(set(x) & set(y)) / 100 for x, y in zip(a, b, strict=True)])
    )
    out["speedup"] = out["torch"]["seconds"] / out["rust"]["seconds"]
    print(
        f"fit {out['fit']['fit_seconds']:.1f} s; Rust {out['speedup']:.2f}x PyTorch "
        f"(batch {args.batch}, {args.threads} threads); top-100 overlap on the first 1,000 "
        f"users {out['top100_overlap']:.4f}"
    )
    (RUNS / f"ampcf-speed-{args.dataset}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
