"""The implicit-compatible estimator API."""

import numpy as np
import pytest
import scipy.sparse as sp

import personae


def test_recommend_shapes_follow_implicit(tiny_model, tiny_data):
    m = tiny_data.interactions.matrix
    ids, scores = tiny_model.recommend(3, m[3], N=5)
    assert ids.shape == scores.shape == (5,)
    assert ids.dtype == np.int32 and scores.dtype == np.float32
    want = tiny_model.model.recommend(m[3], 5)
    np.testing.assert_array_equal(ids, want[0][0])
    ids2, _ = tiny_model.recommend(np.array([1, 3]), m[[1, 3]], N=5)
    assert ids2.shape == (2, 5)
    np.testing.assert_array_equal(ids2[1], ids)
    assert not set(ids.tolist()) & set(m[3].indices.tolist())


def test_filters_and_candidate_restriction(tiny_model, tiny_data):
    m = tiny_data.interactions.matrix
    row = m[0]
    ids, _ = tiny_model.recommend(0, row, N=10, filter_items=[1, 2, 3])
    assert not np.isin(ids, [1, 2, 3]).any()
    allowed = np.array([5, 7, 9])
    ids, scores = tiny_model.recommend(0, sp.csr_matrix((1, m.shape[1])), N=10, items=allowed)
    assert ids.shape == (3,) and set(ids.tolist()) == {5, 7, 9}
    ids, _ = tiny_model.recommend(0, row, N=10, filter_already_liked_items=False)
    assert set(ids.tolist()) & set(row.indices.tolist()) or len(row.indices) == 0
    with pytest.raises(ValueError, match="both filter_items and items"):
        tiny_model.recommend(0, row, items=[1], filter_items=[2])
    with pytest.raises(ValueError, match="1 row for every user"):
        tiny_model.recommend([0, 1], row)
    with pytest.raises(IndexError):
        tiny_model.recommend(0, row, items=[10**6])
    with pytest.raises(RuntimeError, match="not fitted"):
        personae.MultVAE().recommend(0, row)


def test_unseen_users_need_no_refit(tiny_model, tiny_data):
    """A brand-new user is scored from their history row alone."""
    n = tiny_data.interactions.n_items
    taste0 = np.flatnonzero(tiny_data.item_taste == 0)[:6]
    new_user = sp.csr_matrix((np.ones(6, np.float32), (np.zeros(6, int), taste0)), shape=(1, n))
    ids, scores = tiny_model.recommend(10**9, new_user, N=5)
    assert (ids >= 0).all() and np.isfinite(scores).all()
    assert not set(ids.tolist()) & set(taste0.tolist())


def test_similar_items_is_cosine_with_self_first(tiny_model):
    f = tiny_model.model.item_factors()
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    ids, scores = tiny_model.similar_items(4, N=6)
    assert ids[0] == 4 and abs(scores[0] - 1) < 1e-5
    want = np.argsort(-(fn @ fn[4]), kind="stable")[:6]
    np.testing.assert_allclose(scores, (fn @ fn[4])[want], rtol=1e-5, atol=1e-6)
    many, _ = tiny_model.similar_items(np.array([4, 5]), N=3)
    assert many.shape == (2, 3)


def test_implicit_ranking_metrics_match_ours(tiny_model, tiny_data):
    from implicit.evaluation import ranking_metrics_at_k

    train, test = personae.holdout_split(tiny_data.interactions, 0.2, seed=0)
    theirs = ranking_metrics_at_k(tiny_model, train.matrix, test.matrix, K=10, show_progress=False)
    ids, _ = tiny_model.model.recommend(train.matrix, 10)
    ours = personae.metrics.evaluate(ids, test.matrix, 10)
    # implicit's "precision@K" is total hits / total min(K, |test|) over users.
    assert theirs["precision"] == pytest.approx(ours["recall_multvae_micro@10"], rel=1e-12)
    assert theirs["ndcg"] == pytest.approx(ours["ndcg@10"], rel=1e-12)
