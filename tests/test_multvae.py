"""Mult-VAE: the Rust path against torch and numpy on the same weights; training behaviour;
save -> load -> recommend."""

import os

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import personae
from personae.train.loop import sparse_batch
from personae.train.multvae import MultVAENet

from conftest import random_csr, runnable_first_passes
from reference import multvae_scores, multvae_top_n


def build(net: MultVAENet) -> personae.MultVAE:
    return personae.MultVAE.from_tensors(net.export())


def kernels() -> list[str]:
    """The GEMM kernels this CPU runs: the portable one everywhere, ours (AVX-512, AVX2) where
    the CPU has them (forcing one it lacks gives another)."""
    from personae import _core

    try:
        return [k for k in ("avx512", "avx2", "portable") if _core.gemm_kernel(k) == k]
    finally:
        _core.gemm_kernel("best")


def assert_lists_match_reference(ids, scores, ref_ids, ref_scores, dense, x) -> None:
    """Lists equal the float64 reference up to float32 rounding: scores agree, and an id differs
    only where its own float64 score ties the reference's at that position to rounding."""
    assert ids.shape == ref_ids.shape
    np.testing.assert_array_equal(ids == -1, ref_ids == -1)
    for u in range(ids.shape[0]):
        k = int((ref_ids[u] >= 0).sum())
        assert np.isneginf(scores[u, k:]).all()
        assert not set(x[u].indices.tolist()) & set(ids[u, :k].tolist())
        assert len(set(ids[u, :k].tolist())) == k
        tol = 1e-5 * np.maximum(1.0, np.abs(ref_scores[u, :k]))
        np.testing.assert_array_less(np.abs(scores[u, :k] - ref_scores[u, :k]), tol)
        np.testing.assert_array_less(np.abs(dense[u, ids[u, :k]] - ref_scores[u, :k]), 2 * tol)


def noisy_net(n_items: int, hidden: int, latent: int) -> MultVAENet:
    net = MultVAENet(n_items, hidden, latent).eval()
    with torch.no_grad():  # larger biases than the init so scores are not all near zero
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return net


@pytest.mark.parametrize("kernel", kernels())
@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 500),
    st.sampled_from([1, 2, 15, 16, 17, 33, 48, 49, 100]),
    st.integers(1, 8),
    st.integers(0, 40),
    st.integers(1, 120),
)
def test_top_n_equals_numpy_on_each_gemm_kernel(kernel, seed, n_items, hidden, latent, users, n):
    # Shapes cross the AVX-512 kernel's edges: 16-float vectors, 48-item panels, 8-user panels,
    # 384-item packed blocks; both kernels must give the reference's lists.
    from personae import _core

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = noisy_net(n_items, hidden, latent)
    x = random_csr(rng, users, n_items, 0.05)
    try:
        assert _core.gemm_kernel(kernel) == kernel
        ids, scores = build(net).recommend(x, n, num_threads=2)
    finally:
        _core.gemm_kernel("best")
    ref_ids, ref_scores, dense = multvae_top_n(net.export(), x, n)
    assert_lists_match_reference(ids, scores, ref_ids, ref_scores, dense, x)


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("hidden", [600, 700])
def test_top_n_equals_numpy_at_gowalla_width(kernel, hidden):
    # The served shape: 600 hidden (700 needs two k blocks of the AVX-512 kernel), past one
    # 256-user chunk and one 2,048-item tile, a partial last user panel.
    from personae import _core

    torch.manual_seed(hidden)
    rng = np.random.default_rng(hidden)
    net = noisy_net(2048 + 75, hidden, 20)
    x = random_csr(rng, 256 + 13, 2048 + 75, 0.01)
    try:
        assert _core.gemm_kernel(kernel) == kernel
        ids, scores = build(net).recommend(x, 100, num_threads=2)
    finally:
        _core.gemm_kernel("best")
    ref_ids, ref_scores, dense = multvae_top_n(net.export(), x, 100)
    assert_lists_match_reference(ids, scores, ref_ids, ref_scores, dense, x)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 60),
    st.integers(1, 16),
    st.integers(1, 8),
    st.integers(0, 20),
    st.integers(1, 70),
)
def test_rust_equals_torch_and_numpy(seed, n_items, hidden, latent, users, n):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = MultVAENet(n_items, hidden, latent).eval()
    with torch.no_grad():  # larger biases than the init so scores are not all near zero
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = random_csr(rng, users, n_items, 0.2)
    if users:
        x.data[:] = rng.integers(1, 4, size=x.nnz)  # counts, not just ones
    model = build(net)
    got = model.score(x)
    assert got.shape == (users, n_items)
    if users:
        with torch.no_grad():
            want_t = net.scores(sparse_batch(x, np.arange(users), torch.device("cpu"))).numpy()
        np.testing.assert_allclose(got, want_t, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got, multvae_scores(net.export(), x), rtol=1e-4, atol=1e-5)
    ids, scores = model.recommend(x, n)
    assert ids.shape == scores.shape == (users, n)
    for u in range(users):
        seen = set(x[u].indices.tolist())
        k = min(n, n_items - len(seen))
        assert (ids[u, k:] == -1).all() and np.isneginf(scores[u, k:]).all()
        assert not seen & set(ids[u, :k].tolist())
        # Same as masking then a full sort: ids agree except inside runs of tied scores.
        masked = got[u].astype(np.float64).copy()
        masked[list(seen)] = -np.inf
        order = np.lexsort((np.arange(n_items), -masked))[:k]
        np.testing.assert_allclose(scores[u, :k], masked[order], rtol=1e-6, atol=1e-6)
        differ = ids[u, :k] != order
        if differ.any():
            gaps = np.abs(scores[u, :k][differ] - masked[ids[u, :k][differ]])
            assert (gaps <= 1e-5).all()


def test_load_tensors_inverts_export():
    # A fitted model's tensors put back into a fresh network give the same network.
    torch.manual_seed(2)
    net = noisy_net(40, 12, 5)
    model = build(net)
    torch.manual_seed(3)
    back = MultVAENet(40, 12, 5).load_tensors(model.tensors())
    want = net.export()
    for name, got in back.export().items():
        np.testing.assert_array_equal(got, want[name], err_msg=name)


def test_recommend_agrees_with_torch_topk(tiny_data):
    torch.manual_seed(1)
    m = tiny_data.interactions.matrix
    net = MultVAENet(m.shape[1], 24, 6).eval()
    model = build(net)
    with torch.no_grad():
        s = net.scores(sparse_batch(m, np.arange(m.shape[0]), torch.device("cpu")))
        b = sparse_batch(m, np.arange(m.shape[0]), torch.device("cpu"))
        s[b.rows, b.indices] = -np.inf
        want = torch.topk(s, 10, dim=1).indices.numpy()
    ids, _ = model.recommend(m, 10)
    agree = (ids == want).mean()
    assert agree > 0.99  # differences only where float32 scores tie


def test_elbo_decreases_and_seeded_runs_repeat(tiny_data):
    def fit():
        est = personae.MultVAE(hidden=32, latent=8, epochs=6, batch_size=50, device="cpu", seed=5)
        return est.fit(tiny_data.interactions, show_progress=False)

    a, b = fit(), fit()
    losses = [h["loss"] for h in a.history]
    # The negative ELBO falls at (nearly) every epoch, not just overall.
    assert losses[-1] < losses[0], losses
    assert (np.diff(losses) < 0).sum() >= len(losses) - 2, losses
    assert a.to_bytes()[1] == b.to_bytes()[1]  # bit-identical weights
    assert a.manifest["weights_sha256"] == b.manifest["weights_sha256"]


def test_early_stopping_keeps_best(tiny_data):
    tr, va = personae.holdout_split(tiny_data.interactions, 0.2, seed=0)
    est = personae.MultVAE(
        hidden=32, latent=8, epochs=8, batch_size=100, patience=2, device="cpu", eval_k=10
    )
    est.fit(tr, validation=(tr, va), show_progress=False)
    vals = [h["val_ndcg"] for h in est.history]
    best = est.manifest["training"]["best_epoch"]
    assert vals[best] == max(vals)
    assert len(vals) <= 8


def test_save_load_round_trip(tiny_model, tiny_data, tmp_path):
    x = tiny_data.interactions
    path = tiny_model.save(tmp_path / "m")
    loaded = personae.load(path)
    assert loaded.kind == "multvae" and loaded.n_items == x.n_items
    np.testing.assert_array_equal(loaded.item_ids, x.item_ids)
    a = tiny_model.recommend(x, 15)
    b = loaded.recommend(x, 15)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    files = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    assert files[0] == "manifest.json" and files[1].startswith("weights-") and len(files) == 2
    # Saving the same model again leaves the same two files.
    tiny_model.save(path)
    assert len([p for p in path.iterdir() if not p.name.startswith(".")]) == 2
    # The implicit-style load classmethod, and the family check.
    assert isinstance(personae.MultVAE.load(path), personae.MultVAE)
    with pytest.raises(personae.ModelFormatError, match="not a AMPCF"):
        personae.AMPCF.load(path)


def test_new_users_and_filters(tiny_model):
    n = tiny_model.n_items
    new = sp.csr_matrix((np.ones(3, np.float32), ([0, 0, 1], [1, 2, 3])), shape=(3, n))
    ids, scores = tiny_model.recommend(new, 5, exclude_items=[0, 4])
    assert ids.shape == (3, 5)
    assert not np.isin(ids, [0, 4]).any()
    assert not {1, 2} & set(ids[0].tolist())
    ids2, _ = tiny_model.recommend(new, 5, exclude_seen=False, num_threads=1)
    assert ids2.shape == (3, 5)


def test_cuda_request_without_cuda_is_clear(tiny_data):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the CPU-only error path cannot occur")
    with pytest.raises(ValueError, match="CUDA is not available"):
        personae.MultVAE(hidden=8, latent=4, epochs=1, device="cuda").fit(
            tiny_data.interactions, show_progress=False
        )


def test_time_budget_stops_training(tiny_data):
    est = personae.MultVAE(
        hidden=16, latent=4, epochs=10_000, batch_size=100, device="cpu", max_seconds=0.5
    )
    est.fit(tiny_data.interactions, show_progress=False)
    assert 1 <= len(est.history) < 10_000
    assert est.manifest["training"]["epochs_run"] == len(est.history)


def test_dense_scores_cross_tile_and_chunk_boundaries():
    # More items than one 2,048-item tile and more users than one 256-user chunk: the tiled
    # dense scores must equal the numpy forward pass everywhere, boundaries included.
    rng = np.random.default_rng(5)
    net = MultVAENet(2048 + 37, 6, 3).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = random_csr(rng, 256 + 5, 2048 + 37, 0.01)
    got = build(net).score(x, num_threads=2)
    np.testing.assert_allclose(got, multvae_scores(net.export(), x), rtol=1e-4, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(8, 3000),
    st.sampled_from([1, 16, 31, 33, 64, 100]),
    st.integers(0, 300),
    st.integers(1, 40),
    st.booleans(),
    st.booleans(),
)
@pytest.mark.parametrize("first", ["amx", "avx512bf16", "avx512int16", "avx2int16"])
def test_certified_first_pass_equals_fp32(first, seed, n_items, hidden, users, n, ties, exclude):
    # Where a low-precision kernel runs (bf16 on AMX tiles or AVX-512 vdpbf16ps, int16 on AVX-512
    # vpdpwssd or AVX2 vpmaddwd), top-N scores every item in low precision, keeps the items whose
    # certified upper bound reaches the n-th best lower bound and rescores those in fp32: the lists
    # must be the fp32 path's, ties (duplicated items) and filters included. Elsewhere the pass is
    # the fp32 path, which test_top_n_equals_numpy_on_each_gemm_kernel pins; comparing it with
    # itself could not fail, so there is nothing to run.
    from personae import _core

    if first not in runnable_first_passes():
        pytest.skip(f"no {first} first pass on this CPU")

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = noisy_net(n_items, hidden, 4)
    if ties:  # a block of items copies one item's weights and bias
        src, dup = int(rng.integers(n_items)), rng.choice(n_items, min(10, n_items), replace=False)
        with torch.no_grad():
            net.out.weight[dup] = net.out.weight[src].clone()
            net.out.bias[dup] = net.out.bias[src].clone()
    x = random_csr(rng, users, n_items, 0.05)
    kw = {"exclude_items": rng.choice(n_items, n_items // 5, replace=False)} if exclude else {}
    model = build(net)
    # n past the catalogue too: the path then falls back to fp32 (every item survives).
    for n_ in (n, n_items + 3):
        try:
            assert _core.first_pass("fp32") == "fp32"
            want_ids, want = model.recommend(x, n_, num_threads=2, **kw)
            assert _core.first_pass(first) == first
            got_ids, got = model.recommend(x, n_, num_threads=2, **kw)
        finally:
            _core.first_pass("best")
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        np.testing.assert_allclose(got[~np.isneginf(got)], want[~np.isneginf(want)], rtol=1e-5)


def test_first_pass_switch():
    from personae import _core

    passes = ("amx", "avx512bf16", "avx512int16", "avx2int16")
    assert _core.first_pass() in (*passes, "fp32")
    with pytest.raises(ValueError, match="avx512bf16"):
        _core.first_pass("int8")
    assert _core.first_pass("fp32") == "fp32"
    assert _core.first_pass() == "fp32"
    _core.gemm_kernel("best")  # the CPU's best kernel, whatever PERSONAE_GEMM chose at start
    # "best" with the AVX-512 kernel is AMX where the CPU and OS allow it, else vdpbf16ps where
    # the CPU has it, else int16 on AVX-512 VNNI, else fp32; with our AVX2 kernel the AVX2 int16
    # pass; fp32 on the gemm crate's.
    best = _core.first_pass("best")
    flags = open("/proc/cpuinfo").read()
    words = set(flags.split())
    if _core.gemm_kernel() == "portable":
        assert best == "fp32"
    elif _core.gemm_kernel() == "avx2":
        assert best == "avx2int16"
    elif "amx_bf16" in words:  # the OS may not grant the tile state
        assert best in ("amx", "avx512bf16")
    elif "avx512_bf16" in words:
        assert best == "avx512bf16"
    elif "avx512_vnni" in words:
        assert best == "avx512int16"
    else:  # AVX-512 without BF16 or VNNI (Skylake-SP): the fp32 path
        assert best == "fp32"
    assert set(runnable_first_passes()) <= set(passes)
    if "avx2" in words:
        # Our AVX2 kernel, wherever it runs, brings the int16 pass as the best.
        assert _core.gemm_kernel("avx2") == "avx2"
        try:
            assert _core.first_pass("best") == "avx2int16"
        finally:
            _core.gemm_kernel("best")
            _core.first_pass("best")
        assert _core.first_pass() == best
    _core.gemm_kernel("portable")
    try:
        assert _core.first_pass() == "fp32"  # rescoring needs our kernels' order
    finally:
        _core.gemm_kernel("best")
    assert _core.first_pass() == best


def test_first_pass_from_the_environment():
    # PERSONAE_FIRST_PASS names the pass a process starts with: a pass this CPU runs is taken,
    # one it cannot run falls back to fp32, an unknown name leaves the best one (with a warning).
    # The child reports what it runs and its best pass itself, under its own GEMM kernel.
    import subprocess
    import sys

    child = (
        "from personae import _core\n"
        "start = _core.first_pass()\n"
        "names = ('amx', 'avx512bf16', 'avx512int16', 'avx2int16')\n"
        "runnable = [p for p in names if _core.first_pass(p) == p]\n"
        "print(start, _core.first_pass('best'), ','.join(runnable) or '-')\n"
    )

    def started(value: str) -> tuple[str, str, list[str], str]:
        env = {**os.environ, "PERSONAE_FIRST_PASS": value}
        out = subprocess.run(
            [sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        start, best, runnable = out.stdout.split()
        return start, best, runnable.split(","), out.stderr

    start, _, _, err = started("fp32")
    assert start == "fp32" and err == ""
    start, best, _, err = started("no-such-pass")
    assert start == best and "no-such-pass" in err
    for name in ("amx", "avx512bf16", "avx512int16", "avx2int16"):
        start, _, runnable, _ = started(name)
        assert start == (name if name in runnable else "fp32"), name


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"epochs": -1}, "epochs must be >= 1"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"eval_k": 0}, "eval_k must be >= 1"),
        ({"hidden": 0}, "hidden must be >= 1"),
        ({"latent": -3}, "latent must be >= 1"),
        ({"total_anneal_steps": -1}, "total_anneal_steps must be >= 0"),
        ({"patience": -1}, "patience must be >= 0"),
        ({"lr": 0.0}, "lr must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"weight_decay": -1.0}, "weight_decay must be"),
        ({"anneal_cap": float("inf")}, "anneal_cap must be"),
        ({"max_seconds": 0.0}, "max_seconds must be"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_bad_settings_fail_at_construction(setting, message):
    # before, epochs <= 0 returned an untrained network from fit and hidden = 0 crashed in torch
    with pytest.raises(ValueError, match=message):
        personae.MultVAE(**setting)
