"""Bad input raises a clear exception naming the problem; nothing crashes the interpreter.

Every value rule is checked once, in the Rust core; Python only converts types. These tests
pin the messages and the exception types of that one place."""

import json
import shutil

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st

import personae
from personae import InvalidInputError, ModelFormatError, PersonaeError


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory):
    return tiny_model.save(tmp_path_factory.mktemp("m") / "model")


def test_exception_hierarchy():
    assert issubclass(InvalidInputError, PersonaeError) and issubclass(
        InvalidInputError, ValueError
    )
    assert issubclass(ModelFormatError, PersonaeError) and issubclass(ModelFormatError, ValueError)
    assert InvalidInputError.__module__ == "personae"


def test_user_items_type_shape_and_values(tiny_model):
    model = tiny_model
    n = model.n_items
    with pytest.raises(TypeError, match="user_items must be a scipy.sparse"):
        model.recommend(np.zeros((2, n)))
    with pytest.raises(InvalidInputError, match=f"has {n + 1} columns but the model has {n} items"):
        model.recommend(sp.csr_matrix((2, n + 1)))
    nan = sp.csr_matrix((np.array([np.nan], np.float32), ([0], [1])), shape=(1, n))
    with pytest.raises(InvalidInputError, match="user_items: data must be finite"):
        model.recommend(nan)
    neg = sp.csr_matrix((np.array([-1.0], np.float32), ([0], [1])), shape=(1, n))
    with pytest.raises(InvalidInputError, match="row 0 has a negative weight"):
        model.recommend(neg)
    unsorted = sp.csr_matrix(
        (np.ones(2, np.float32), np.array([3, 1]), np.array([0, 2])), shape=(1, n)
    )
    unsorted.has_sorted_indices = False
    with pytest.raises(InvalidInputError, match="unsorted or duplicate"):
        model.recommend(unsorted)
    for bad_n in (0, -3):
        with pytest.raises(InvalidInputError, match="n must be a positive integer"):
            model.recommend(sp.csr_matrix((1, n)), bad_n)
    with pytest.raises(TypeError, match="n must be an integer"):
        model.recommend(sp.csr_matrix((1, n)), 2.5)
    with pytest.raises(TypeError, match="n must be an integer"):
        model.recommend(sp.csr_matrix((1, n)), True)
    with pytest.raises(InvalidInputError, match="exclude_items: item index"):
        model.recommend(sp.csr_matrix((1, n)), 3, exclude_items=[n])
    with pytest.raises(InvalidInputError, match="exclude_items: item index -1"):
        model.recommend(sp.csr_matrix((1, n)), 3, exclude_items=[-1])
    with pytest.raises(InvalidInputError, match="one entry per item"):
        model.recommend(sp.csr_matrix((1, n)), 3, exclude_items=np.zeros(n + 1, bool))
    with pytest.raises(TypeError, match="exclude_items must hold integer"):
        model.recommend(sp.csr_matrix((1, n)), 3, exclude_items=[1.5])
    ids, scores = model.recommend(sp.csr_matrix((0, n)), 4)  # empty batch: empty result
    assert ids.shape == (0, 4)
    # Any sparse format and dtype is converted; COO with float64 gives the CSR result.
    row = sp.coo_matrix(([1.0], ([0], [2])), shape=(1, n), dtype=np.float64)
    np.testing.assert_array_equal(model.recommend(row, 4)[0], model.recommend(row.tocsr(), 4)[0])


def test_int64_indices_do_not_wrap(tiny_model):
    """A negative int64 column index that would wrap to a valid int32 one is out of range."""
    n = tiny_model.n_items
    m = sp.csr_matrix((1, n), dtype=np.float32)
    m.indices = np.array([-(2**32) + 5], dtype=np.int64)
    m.indptr = np.array([0, 1], dtype=np.int64)
    m.data = np.ones(1, np.float32)
    with pytest.raises(InvalidInputError, match="outside"):
        tiny_model.recommend(m, 3)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([1e-30, 1e-23, 1e-3, 1.0, 1e3, 1e20, 1e30]))
def test_weight_scale_never_changes_the_lists(tiny_model, tiny_data, scale):
    """The row normalisation is exact for any finite positive weight scale (float32 squares
    would overflow at 1e20 and vanish at 1e-23, dropping the whole history)."""
    x = tiny_data.interactions.matrix[:30].copy()
    x.data = np.linspace(1, 3, x.nnz).astype(np.float32)
    want = tiny_model.recommend(x, 10)
    scaled = x.copy()
    scaled.data = (x.data.astype(np.float64) * scale).astype(np.float32)
    got = tiny_model.recommend(scaled, 10)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)


def test_missing_and_corrupt_model_files(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json does not exist"):
        personae.load(tmp_path / "nothing")

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

    def manifest_text(text):
        def f(d):
            (d / "manifest.json").write_text(text)

        return f

    ids = json.loads((saved / "manifest.json").read_text())["item_ids"]
    cases = [
        (flip_byte, "sha256"),
        (manifest_text("{not json"), "not valid JSON"),
        (manifest_text("[]"), "must hold a JSON object, found an array"),
        (manifest_text("null"), "must hold a JSON object, found null"),
        (edit_manifest(format_version=2), "format_version 2 is not supported"),
        (edit_manifest(kind="mystery"), "unknown model kind"),
        (edit_manifest(n_items=3), "'item_ids' has"),
        (edit_manifest(item_ids=ids[:-1]), "'item_ids' has"),
        (edit_manifest(item_ids=[ids[0]] * len(ids)), "appears more than once"),
        (edit_manifest(item_ids=[0.5] * len(ids)), "all integers or all strings"),
        (edit_manifest(weights_file="../../etc/passwd"), "plain file name"),
        (lambda d: weights(d).write_bytes(b"\0" * 16), "sha256"),
    ]
    for edit, msg in cases:
        with pytest.raises(ModelFormatError, match=msg):
            personae.load(corrupted(edit))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        personae.load(corrupted(lambda d: weights(d).unlink()))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_garbage_bytes_never_crash(manifest, weights):
    with pytest.raises(ModelFormatError):
        personae.Model.from_bytes(manifest, weights)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(-5, 12), max_size=8),
    st.lists(st.integers(-3, 20), max_size=8),
    st.integers(-2, 6),
)
# A row after a decrease, with negative offsets (the parallel row checks once indexed with it).
@example([0, -5, -3, 2], [1, 2], 1)
def test_random_csr_structure_never_crashes(indptr, indices, n):
    """Arbitrary (mostly invalid) CSR arrays give a result or a ValueError, never a crash."""
    s = np.zeros((max(len(indptr) - 1, 0), 10), dtype=np.float32)
    try:
        personae.top_n(s, n, np.array(indptr, np.int64), np.array(indices, np.int32))
    except ValueError:
        pass


def test_os_errors_keep_their_kind(saved, tmp_path):
    """The Rust Io error keeps the OS error's kind: a directory where manifest.json should be
    is an IsADirectoryError, an unreadable file a PermissionError."""
    import os

    d = tmp_path / "dir-manifest"
    shutil.copytree(saved, d)
    (d / "manifest.json").unlink()
    (d / "manifest.json").mkdir()
    with pytest.raises(IsADirectoryError, match="not a regular file"):
        personae.load(d)
    if os.geteuid() != 0:  # root reads anything
        p = tmp_path / "locked"
        shutil.copytree(saved, p)
        (p / "manifest.json").chmod(0)
        with pytest.raises(PermissionError):
            personae.load(p)


def test_interactions_ids_and_nulls(tmp_path):
    import pandas as pd

    from personae import Interactions

    with pytest.raises(ValueError, match="null"):
        Interactions.from_arrays([1, 2], [3, None])
    with pytest.raises(ValueError, match="null"):
        Interactions.from_arrays([1.0, np.nan], [3, 4])
    pd.DataFrame({"user": ["a", "b", ""], "item": ["x", "", "y"]}).to_csv(
        tmp_path / "n.csv", index=False
    )
    with pytest.raises(ValueError, match=r"column 'user' of .*n.csv: 1 null"):
        Interactions.read(tmp_path / "n.csv")
    with pytest.raises(ValueError, match="integers or strings"):
        Interactions.from_arrays([1, 2], [0.5, 1.5])
