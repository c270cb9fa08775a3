import os
import select
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def random_csr(rng: np.random.Generator, rows: int, cols: int, density: float) -> sp.csr_matrix:
    m = sp.random(rows, cols, density=density, format="csr", random_state=rng, dtype=np.float32)
    m.data[:] = 1.0
    m.sort_indices()
    return m


def runnable_first_passes() -> list[str]:
    """The low-precision first passes of top-N this machine runs with the GEMM kernel in use
    (forcing one it cannot gives fp32)."""
    from personae import _core

    try:
        return [
            p for p in ("amx", "avx512bf16", "avx512int16", "avx2int16") if _core.first_pass(p) == p
        ]
    finally:
        _core.first_pass("best")


@pytest.fixture(scope="session")
def tiny_data():
    import personae

    return personae.synthetic(n_users=400, n_items=150, n_tastes=5, mean_items=15, seed=3)


@pytest.fixture(scope="session")
def tiny_model(tiny_data):
    """A Mult-VAE trained for a few epochs on a tiny synthetic set (shared across tests)."""
    import personae

    est = personae.MultVAE(hidden=32, latent=8, epochs=3, batch_size=100, device="cpu", seed=0)
    return est.fit(tiny_data.interactions, show_progress=False)


def run_in_terminal(argv: list[str], replies: list[str], prompt: bytes, timeout: float = 120):
    """Runs `argv` in a pseudo-terminal, as a person would, typing the next of `replies` each
    time the output ends with `prompt`. Returns ``(exit status, everything shown)``; each
    reply is marked ``<answered>`` in the text."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on the terminal
        os.execv(argv[0], argv)
    given, out, deadline = iter(replies), b"", time.time() + timeout
    try:
        while time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if out.endswith(prompt):
                reply = next(given, None)
                if reply is None:  # asked more than the test answers: fail, never hang
                    out += b"\n<no reply left>\n"
                    break
                os.write(fd, (reply + "\n").encode())
                out += b"\n<answered>\n"
    finally:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:  # still running (waiting for a reply, or past the deadline)
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    return (os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1), out.decode(errors="replace")
