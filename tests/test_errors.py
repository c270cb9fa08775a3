"""Bad input raises a clear exception naming the problem; nothing crashes the interpreter."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import personae
from personae import ModelFormatError, _core


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory):
    return tiny_model.save(tmp_path_factory.mktemp("m") / "model")


def test_user_items_type_shape_and_values(tiny_model):
    model = tiny_model.model
    n = model.n_items
    with pytest.raises(TypeError, match="user_items must be a scipy.sparse"):
        model.recommend(np.zeros((2, n)))
    with pytest.raises(ValueError, match=f"has {n + 1} columns but the model has {n} items"):
        model.recommend(sp.csr_matrix((2, n + 1)))
    nan = sp.csr_matrix((np.array([np.nan], np.float32), ([0], [1])), shape=(1, n))
    with pytest.raises(ValueError, match="user_items: data must be finite"):
        model.recommend(nan)
    unsorted = sp.csr_matrix(
        (np.ones(2, np.float32), np.array([3, 1]), np.array([0, 2])), shape=(1, n)
    )
    unsorted.has_sorted_indices = False
    with pytest.raises(ValueError, match="unsorted or duplicate"):
        model.recommend(unsorted)
    for bad_n in (0, -3):
        with pytest.raises(ValueError, match="n must be positive"):
            model.recommend(sp.csr_matrix((1, n)), bad_n)
    with pytest.raises(TypeError, match="n must be an integer"):
        model.recommend(sp.csr_matrix((1, n)), 2.5)
    with pytest.raises(ValueError, match="exclude_items: item indices"):
        model.recommend(sp.csr_matrix((1, n)), 3, exclude_items=[n])
    with pytest.raises(TypeError, match="exclude_items must hold integer"):
        model.recommend(sp.csr_matrix((1, n)), 3, exclude_items=[1.5])
    ids, scores = model.recommend(sp.csr_matrix((0, n)), 4)  # empty batch: empty result
    assert ids.shape == (0, 4)


def test_raw_core_rejects_malformed_csr(tiny_model):
    core = tiny_model.model._core
    n = core.n_items
    i64, i32 = np.int64, np.int32
    with pytest.raises(ValueError, match="column index 999999"):
        core.recommend(np.array([0, 1], i64), np.array([999999], i32), None, n, 3)
    with pytest.raises(ValueError, match="indptr"):
        core.recommend(np.array([0, 5], i64), np.array([1], i32), None, n, 3)
    with pytest.raises(ValueError, match="exceeds"):
        core.recommend(np.array([0, 9, 1], i64), np.array([1], i32), None, n, 3)
    with pytest.raises(ValueError, match="data has 2 values"):
        core.recommend(np.array([0, 1], i64), np.array([1], i32), np.ones(2, np.float32), n, 3)
    with pytest.raises(TypeError):
        core.recommend(np.array([0, 1], np.float64), np.array([1], i32), None, n, 3)


def test_missing_and_corrupt_model_files(saved, tmp_path):
    import shutil

    with pytest.raises(ModelFormatError, match="manifest.json is missing"):
        personae.load(tmp_path / "nothing")
    assert issubclass(ModelFormatError, ValueError)

    def corrupted(edit):
        d = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
        shutil.copytree(saved, d)
        edit(d)
        return d

    def weights(d):
        return next(d.glob("weights-*"))

    def flip_byte(d):
        w = weights(d)
        b = bytearray(w.read_bytes())
        b[len(b) // 2] ^= 0xFF
        w.write_bytes(bytes(b))

    def edit_manifest(**kv):
        def f(d):
            m = json.loads((d / "manifest.json").read_text())
            m.update(kv)
            (d / "manifest.json").write_text(json.dumps(m))

        return f

    cases = [
        (flip_byte, "sha256"),
        (lambda d: weights(d).unlink(), "weights file .* is missing"),
        (lambda d: (d / "manifest.json").write_text("{not json"), "not valid JSON"),
        (edit_manifest(format_version=2), "format_version 2 is not supported"),
        (edit_manifest(kind="mystery"), "unknown model kind"),
        (edit_manifest(n_items=3), "shape"),
        (edit_manifest(weights_file="../../etc/passwd"), "plain file name"),
        (lambda d: weights(d).write_bytes(b"\0" * 16), "sha256"),
    ]
    for edit, msg in cases:
        with pytest.raises(ModelFormatError, match=msg):
            personae.load(corrupted(edit))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_garbage_bytes_never_crash(manifest, weights):
    with pytest.raises(ModelFormatError):
        _core.MultVae.from_bytes(manifest, weights)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(-5, 12), max_size=8),
    st.lists(st.integers(-3, 20), max_size=8),
    st.integers(0, 6),
)
def test_random_csr_structure_never_crashes(indptr, indices, n):
    """Arbitrary (mostly invalid) CSR arrays give a result or a ValueError, never a crash."""
    s = np.zeros((max(len(indptr) - 1, 0), 10), dtype=np.float32)
    try:
        _core.top_n(s, max(n, 1), np.array(indptr, np.int64), np.array(indices, np.int32))
    except ValueError:
        pass


def test_unreadable_model_file_is_an_os_error(saved, tmp_path):
    """The third error kind: the OS refuses the read (here, manifest.json is a directory)."""
    import shutil

    d = tmp_path / "dir-manifest"
    shutil.copytree(saved, d)
    (d / "manifest.json").unlink()
    (d / "manifest.json").mkdir()
    with pytest.raises(OSError, match="cannot read"):
        _core.MultVae.load(str(d))
