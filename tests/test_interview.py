"""The interview engine: posterior, question choice, answers, saving."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from personae.interview import Interview, PairQuestion, Question, Tastes


def tastes(n=40, b=3, seed=0, prior_scale=1.0):
    rng = np.random.default_rng(seed)
    return Tastes(
        phi=rng.standard_normal((n, b)),
        offset=rng.standard_normal(n) * 0.3,
        popularity=rng.integers(1, 100, n).astype(float),
        names=[f"taste {k}" for k in range(b)],
        prior_mean=np.zeros(b),
        prior_cov=np.eye(b) * prior_scale,
    )


def reference_map(t: Tastes, answers, slip):
    """MAP of the same posterior by a generic optimiser, and the precision there."""
    V = np.array([t.phi[q] if np.ndim(q) == 0 else t.phi[q[0]] - t.phi[q[1]] for q, _ in answers])
    o = np.array(
        [t.offset[q] if np.ndim(q) == 0 else t.offset[q[0]] - t.offset[q[1]] for q, _ in answers]
    )
    y = np.array([float(a) for _, a in answers])
    P0 = np.linalg.inv(t.prior_cov)

    def p_of(lam):
        sig = 1 / (1 + np.exp(-(V @ lam + o)))
        return slip / 2 + (1 - slip) * sig, sig

    def f(lam):
        p, _ = p_of(lam)
        r = lam - t.prior_mean
        return 0.5 * r @ P0 @ r - np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))

    lam = minimize(f, t.prior_mean, method="BFGS", options={"gtol": 1e-10}).x
    p, sig = p_of(lam)
    info = ((1 - slip) * sig * (1 - sig)) ** 2 / (p * (1 - p))
    H = P0.copy()
    for v, w in zip(V, info, strict=True):
        H += w * np.outer(v, v)
    return lam, H


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.1, 0.3]), st.sampled_from(["item", "pair"]))
def test_posterior_matches_a_generic_optimiser(seed, slip, kind):
    t = tastes(seed=seed)
    it = Interview(t, kind=kind, seed=seed, slip=slip)
    rng = np.random.default_rng(seed)
    for _ in range(8):
        q = it.next_question()
        it.answer(q, bool(rng.random() < 0.5))
    answers = [(q, a) for q, a in it.answers]
    lam, H = reference_map(t, answers, slip)
    np.testing.assert_allclose(it.weights, lam, atol=1e-5)
    np.testing.assert_allclose(it.post.precision, H, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(it.uncertainty, np.sqrt(np.diag(np.linalg.inv(H))), rtol=1e-5)


def test_criterion_picks_the_analytically_best_question():
    # Two tastes, prior far more uncertain about the second: the most informative item is the
    # one with the largest component on taste 2 among items of equal information weight.
    phi = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [0.0, 0.5]])
    t = Tastes(phi, np.zeros(4), np.ones(4), ["a", "b"], np.zeros(2), np.diag([0.1, 4.0]))
    it = Interview(t, pool=np.arange(4), slip=0.0)
    q = it.next_question()
    # At lam = 0 every item has u = 0 and the same I(0); v^T S v is 0.1, 4, 2.009, 1.
    assert q == 1 and "b" in q.why.split(" vs ")[0]
    # Pairs: the difference with the largest v^T S v, items 1 and 0 (0.1 + 4).
    pq = Interview(t, pool=np.arange(4), kind="pair", slip=0.0).next_question()
    assert set(pq) == {0, 1} and isinstance(pq, PairQuestion)


def test_contradictions_no_opinion_and_bad_questions():
    t = tastes(seed=3)
    it = Interview(t, slip=0.0)
    before = it.weights
    q = it.next_question()
    it.answer(q, None)  # no opinion: nothing learned, never asked again
    np.testing.assert_array_equal(it.weights, before)
    assert q in it.asked()
    # Alternating answers contradict any single taste: no crash and no NaN, even with no slips
    # allowed (the prior keeps the posterior proper).
    for liked in (True, False) * 10:
        q = it.next_question()
        it.answer(q, liked)
        assert np.isfinite(it.weights).all() and np.isfinite(it.uncertainty).all()
    with pytest.raises(ValueError, match="not the question just asked"):
        it.answer(Question(0), True)
    q = it.next_question()
    with pytest.raises(ValueError, match="not the question just asked"):
        it.answer(Question(int(q) + 1 if int(q) + 1 < t.phi.shape[0] else 0), True)
    with pytest.raises(TypeError, match="liked must be"):
        it.answer(q, "yes")
    with pytest.raises(ValueError, match="pool"):
        Interview(t, pool=[10**6])
    with pytest.raises(ValueError, match="kind"):
        Interview(t, kind="essay")


def test_strategies_recommend_and_json_round_trip():
    t = tastes(n=300, b=4, seed=5)
    for strategy in ("information", "random", "popular", "uncertainty"):
        for kind in ("item", "pair"):
            it = Interview(t, kind=kind, strategy=strategy, seed=1)
            for a in (True, False, None, True):
                it.answer(it.next_question(), a)
            ids, scores, persona = it.recommend(n=10)
            assert ids.shape == scores.shape == persona.shape == (10,)
            assert not set(ids.tolist()) & set(it.asked().tolist())
            assert (np.diff(scores) <= 0).all() and ((persona >= 0) & (persona < 4)).all()
            back = Interview.from_json(t, it.to_json())
            np.testing.assert_allclose(back.weights, it.weights)
            assert back.next_question() == it.next_question()
    # The popular strategy asks the most popular items first.
    it = Interview(t, strategy="popular")
    assert it.next_question() == int(np.argmax(t.popularity))
    with pytest.raises(ValueError, match="not a saved"):
        Interview.from_json(t, "[]")


def test_learns_a_simulated_users_weights():
    """Answers drawn from the model itself (with 10% slips) move the estimate toward the truth."""
    t = tastes(n=2000, b=4, seed=11)
    rng = np.random.default_rng(0)
    errs = {"information": [], "random": []}
    for trial in range(20):
        truth = rng.standard_normal(4) * 1.5
        for strategy in errs:
            it = Interview(t, strategy=strategy, seed=trial, slip=0.1)
            for _ in range(15):
                q = it.next_question()
                u = t.phi[q] @ truth + t.offset[q]
                liked = bool(rng.random() < 1 / (1 + np.exp(-u)))
                if rng.random() < 0.1:
                    liked = not liked
                it.answer(q, liked)
            errs[strategy].append(np.linalg.norm(it.weights - truth))
    info, rand = np.mean(errs["information"]), np.mean(errs["random"])
    assert info < rand, (info, rand)
