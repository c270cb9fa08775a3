"""Rust metrics against their textbook definitions."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import personae
from personae import metrics

from reference import minority_taste_recall, ranking


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 15), st.integers(1, 30), st.integers(1, 12))
def test_matches_reference(seed, users, items, k):
    rng = np.random.default_rng(seed)
    width = int(rng.integers(1, 15))
    ids = (
        np.stack([rng.permutation(items)[:width] for _ in range(users)])
        if items >= width
        else rng.integers(-1, items, size=(users, width))
    )
    truth = sp.csr_matrix((rng.random((users, items)) < 0.3).astype(np.float32))
    got = metrics.ranking_metrics(ids, truth, k)
    want = ranking(ids, truth, k)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, equal_nan=True)


def test_evaluate_means_skip_users_without_truth():
    truth = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    ids = np.array([[1, 0], [2, 3]])
    m = metrics.evaluate(ids, truth, 2)
    assert m["users"] == 1
    assert m["recall@2"] == 1.0 and m["ndcg@2"] == 1.0 and m["hit_rate@2"] == 1.0
    assert m["coverage@2"] == 1.0


def test_coverage_and_errors():
    assert metrics.coverage(np.array([[0, -1], [0, 2]]), 4) == 0.5
    with pytest.raises(ValueError, match="outside"):
        metrics.coverage(np.array([[4]]), 4)
    with pytest.raises(TypeError, match="2-D"):
        metrics.coverage(np.array([1, 2]), 4)
    with pytest.raises(TypeError, match="integer"):
        metrics.coverage(np.array([[1.5]]), 4)
    with pytest.raises(ValueError, match="rows"):
        metrics.ranking_metrics(np.zeros((2, 1), dtype=np.int64), sp.csr_matrix((3, 4)), 1)
    with pytest.raises(personae.InvalidInputError, match="k must be a positive integer"):
        metrics.ranking_metrics(np.zeros((1, 1), dtype=np.int64), sp.csr_matrix((1, 4)), 0)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 12),
    st.integers(1, 40),
    st.integers(1, 6),
    st.integers(1, 12),
    st.sampled_from([0.1, 0.3, 1.0]),
)
def test_minority_taste_recall_matches_reference(seed, users, items, genres, k, threshold):
    rng = np.random.default_rng(seed)
    cats = sp.random(items, genres, density=0.4, format="csr", random_state=rng)
    cats.data[:] = 1.0
    hist = sp.random(users, items, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    truth = sp.random(users, items, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    for m in (hist, truth):
        m.sort_indices()
    truth.data[:] = 1.0
    ids = np.stack([rng.permutation(items)[: min(items, 8)] for _ in range(users)])
    ids[rng.random(ids.shape) < 0.1] = -1
    got = metrics.minority_taste_recall(ids, truth, cats, history=hist, k=k, threshold=threshold)
    want = minority_taste_recall(ids, truth, cats, hist, k, threshold)
    np.testing.assert_allclose(got, want, equal_nan=True)


def test_minority_taste_recall_by_hand():
    # Two genres; the user's history is 19 items of genre 0 and 1 of genre 1 (5%).
    cats = sp.csr_matrix(np.array([[1, 0]] * 19 + [[0, 1]] * 3 + [[0, 0]], dtype=np.float64))
    hist = sp.csr_matrix(np.r_[np.ones(20), 0, 0, 0][None, :].astype(np.float32))
    truth = sp.csr_matrix(np.r_[np.zeros(19), 0, 1, 1, 1][None, :].astype(np.float32))
    # Items 20 and 21 are minority-taste items; 22 has no genre and never counts.
    ids = np.array([[20, 22, 5, -1]])
    np.testing.assert_allclose(metrics.minority_taste_recall(ids, truth, cats, hist, k=4), [0.5])
    np.testing.assert_allclose(metrics.minority_taste_recall(ids, truth, cats, hist, k=1), [0.5])
    assert np.isnan(metrics.minority_taste_recall(ids, truth, cats, hist, k=4, threshold=0.01))
    with pytest.raises(personae.InvalidInputError, match="truth is 1 x 5"):
        metrics.minority_taste_recall(ids, truth[:, :5], cats, hist)
    with pytest.raises(personae.InvalidInputError, match="k must be"):
        metrics.minority_taste_recall(ids, truth, cats, hist, k=0)
