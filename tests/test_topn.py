"""The Rust top-N against a numpy stable sort, on random shapes and edge cases."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from personae import _core, top_n

from reference import top_n as ref_top_n


@st.composite
def problems(draw):
    rows = draw(st.integers(0, 12))
    cols = draw(st.integers(1, 40))
    n = draw(st.integers(1, 50))  # often larger than the catalogue
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Few distinct values -> many ties; -inf is a legitimate score.
    values = draw(st.sampled_from(["ties", "continuous", "with_inf"]))
    if values == "ties":
        scores = rng.integers(-2, 3, size=(rows, cols)).astype(np.float32)
    else:
        scores = rng.standard_normal((rows, cols)).astype(np.float32)
        if values == "with_inf":
            scores[rng.random((rows, cols)) < 0.2] = -np.inf
    density = draw(st.sampled_from([0.0, 0.3, 1.0]))  # 1.0: users who have seen everything
    seen = rng.random((rows, cols)) < density
    seen = sp.csr_matrix(seen.astype(np.float32))
    seen.sort_indices()
    return scores, n, seen


@settings(max_examples=300, deadline=None)
@given(problems(), st.booleans(), st.sampled_from("CF"))
def test_matches_numpy_sort(p, mask_seen, order):
    """Also for column-major scores, which the public function converts (the core refuses
    them unless they are C-ordered too, as one row or one column is)."""
    scores, n, seen = p
    scores = np.asarray(scores, order=order)
    if not scores.flags.c_contiguous:
        with pytest.raises(ValueError, match="C-contiguous"):
            _core.top_n(scores, n)
    if mask_seen:
        ids, out = top_n(scores, n, seen.indptr.astype(np.int64), seen.indices.astype(np.int32))
        alt = top_n(scores, n, seen=seen)
        np.testing.assert_array_equal(ids, alt[0])
        want_ids, want = ref_top_n(scores, n, seen)
    else:
        ids, out = top_n(scores, n)
        want_ids, want = ref_top_n(scores, n)
    assert ids.shape == out.shape == (scores.shape[0], n)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(out, want)


def test_exclude_items_and_padding():
    s = np.array([[3.0, 2.0, 1.0]], dtype=np.float32)
    ids, out = top_n(s, 3, exclude_items=np.array([True, False, False]))
    assert ids.tolist() == [[1, 2, -1]]
    assert out[0, 2] == -np.inf


def test_empty_batch():
    ids, out = top_n(np.zeros((0, 5), dtype=np.float32), 3)
    assert ids.shape == (0, 3) and out.shape == (0, 3)


def test_nan_scores_are_rejected():
    s = np.zeros((2, 3), dtype=np.float32)
    s[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN at row 1, column 2"):
        top_n(s, 2)


def test_threads_agree():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((600, 300)).astype(np.float32)
    a = top_n(s, 7, num_threads=1)
    b = top_n(s, 7, num_threads=2)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="num_threads"):
        top_n(s, 7, num_threads=0)
    # Requests beyond the CPUs this process may use are capped, not refused.
    c = top_n(s, 7, num_threads=10_000)
    np.testing.assert_array_equal(a[0], c[0])


def test_every_family_serves_through_one_base(tiny_model, tiny_data):
    """recommend, score, item_factors and similar_items live once, on the base Model: every
    family's lists are the top-n of its own dense scores with seen items masked."""
    import personae

    x = tiny_data.interactions.matrix
    ampcf = personae.AMPCF(device="cpu", n_clusters=5, rank=16, att_dim=8).fit(
        x, show_progress=False
    )
    pop = personae.Popularity().fit(x)
    rows = x[:40]
    for model in (tiny_model, ampcf, pop):
        dense = model.score(rows)
        assert dense.shape == (40, model.n_items) and dense.dtype == np.float32
        ids, scores = model.recommend(rows, 12)
        want_ids, want_scores = ref_top_n(dense, 12, rows)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
        # Each listed id carries its own dense score, is unseen and listed once; ids differ
        # from the reference only inside runs of tied scores.
        got = np.take_along_axis(dense, np.maximum(ids, 0), 1)
        np.testing.assert_allclose(got[ids >= 0], scores[ids >= 0], rtol=1e-5, atol=1e-5)
        for u in range(40):
            listed = ids[u][ids[u] >= 0]
            assert len(set(listed.tolist())) == len(listed)
            assert not set(listed.tolist()) & set(rows[u].indices.tolist())
        assert ((ids == want_ids) | np.isclose(scores, want_scores)).all(), type(model).__name__
        with pytest.raises(ValueError, match="columns but the model has"):
            model.score(x[:, :-1])
    np.testing.assert_array_equal(pop.score(rows), np.tile(pop.counts, (40, 1)))
    # The core refuses explain for a model without personas, whatever the Python layer does.
    with pytest.raises(personae.InvalidInputError, match="explain needs a persona model"):
        pop._fitted().recommend(rows, 3, explain=True)
    with pytest.raises(NotImplementedError, match="popularity models have no item embeddings"):
        pop.item_factors()
    # AMP-CF's item space is what similar_items ranks by cosine.
    f = ampcf.item_factors()
    assert f.shape == (ampcf.n_items, 8)
    sim_ids, sim = ampcf.similar_items(3, N=5)
    unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-30)
    np.testing.assert_allclose(sim, unit[sim_ids] @ unit[3], rtol=1e-4, atol=1e-5)
    assert sim_ids[0] == 3
