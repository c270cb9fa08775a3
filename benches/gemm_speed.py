"""GFLOP/s of personae's GEMM on the Mult-VAE decoder's shapes, next to numpy's, one thread.

Usage: python benches/gemm_speed.py [--repeat 20] [--rounds 5]

Each shape is ``users x hidden`` hidden states times an ``items x hidden`` block of item-major
decoder weights transposed (``gemm::a_bt``, the call the fused top-N makes per tile): the full
user chunk (256), the last Gowalla chunk (162) and a small one, 600 hidden, a 2,048-item tile.
Contenders (personae's AVX-512 and AVX2 kernels when the CPU has them, its portable path
through the ``gemm`` crate, and numpy ``a @ bt.T`` on its BLAS) run interleaved, ``--rounds``
times, and each reports its best of ``--repeat`` calls over all rounds, since other work on a shared
machine only ever slows a call down. The single-thread SGEMM peak numpy reaches on 4096 x 4096
is printed as the yardstick.
"""

from __future__ import annotations

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

from _common import best_of, cpu, write_result

SHAPES = [(256, 2048, 600), (162, 2048, 600), (64, 2048, 600)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    from personae import _core

    # Every kernel this CPU runs (forcing one it lacks gives another).
    kernels = [k for k in ("avx512", "avx2", "portable") if _core.gemm_kernel(k) == k]
    _core.gemm_kernel("best")
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(1, "blas"):
        big = rng.standard_normal((4096, 4096)).astype(np.float32)
        big @ big
        peak = 2 * 4096**3 / min(best_of(lambda: big @ big, 2) for _ in range(a.rounds)) / 1e9
        for m, n, k in SHAPES:
            x = rng.standard_normal((m, k)).astype(np.float32)
            w = rng.standard_normal((n, k)).astype(np.float32)
            want = x.astype(np.float64) @ w.T.astype(np.float64)
            times: dict[str, float] = {}
            for _ in range(a.rounds):
                for kern in kernels:
                    _core.gemm_kernel(kern)
                    got = _core.gemm_a_bt(x, w)
                    assert np.abs(got - want).max() < 1e-3
                    t = best_of(lambda x=x, w=w: _core.gemm_a_bt(x, w), a.repeat)
                    times[kern] = min(times.get(kern, np.inf), t)
                t = best_of(lambda x=x, w=w: x @ w.T, a.repeat)
                times["numpy"] = min(times.get("numpy", np.inf), t)
            flops = 2.0 * m * n * k
            row = {"m": m, "n": n, "k": k}
            row.update({f"{c}_gflops": flops / t / 1e9 for c, t in times.items()})
            rows.append(row)
            print(
                f"m={m} n={n} k={k}: "
                + ", ".join(f"{c} {flops / t / 1e9:.1f}" for c, t in times.items())
                + f" GFLOP/s (numpy 4096^3 peak {peak:.1f})"
            )
    _core.gemm_kernel("best")
    write_result(
        "gemm-speed",
        {
            "command": "python benches/gemm_speed.py",
            "cpu": cpu(),
            "threads": 1,
            "numpy_sgemm_peak_gflops": peak,
            "shapes": rows,
        },
    )


if __name__ == "__main__":
    main()
