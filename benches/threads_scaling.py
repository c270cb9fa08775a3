"""Does releasing the GIL pay? One loaded model, the same batches, scored from one Python
thread vs two Python threads (each call uses one Rust thread), top-100.

Usage: python benches/threads_scaling.py [--items 20000] [--users 8000]
Target: two threads on two cores reach >= 1.6x the throughput of one.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import scipy.sparse as sp

import personae

from _common import parser, write_result


def random_model(items: int, hidden: int, latent: int, seed: int = 0) -> personae.Model:
    rng = np.random.default_rng(seed)
    t = {
        "enc_item": rng.standard_normal((items, hidden)) * 0.05,
        "enc_b": np.zeros(hidden),
        "mu_w": rng.standard_normal((hidden, latent)) * 0.05,
        "mu_b": np.zeros(latent),
        "dec_w": rng.standard_normal((latent, hidden)) * 0.05,
        "dec_b": np.zeros(hidden),
        "dec_item": rng.standard_normal((items, hidden)) * 0.05,
        "dec_item_b": np.zeros(items),
    }
    return personae.MultVAE.from_tensors(t)


def random_users(users: int, items: int, per_user: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(
        users, items, density=per_user / items, format="csr", random_state=rng, dtype=np.float32
    )
    m.data[:] = 1
    return m


def main() -> None:
    a = parser(__doc__, items=20000, users=8000, hidden=600, batch=500).parse_args()
    model = random_model(a.items, a.hidden, 200)
    x = random_users(a.users, a.items, 30, 1)
    batches = [x[s : s + a.batch] for s in range(0, a.users, a.batch)]
    model.recommend(batches[0], 100, num_threads=1)  # warm-up

    def run(part):
        for b in part:
            model.recommend(b, 100, num_threads=1)

    t = time.perf_counter()
    run(batches)
    one = time.perf_counter() - t
    halves = [batches[0::2], batches[1::2]]
    threads = [threading.Thread(target=run, args=(h,)) for h in halves]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    two = time.perf_counter() - t
    write_result(
        "threads-scaling",
        {
            "command": f"python benches/threads_scaling.py --items {a.items} --users {a.users}",
            "one_thread_users_per_s": a.users / one,
            "two_threads_users_per_s": a.users / two,
            "scaling": one / two,
        },
    )


if __name__ == "__main__":
    main()
