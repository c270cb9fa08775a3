"""Top-100 for every Gowalla user: personae's fused Rust path vs the same Mult-VAE in PyTorch
(CPU, batched, seen items masked, torch.topk), vs faiss-cpu (``IndexFlatIP`` over the decoder's
item vectors with the bias as an extra dimension, queried with the same torch encoder's hidden
states, over-fetching by the longest history, then masking seen items), vs implicit's ALS
``recommend`` for all users (a different, 64-factor model: for scale only).

Usage: python benches/multvae_speed.py [--model runs/gowalla-multvae] [--threads 2] [--users N]

Every contender gets the same number of threads. The Mult-VAE weights come from --model when it
exists (else a randomly initialised model of the same shape: speed does not depend on values).
Contenders run interleaved, round by round (``--repeat`` rounds, best wall and best CPU
time of each: the machine is shared). Where a certified low-precision first pass (bf16 on AMX
tiles or AVX-512 ``vdpbf16ps``, int16 on AVX2) is the default, the Rust path also runs with the
plain fp32 first pass, and where one of personae's GEMM kernels (AVX-512, AVX2) is the default,
on the portable ``gemm`` crate kernel, each as a row of its own. Also reports the
decoder's achieved GFLOP/s against this machine's measured SGEMM peak (numpy ``a @ b`` on
4096 x 4096 float32).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _common import RUNS, best_of, cpu, gowalla, write_result


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(f) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    t, c = time.perf_counter(), cpu_seconds()
    f()
    return time.perf_counter() - t, cpu_seconds() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(RUNS / "gowalla-multvae"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--torch-batch", type=int, default=1024)
    ap.add_argument("--users", type=int, default=0, help="the first N users only (0: all)")
    a = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    import torch

    import personae
    from personae.train.loop import sparse_batch
    from personae.train.multvae import MultVAENet

    torch.set_num_threads(a.threads)
    train, _ = gowalla()
    x = train.matrix[: a.users] if a.users else train.matrix
    users, items = x.shape
    net = MultVAENet(items).eval()
    if (Path(a.model) / "manifest.json").exists():
        model = personae.load(a.model)
        net.load_tensors(model.tensors())
        source = a.model
    else:
        model = personae.MultVAE.from_tensors(net.export())
        source = "random init"

    def rust():
        return model.recommend(x, a.n, num_threads=a.threads)

    @torch.no_grad()
    def batched(top):
        """``top(rows, batch)`` -> the rows' top-n ids, over every user batch by batch."""
        out = np.empty((users, a.n), dtype=np.int64)
        for s in range(0, users, a.torch_batch):
            rows = np.arange(s, min(s + a.torch_batch, users))
            out[rows] = top(rows, sparse_batch(x, rows, torch.device("cpu")))
        return out

    def torch_top(rows, b):
        scores = net.scores(b)
        scores[b.rows, b.indices] = -torch.inf
        return torch.topk(scores, a.n, dim=1).indices.numpy()

    try:
        import faiss
    except ImportError:  # an optional peer: the bench runs without it
        faiss = None
        print("faiss-cpu is not installed: its row is skipped (pip install faiss-cpu)")
    tensors = model._core.tensors()
    item_vecs = np.hstack([tensors["dec_item"], tensors["dec_item_b"][:, None]])
    longest = int(np.diff(x.indptr).max())
    seen_keys = np.repeat(np.arange(users, dtype=np.int64), np.diff(x.indptr)) * items + x.indices

    def faiss_top(rows, b):
        h = torch.tanh(net.dec(net.encode(b)[0])).numpy()
        q = np.hstack([h, np.ones((len(rows), 1), dtype=np.float32)])
        _, found = index.search(q, a.n + longest)
        seen = np.isin(rows[:, None] * items + found, seen_keys)
        first = np.argsort(seen, axis=1, kind="stable")[:, : a.n]  # unseen, in score order
        return np.take_along_axis(found, first, 1)

    def torch_path():
        return batched(torch_top)

    def faiss_path():
        return batched(faiss_top)

    from personae import _core

    kernel = _core.gemm_kernel()

    first_pass = _core.first_pass()

    def rust_fp32():
        # The same path with the plain fp32 first pass (only timed where a certified pass is
        # the one in use); the pass in use (PERSONAE_FIRST_PASS's, say) is restored after.
        _core.first_pass("fp32")
        try:
            return rust()
        finally:
            _core.first_pass(first_pass)

    def rust_portable():
        # The same path on the gemm crate's kernels (only timed where one of ours is in use);
        # the kernel and the pass in use are restored after.
        _core.gemm_kernel("portable")
        try:
            return rust()
        finally:
            _core.gemm_kernel(kernel)
            _core.first_pass(first_pass)

    ids_rust, scores_rust = rust()
    ids_torch = torch_path()
    agree = float((ids_rust == ids_torch).mean())
    same_as_fp32 = None
    if first_pass != "fp32":
        ids_fp32, scores_fp32 = rust_fp32()
        same_as_fp32 = bool(
            (ids_fp32 == ids_rust).all()
            and (scores_fp32.view(np.uint32) == scores_rust.view(np.uint32)).all()
        )
    # Contenders interleaved round by round, each keeping its best wall and CPU time: other
    # work on a shared machine only ever slows a run down, and it hits every contender alike.
    contenders = {"rust": rust, "torch": torch_path}
    if first_pass != "fp32":
        contenders["rust_fp32"] = rust_fp32
    if kernel != "portable":
        contenders["rust_portable"] = rust_portable
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    for _ in range(a.repeat):
        for name, f in contenders.items():
            wall, cpu_s = timed(f)
            best[name] = min(best.get(name, float("inf")), wall)
            best_cpu[name] = min(best_cpu.get(name, float("inf")), cpu_s)
    # Every "rust" round ran the kernel and pass the report names.
    assert (_core.gemm_kernel(), _core.first_pass()) == (kernel, first_pass)
    for name in contenders:
        print(f"{name}: {best[name]:.2f} s wall, {best_cpu[name]:.2f} CPU s (best of {a.repeat})")
    t_rust, t_torch = best["rust"], best["torch"]
    t_faiss = agree_faiss = None
    if faiss is not None:
        faiss.omp_set_num_threads(a.threads)
        index = faiss.IndexFlatIP(item_vecs.shape[1])
        index.add(np.ascontiguousarray(item_vecs, dtype=np.float32))
        agree_faiss = float((ids_rust == faiss_path()).mean())
        t_faiss = best_of(faiss_path, a.repeat)

    from threadpoolctl import threadpool_limits

    try:
        import implicit
    except ImportError:
        implicit = None
        print("implicit is not installed: the ALS row is skipped (pip install implicit)")
    t_als = None
    if implicit is not None:
        with threadpool_limits(1, "blas"):
            als = implicit.cpu.als.AlternatingLeastSquares(
                factors=64, iterations=3, num_threads=a.threads, random_state=0
            )
            als.fit(x, show_progress=False)
            all_users = np.arange(users)
            t_als = best_of(lambda: als.recommend(all_users, x, N=a.n), a.repeat)

    hidden = net.hidden
    flops = 2.0 * users * items * hidden
    t_fp32 = best.get("rust_fp32", t_rust)
    m = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
    from threadpoolctl import threadpool_limits as tl

    with tl(a.threads, "blas"):
        m @ m
        peak = 2 * 4096**3 / best_of(lambda: m @ m, 3) / 1e9
    res = {
        "command": "python benches/multvae_speed.py "
        + f"--threads {a.threads}"
        + (f" --users {a.users}" if a.users else ""),
        "weights": source,
        "users": users,
        "items": items,
        "n": a.n,
        "threads": a.threads,
        "cpu": cpu(),
        "gemm_kernel": kernel,
        "first_pass": first_pass,
        "load_average_at_end": os.getloadavg(),
        "rust_s": t_rust,
        "rust_fp32_first_pass_s": best.get("rust_fp32"),
        "rust_portable_gemm_s": best.get("rust_portable"),
        "torch_s": t_torch,
        "cpu_s": best_cpu,
        "speedup_vs_torch_cpu_s": best_cpu["torch"] / best_cpu["rust"],
        "lists_and_scores_equal_to_fp32_first_pass": same_as_fp32,
        "faiss_s": t_faiss,
        "implicit_als_s": t_als,
        "rust_users_per_s": users / t_rust,
        "torch_users_per_s": users / t_torch,
        "faiss_users_per_s": None if t_faiss is None else users / t_faiss,
        "speedup_vs_faiss": None if t_faiss is None else t_faiss / t_rust,
        "ids_equal_to_faiss": agree_faiss,
        "implicit_als_users_per_s": None if t_als is None else users / t_als,
        "speedup_vs_torch": t_torch / t_rust,
        "speedup_vs_implicit_als": None if t_als is None else t_als / t_rust,
        "ids_equal_to_torch": agree,
        # The fp32 decoder's rate (its whole path's time, so a lower bound), and the default
        # path's equivalent fp32 rate (above the SGEMM peak when a bf16 pass does the work).
        "decoder_gflops": flops / t_fp32 / 1e9,
        "sgemm_peak_gflops": peak,
        "share_of_peak": flops / t_fp32 / 1e9 / peak,
        "default_path_equivalent_gflops": flops / t_rust / 1e9,
    }
    print(
        f"first pass {first_pass}, GEMM kernel {kernel}: {res['speedup_vs_torch']:.2f}x torch; "
        f"fp32 decoder {res['decoder_gflops']:.0f} GFLOP/s = {res['share_of_peak']:.0%} of the "
        f"{peak:.0f} GFLOP/s SGEMM peak (numpy)"
    )
    write_result("multvae-speed", res)


if __name__ == "__main__":
    main()
