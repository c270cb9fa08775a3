"""Compatibility with ``implicit`` (>= 0.5): the behaviours its own recommender tests check,
written afresh for personae's models (fitted and loaded), and each documented difference."""

import copy
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

import personae


def test_recommend_single_and_batch_follow_implicit(tiny_model, tiny_data):
    m = tiny_data.interactions.matrix
    ids, scores = tiny_model.recommend(3, m[3], N=5)
    assert ids.shape == scores.shape == (5,)
    assert ids.dtype == np.int32 and scores.dtype == np.float32
    want = tiny_model.recommend(m[3], 5)  # the batch form: int64, 2-D
    assert want[0].dtype == np.int64 and want[0].shape == (1, 5)
    np.testing.assert_array_equal(ids, want[0][0])
    ids2, _ = tiny_model.recommend(np.array([1, 3]), m[[1, 3]], N=5)
    assert ids2.shape == (2, 5)
    np.testing.assert_array_equal(ids2[1], ids)
    assert not set(ids.tolist()) & set(m[3].indices.tolist())
    # Keyword form, as implicit's callers write it.
    k_ids, _ = tiny_model.recommend(userid=3, user_items=m[3], N=5)
    np.testing.assert_array_equal(k_ids, ids)


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
    # implicit raises IndexError; personae's error is both an IndexError and its own.
    with pytest.raises(IndexError, match="outside") as err:
        tiny_model.recommend(0, row, items=[10**6])
    assert isinstance(err.value, personae.InvalidInputError)
    with pytest.raises(RuntimeError, match="not fitted"):
        personae.MultVAE().recommend(0, row)


def test_items_with_liked_filter_returns_liked_items_last(tiny_model, tiny_data):
    """implicit returns every requested item; the ones already liked come last, score -inf."""
    m = tiny_data.interactions.matrix
    liked = m[0].indices[:2]
    other = np.setdiff1d(np.arange(20), m[0].indices)[:3]
    items = np.concatenate([liked, other])
    ids, scores = tiny_model.recommend(0, m[0], N=10, items=items)
    assert ids.shape == (5,) and set(ids.tolist()) == set(items.tolist())
    np.testing.assert_array_equal(np.sort(ids[3:]), np.sort(liked))
    assert np.isneginf(scores[3:]).all() and np.isfinite(scores[:3]).all()
    many, _ = tiny_model.recommend(np.array([0, 1]), m[[0, 1]], N=10, items=items)
    np.testing.assert_array_equal(many[0], ids)


def test_unseen_users_need_no_refit(tiny_model, tiny_data):
    """A brand-new user is scored from their history row alone."""
    n = tiny_data.interactions.n_items
    taste0 = np.flatnonzero(tiny_data.item_taste == 0)[:6]
    new_user = sp.csr_matrix((np.ones(6, np.float32), (np.zeros(6, int), taste0)), shape=(1, n))
    ids, scores = tiny_model.recommend(10**9, new_user, N=5)
    assert (ids >= 0).all() and np.isfinite(scores).all()
    assert not set(ids.tolist()) & set(taste0.tolist())
    # recalculate_user has nothing left to do: the same call gives the same list.
    again, _ = tiny_model.recommend(10**9, new_user, N=5, recalculate_user=True)
    np.testing.assert_array_equal(again, ids)


def test_ampcf_scores_the_given_history_whatever_the_userid(tiny_data):
    est = personae.AMPCF(device="cpu", seed=0)
    est.fit(tiny_data.interactions, show_progress=False)
    m = tiny_data.interactions.matrix
    # The history of user 7 under user id 0: a user is their history, with or without
    # recalculate_user.
    want = est.recommend(m[7], 8)[0][0]
    for recalc in (False, True):
        got, _ = est.recommend(0, m[7], N=8, recalculate_user=recalc)
        np.testing.assert_array_equal(got, want)


def test_similar_items_is_cosine_with_self_first(tiny_model):
    f = tiny_model.item_factors()
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    ids, scores = tiny_model.similar_items(4, N=6)
    assert ids[0] == 4 and abs(scores[0] - 1) < 1e-5
    want = np.argsort(-(fn @ fn[4]), kind="stable")[:6]
    np.testing.assert_allclose(scores, (fn @ fn[4])[want], rtol=1e-5, atol=1e-6)
    many, _ = tiny_model.similar_items(np.array([4, 5]), N=3)
    assert many.shape == (2, 3)
    ids, _ = tiny_model.similar_items(4, N=10, filter_items=[want[1]])
    assert want[1] not in ids
    ids, _ = tiny_model.similar_items(4, N=10, items=[4, 9, 11])
    assert set(ids.tolist()) == {4, 9, 11}


def test_similar_items_skips_items_nobody_interacted_with():
    rng = np.random.default_rng(0)
    x = sp.random(60, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    x.data[:] = 1
    x = sp.csr_matrix(x.multiply(np.arange(30) < 25))  # items 25..29: no interactions
    x.eliminate_zeros()
    est = personae.MultVAE(hidden=8, latent=4, epochs=1, device="cpu").fit(x, show_progress=False)
    ids, _ = est.similar_items(np.arange(5), N=30)
    assert not np.isin(ids, np.arange(25, 30)).any()
    assert ((ids >= 0).sum(1) == 25).all()


def test_similar_users_is_not_implemented(tiny_model):
    with pytest.raises(NotImplementedError, match="no user embeddings"):
        tiny_model.similar_users(0)
    with pytest.raises(NotImplementedError):
        personae.Popularity().fit(sp.eye(4, format="csr")).similar_items(0)


def test_fit_takes_implicits_callback(tiny_data):
    seen = []
    personae.MultVAE(hidden=8, latent=4, epochs=2, device="cpu").fit(
        tiny_data.interactions, show_progress=False, callback=lambda *a: seen.append(a)
    )
    assert [e for e, _, _ in seen] == [0, 1]
    assert all(t >= 0 and np.isfinite(loss) for _, t, loss in seen)


def test_load_pickle_and_deepcopy_round_trip(tiny_model, tiny_data, tmp_path):
    x = tiny_data.interactions.matrix[:20]
    want = tiny_model.recommend(x, 7)
    path = tiny_model.save(tmp_path / "m")
    for other in (
        personae.MultVAE.load(path),
        personae.load(path),
        pickle.loads(pickle.dumps(tiny_model)),
        copy.deepcopy(tiny_model),
        copy.copy(tiny_model),
    ):
        assert type(other) is personae.MultVAE and other.params == tiny_model.params
        got = other.recommend(x, 7)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    unfitted = pickle.loads(pickle.dumps(personae.MultVAE(hidden=7)))
    assert unfitted.params["hidden"] == 7
    with pytest.raises(RuntimeError, match="not fitted"):
        unfitted.save(tmp_path / "x")


def test_implicit_ranking_metrics_on_fitted_and_loaded_models(tiny_model, tiny_data, tmp_path):
    """The README's "Coming from implicit" snippet, as written: it must also work on a model
    loaded from disk."""
    from implicit.evaluation import ranking_metrics_at_k

    train, test = personae.holdout_split(tiny_data.interactions, 0.2, seed=0)
    ids, _ = tiny_model.recommend(train.matrix, 10)
    ours = personae.metrics.evaluate(ids, test.matrix, 10)
    loaded = personae.load(tiny_model.save(tmp_path / "model"))
    for model in (tiny_model, loaded):
        theirs = ranking_metrics_at_k(model, train.matrix, test.matrix, K=10, show_progress=False)
        # implicit's "precision@K" is total hits / total min(K, |test|) over users.
        assert theirs["precision"] == pytest.approx(ours["recall_multvae_micro@10"], rel=1e-12)
        assert theirs["ndcg"] == pytest.approx(ours["ndcg@10"], rel=1e-12)
