"""No input kills the interpreter, none hangs (issue: release quality, part 3).

Each call that used to abort (SIGABRT on a failed allocation), panic across the boundary or hang
runs here in a subprocess with a timeout: it must raise a clear Python exception and leave a
live interpreter. Hypothesis then generates list lengths, thread counts and file types, not only
shapes."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import personae

SETUP = """
import numpy as np, scipy.sparse as sp, personae
rng = np.random.default_rng(0)
t = {
    "enc_item": rng.standard_normal((50, 8), dtype=np.float32),
    "enc_b": np.zeros(8, np.float32),
    "mu_w": rng.standard_normal((8, 4), dtype=np.float32),
    "mu_b": np.zeros(4, np.float32),
    "dec_w": rng.standard_normal((4, 8), dtype=np.float32),
    "dec_b": np.zeros(8, np.float32),
    "dec_item": rng.standard_normal((50, 8), dtype=np.float32),
    "dec_item_b": np.zeros(50, np.float32),
}
model = personae.MultVAE.from_tensors(t)
X = sp.random(100, 50, density=0.1, format="csr", random_state=0, dtype=np.float32)
rr = personae.CalibratedReranker(np.eye(50, 5, dtype=np.float32) + np.eye(50, 5, -5))
cand = np.tile(np.arange(20), (100, 1))
scores = rng.random((100, 20), dtype=np.float32)
"""


def run_isolated(call: str, timeout: float = 60) -> str:
    """Runs `call` after SETUP in a fresh interpreter; returns what it printed: the exception's
    type and message, then "alive" once the interpreter has carried on."""
    script = SETUP + textwrap.dedent(f"""
        try:
            {call}
            print("returned")
        except BaseException as e:
            print(type(e).__name__ + ": " + str(e))
        print("alive")
    """)
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    return r.stdout


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("model.recommend(X, n=2**40)", "MemoryError: recommend: 100 lists of n = 1099511627776"),
        ("model.recommend(X, n=2**61)", "MemoryError"),
        ("rr.rerank(cand, scores, history=X, n=10**9)", "MemoryError: rerank"),
        ("rr.rerank(cand, scores, history=X, n=2**40)", "MemoryError: rerank"),
        ("personae.top_n(scores, 2**40)", "MemoryError"),
        ("model.recommend(X, 5, num_threads=10_000)", "returned"),
        ("model.recommend(X, 5, num_threads=-1)", "InvalidInputError: num_threads"),
    ],
)
def test_calls_that_used_to_kill_or_hang_the_interpreter(call, expected):
    out = run_isolated(call)
    assert expected in out and out.strip().endswith("alive"), out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_a_model_directory_never_blocks(tiny_model, tmp_path):
    d = tiny_model.save(tmp_path / "m")
    w = next(d.glob("weights-*"))
    w.unlink()
    os.mkfifo(w)  # nobody ever writes to it: opening it for reading would block forever
    out = run_isolated(f"personae.load({str(d)!r})", timeout=30)
    assert "OSError" in out and "not a regular file" in out and "alive" in out, out
    (d / "manifest.json").rename(d / "m.json")
    os.mkfifo(d / "manifest.json")
    out = run_isolated(f"personae.load({str(d)!r})", timeout=30)
    assert "not a regular file" in out and "alive" in out, out


# n: small values, and values whose result cannot fit any machine (never a middle size that a
# CI machine might actually try to allocate).
lengths = st.one_of(
    st.integers(-3, 120), st.sampled_from([2**40, 2**50, 2**61, 2**63 - 1, -(2**63)])
)
threads = st.one_of(st.none(), st.integers(-3, 70), st.sampled_from([10_000, 2**62]))


@settings(max_examples=60, deadline=None)
@given(n=lengths, num_threads=threads, rows=st.integers(0, 40))
def test_any_length_and_thread_count_is_a_result_or_a_clear_error(tiny_model, n, num_threads, rows):
    x = sp.random(rows, tiny_model.n_items, density=0.05, format="csr", random_state=rows)
    try:
        ids, scores = tiny_model.recommend(x, n, num_threads=num_threads)
    except personae.InvalidInputError as e:
        assert n < 1 or (num_threads is not None and num_threads < 1), e
        return
    except MemoryError as e:
        assert n >= 2**40, e  # no machine here holds even one such list
        return
    assert ids.shape == scores.shape == (rows, n)
    k = min(n, tiny_model.n_items)
    assert (ids[:, k:] == -1).all()


@settings(max_examples=40, deadline=None)
@given(n=lengths, lam=st.sampled_from([0.0, 0.5, 1.0]))
def test_reranker_any_length(n, lam):
    rr = personae.CalibratedReranker(np.eye(6, 3) + np.eye(6, 3, -3), lam=lam)
    cand = np.array([[0, 1, 2, 3], [5, 4, -1, -1]])
    scores = np.array([[0.4, 0.3, 0.2, 0.1], [0.9, 0.8, -np.inf, -np.inf]], np.float32)
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], np.float32)
    try:
        out = rr.rerank(cand, scores, p=p, n=n)
    except personae.InvalidInputError:
        assert n < 1
        return
    except MemoryError:
        assert n >= 2**40
        return
    assert out.ids.shape == (2, n) and (out.ids[:, 4:] == -1).all()


def _make(kind: str, path):
    if kind == "file":
        path.write_bytes(b"{}")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink-to-fifo":
        os.mkfifo(path.with_suffix(".target"))
        path.symlink_to(path.with_suffix(".target"))
    elif kind == "dangling-symlink":
        path.symlink_to(path.with_suffix(".nowhere"))


kinds = ["file", "empty", "dir", "fifo", "symlink-to-fifo", "dangling-symlink", "missing"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@settings(max_examples=40, deadline=None)
@given(manifest=st.sampled_from(kinds), weights=st.sampled_from(kinds))
def test_any_file_type_in_a_model_directory_is_an_error_never_a_hang(
    tmp_path_factory, manifest, weights
):
    d = tmp_path_factory.mktemp("kinds")
    _make(weights, d / "weights.safetensors")  # the default name when a manifest names none
    _make(manifest, d / "manifest.json")
    # A FIFO that blocked would hang this test (and CI's timeout would catch it).
    with pytest.raises((OSError, personae.ModelFormatError)):
        personae.load(d)
