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
    # Each row names an item at most once; -1 pads rows wider than the catalogue, anywhere.
    ids = np.stack(
        [
            rng.permutation(np.concatenate([np.arange(items), np.full(width, -1)]))[:width]
            for _ in range(users)
        ]
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


def test_lists_that_name_an_item_twice_or_past_the_catalogue_are_refused():
    """Counted as the set definition says, a repeated item would be a second hit (recall 3.0
    for ``[[0, 0, 0]]``); an id past the catalogue or below -1 a silent miss."""
    truth = sp.csr_matrix(np.array([[1, 0, 0]], dtype=np.float32))
    with pytest.raises(personae.InvalidInputError, match="row 0 lists item 0 twice"):
        metrics.ranking_metrics(np.array([[0, 0, 0]]), truth, 3)
    with pytest.raises(personae.InvalidInputError, match="twice"):
        metrics.evaluate(np.array([[2, 1, 2]]), truth, 3)
    for bad in (3, -2):
        with pytest.raises(personae.IndexOutOfRangeError, match=f"item {bad}, outside 0..3"):
            metrics.ranking_metrics(np.array([[0, bad, -1]]), truth, 3)
    # Padding may repeat, and what lies past the cut-off is not read.
    assert metrics.ranking_metrics(np.array([[0, -1, -1]]), truth, 3)["recall"][0] == 1.0
    assert metrics.ranking_metrics(np.array([[0, 1, 1]]), truth, 2)["ndcg"][0] == 1.0
    cats = np.array([[1, 0]] * 9 + [[0, 1]], dtype=np.float32)
    hist = sp.csr_matrix(np.array([[1] * 9 + [0]], dtype=np.float32))
    held = sp.csr_matrix(np.array([[0] * 9 + [1]], dtype=np.float32))
    with pytest.raises(personae.InvalidInputError, match="item 9 twice"):
        metrics.minority_taste_recall(np.array([[9, 9, 9]]), held, cats, history=hist, k=3)
    assert metrics.minority_taste_recall(np.array([[9, 0, 1]]), held, cats, history=hist, k=3)[
        0
    ] == pytest.approx(1.0)


def test_mean_c_kl_leaves_out_users_without_a_target():
    """C_KL needs the user's category distribution: a user without a categorised history has
    NaN, not 0 (which counted them as perfectly calibrated in every mean), and evaluate's mean
    is over users with held-out items, as its other means."""
    cats = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    hist = sp.csr_matrix(np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32))
    held = sp.csr_matrix(np.array([[0, 0, 1], [0, 0, 0], [1, 0, 0]], dtype=np.float32))
    ids = np.array([[2, 0], [1, 0], [1, 0]])
    ckl = metrics.miscalibration(ids, cats, history=hist)
    assert ckl[0] == pytest.approx(0.0) and ckl[1] > 0.5 and np.isnan(ckl[2])
    m = metrics.evaluate(ids, held, 2, item_categories=cats, history=hist)
    assert m["users"] == 2 and m["c_kl@2"] == pytest.approx(0.0)  # user 0 alone
    assert metrics.calibration(ids, cats, history=hist)["ckl"] == pytest.approx(ckl[:2].mean())
    rr = personae.CalibratedReranker(cats, lam=0.5)
    out = rr.rerank(ids, np.ones(ids.shape, np.float32), history=hist, n=2)
    assert np.isnan(out.ckl_before[2]) and np.isnan(out.ckl_after[2])
    np.testing.assert_allclose(out.ckl_before[:2], ckl[:2])


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
