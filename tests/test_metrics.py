"""Rust metrics against their textbook definitions."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import personae
from personae import metrics

from reference import ranking


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
