"""The interview engine: posterior, question choice, answers, saving."""

import dataclasses

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from personae.interview import GroupQuestion, Interview, PairQuestion, Question, Tastes

from conftest import run_in_terminal


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

    # With slips the posterior can have several optima: the best of several starts.
    starts = [t.prior_mean, *np.random.default_rng(0).standard_normal((10, len(t.prior_mean)))]
    runs = [minimize(f, x0, method="BFGS", options={"gtol": 1e-10}) for x0 in starts]
    lam = min(runs, key=lambda r: r.fun).x
    p, sig = p_of(lam)
    info = ((1 - slip) * sig * (1 - sig)) ** 2 / (p * (1 - p))
    H = P0.copy()
    for v, w in zip(V, info, strict=True):
        H += w * np.outer(v, v)
    return lam, H


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.1, 0.3]), st.sampled_from(["item", "pair"]))
@example(304, 0.0, "pair")  # a near-zero off-diagonal entry: the elementwise rtol alone failed it
def test_posterior_matches_a_generic_optimiser(seed, slip, kind):
    t = tastes(seed=seed)
    it = Interview(t, kind=kind, seed=seed, slip=slip, groups=0)
    rng = np.random.default_rng(seed)
    for _ in range(8):
        q = it.next_question()
        it.answer(q, bool(rng.random() < 0.5))
    answers = [(q, a) for q, a in it.answers]
    lam, H = reference_map(t, answers, slip)
    np.testing.assert_allclose(it.weights, lam, atol=1e-5)
    # H is taken at the reference's optimum, equal to 1e-5: its entries agree to that on the
    # scale of H, not relative to each entry (a near-zero off-diagonal one moves by 1e-7).
    np.testing.assert_allclose(it.post.precision, H, rtol=1e-5, atol=1e-6 * np.abs(H).max())
    np.testing.assert_allclose(it.uncertainty, np.sqrt(np.diag(np.linalg.inv(H))), rtol=1e-5)


def test_criterion_picks_the_analytically_best_question():
    # Two tastes, prior far more uncertain about the second: the most informative item is the
    # one with the largest component on taste 2 among items of equal information weight.
    phi = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [0.0, 0.5]])
    t = Tastes(phi, np.zeros(4), np.ones(4), ["a", "b"], np.zeros(2), np.diag([0.1, 4.0]))
    it = Interview(t, pool=np.arange(4), groups=0, slip=0.0, strategy="information")
    q = it.next_question()
    # At lam = 0 every item has u = 0 and the same I(0); v^T S v is 0.1, 4, 2.009, 1.
    assert q == 1 and "b" in q.why.split(" vs ")[0]
    # Pairs: the difference with the largest v^T S v, items 1 and 0 (0.1 + 4).
    pq = Interview(t, pool=np.arange(4), groups=0, kind="pair", slip=0.0, strategy="information")
    pq = pq.next_question()
    assert set(pq) == {0, 1} and isinstance(pq, PairQuestion)


def test_contradictions_no_opinion_and_bad_questions():
    t = tastes(seed=3)
    it = Interview(t, slip=0.0, groups=0)
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
    for strategy in ("likely", "information", "random", "popular", "uncertainty"):
        for kind, asks in (("item", None), ("item", "would-like"), ("pair", None)):
            extra = {} if asks is None else {"asks": asks}
            it = Interview(t, kind=kind, strategy=strategy, seed=1, groups=0, **extra)
            assert it.asks == (asks or "liked-before")
            for a in (True, False, None, True):
                it.answer(it.next_question(), a)
            ids, scores, persona = it.recommend(n=10)
            assert ids.shape == scores.shape == persona.shape == (10,)
            # The default ("have you liked it?") leaves only the liked items out of the list;
            # "would-like" and pair questions every item asked.
            out = it.liked() if (kind, asks) == ("item", None) else it.asked()
            assert len(out) == (2 if kind == "item" and asks is None else len(it.asked()))
            np.testing.assert_array_equal(np.sort(it.excluded()), np.sort(out))
            assert not set(ids.tolist()) & set(out.tolist())
            assert (np.diff(scores) <= 0).all() and ((persona >= 0) & (persona < 4)).all()
            back = Interview.from_json(t, it.to_json())
            assert back.asks == it.asks
            np.testing.assert_allclose(back.weights, it.weights)
            assert back.next_question() == it.next_question()
    # The popular strategy asks the most popular items first.
    it = Interview(t, strategy="popular", groups=0)
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
            it = Interview(t, strategy=strategy, seed=trial, slip=0.1, groups=0)
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


# -- with a fitted persona model ------------------------------------------------------------
@pytest.fixture(scope="module")
def ampcf():
    import personae

    d = personae.synthetic(n_users=400, n_items=120, n_tastes=4, seed=2)
    return personae.AMPCF(device="cpu").fit(d.interactions, show_progress=False), d


def _standard(v):
    v = np.asarray(v, np.float64)
    return (v - v.mean()) / v.std()


def test_pool_of_floats_is_refused_not_truncated():
    import personae

    t = tastes()
    with pytest.raises(personae.InvalidInputError, match="pool must hold integer item indices"):
        Interview(t, pool=[1.7, 2.2])
    with pytest.raises(personae.InvalidInputError, match="outside"):
        Interview(t, pool=[-1, 3])
    with pytest.raises(personae.InvalidInputError, match="empty"):
        Interview(t, pool=[])


@pytest.mark.parametrize(
    "setting, error, match",
    [
        # each was accepted before: floats truncated by int(), NaN weights gave NaN lists
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"seed": 0.5}, TypeError, "seed must be an integer"),
        ({"explore_first": 1.5}, TypeError, "explore_first must be an integer"),
        ({"explore_every": -0.5}, TypeError, "explore_every must be an integer"),
        ({"groups": 2.5}, TypeError, "groups must be an integer"),
        ({"group_size": 2.0}, TypeError, "group_size must be an integer"),
        ({"posterior_weight": float("nan")}, ValueError, "posterior_weight must be finite"),
        ({"posterior_weight": -1.0}, ValueError, "posterior_weight must be finite and >= 0"),
        ({"dislike_weight": float("inf")}, ValueError, "dislike_weight must be finite"),
        ({"dislike_weight": "0.5"}, TypeError, "dislike_weight must be a number"),
    ],
)
def test_bad_settings_are_refused(setting, error, match):
    with pytest.raises(error, match=match):
        Interview(tastes(), **setting)


def test_list_folds_liked_answers_through_the_model(ampcf):
    """The list is the model's own fold-in of the liked answers (plus the weighted posterior
    and minus the weighted fold-in of the disliked ones), liked items excluded (the default
    asks "have you liked it?")."""
    import scipy.sparse as sp

    model, _ = ampcf
    n = model.n_items

    def row(items, it=None):
        w = np.ones(len(items))
        if it is not None:  # each "yes" weighs its posterior probability of being meant
            sig = 1 / (1 + np.exp(-(it.phi[items] @ it.weights + it.offset[items])))
            w = (1 - it.slip) * sig / (it.slip / 2 + (1 - it.slip) * sig)
        return sp.csr_matrix((w, (np.zeros(len(items), int), items)), shape=(1, n))

    it = Interview(model, posterior_weight=0.0, dislike_weight=0.0, groups=0)
    before = it.scores()  # no "yes" yet: the posterior utility at the prior
    np.testing.assert_allclose(before, it.phi @ it.weights + it.offset, rtol=1e-4, atol=1e-4)
    answers = [True, False, True, None, False, True]
    for a in answers:
        it.answer(it.next_question(), a)
    liked, disliked = it.liked(), it.disliked()
    assert len(liked) == 3 and len(disliked) == 2
    want = _standard(model.score(row(liked, it))[0])
    np.testing.assert_allclose(it.scores(), want, rtol=1e-4, atol=1e-4)
    ids = it.recommend(10)[0]
    assert not set(ids.tolist()) & set(liked.tolist())
    # Each part is weighted as documented.
    mixed = Interview(model, posterior_weight=0.5, dislike_weight=0.7, groups=0)
    for a in answers:
        mixed.answer(mixed.next_question(), a)
    post = mixed.phi @ mixed.weights + mixed.offset
    fold = _standard(model.score(row(mixed.liked(), mixed))[0])
    push = _standard(model.score(row(mixed.disliked()))[0])
    want = fold + 0.5 * _standard(post) - 0.7 * push
    np.testing.assert_allclose(mixed.scores(), want, rtol=1e-4, atol=1e-4)
    # The liked answer behind each listed item is one of the liked items.
    because = it.because(ids)
    assert because.shape == ids.shape and set(because.tolist()) <= set(liked.tolist())
    assert (Interview(model, groups=0).because(ids) == -1).all()  # nothing liked yet
    # Without slips every "yes" counts in full.
    exact = Interview(model, posterior_weight=0.0, slip=0.0, groups=0)
    for a in answers:
        exact.answer(exact.next_question(), a)
    want = _standard(model.score(row(exact.liked()))[0])
    np.testing.assert_allclose(exact.scores(), want, rtol=1e-4, atol=1e-4)


def test_first_question_is_computed_once_per_model(ampcf, monkeypatch):
    model, _ = ampcf
    q = Interview(model, groups=0).next_question()
    calls = []
    monkeypatch.setattr(Interview, "_pick_item", lambda self, free: calls.append(1) or 0)
    again = Interview(model, seed=5, groups=0)
    assert again.next_question() == q and not calls  # read back, not recomputed
    again.answer(q, True)
    again.next_question()
    assert calls  # later questions depend on the answers


def test_distinctive_taste_names(ampcf):
    """Each taste is named by items it likes more than anyone (positive lift), which on the
    synthetic data are mostly items of one true taste."""
    model, d = ampcf
    top = model.distinctive_items(3)
    assert top.shape == (model.n_tastes, 3)
    phi = model.base_tastes().phi
    labels = model.item_tastes()
    for c, row in enumerate(top):
        row = row[row >= 0]
        assert len(row) and (phi[row, c] > 0).all()
    names = model.base_tastes().names
    assert all(n.count(",") == 2 for n, r in zip(names, top, strict=True) if (r >= 0).all())
    # Taste c's names lean to one true taste more than chance would.
    pure = [np.bincount(d.item_taste[r[r >= 0]]).max() / max((r >= 0).sum(), 1) for r in top]
    assert np.mean(pure) > 0.5, pure
    del labels


def test_from_json_checks_version_model_items_and_duplicates(ampcf):
    import json

    import personae

    model, _ = ampcf
    it = Interview(model, groups=0)
    for a in (True, False, None):
        it.answer(it.next_question(), a)
    saved = it.to_json()
    back = Interview.from_json(model, saved)
    np.testing.assert_allclose(back.weights, it.weights)
    assert back.answers == it.answers

    def bad(**change):
        d = json.loads(saved)
        d.update(change)
        return json.dumps(d)

    q = [[int(x[0][0])] for x in json.loads(saved)["answers"]]
    cases = {
        "version 99": bad(version=99),
        "another model": bad(model="0123456789abcdef"),
        "outside": bad(answers=[[[-1], True]]),
        "appears twice": bad(answers=[[q[0], True]] * 50),
        "true, false or null": bad(answers=[[q[0], "yes"]]),
        "not a saved": "{not json",
    }
    for match, text in cases.items():
        with pytest.raises(personae.InvalidInputError, match=match):
            Interview.from_json(model, text)
    other = tastes(n=model.n_items, b=model.n_tastes)
    with pytest.raises(personae.InvalidInputError, match="another model"):
        Interview.from_json(other, saved)


# -- the command ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(ampcf, tmp_path_factory):
    import pandas as pd

    model, _ = ampcf
    path = tmp_path_factory.mktemp("interview") / "model"
    model.save(path)
    items = path.parent / "items.csv"
    titles = {"item": range(120), "title": [f"Film {i}" for i in range(120)]}
    pd.DataFrame(titles).to_csv(items, index=False)
    return path, items


def test_cli_interview_through_a_terminal_ten_answers(model_dir, tmp_path):
    """A person answers 10 questions in a pseudo-terminal: first a group question (each taste
    named by three titles; a number out of range is refused and asked again; this model has
    too few large tastes for a second, different group, so the other default group questions
    are not asked), then items; the list shows, for each item, the taste (three titles) and
    the liked answer behind it."""
    import json
    import sys

    from personae import interview

    model, items = model_dir
    state = tmp_path / "state.json"
    argv = [sys.executable, "-m", "personae.cli", "interview", "--model", str(model)]
    argv += ["--items", str(items), "--questions", "10", "--state", str(state)]
    assert interview.GROUPS == 3  # the default schedule, cut to one group on this model
    given = ["9", "1", "y", "n", "y", "?", "y", "n", "y", "y", "n"]
    status, text = run_in_terminal(argv, given, b"/?/q] ")
    assert status == 0, text
    assert text.count("Which of these groups is closest to your taste?") == 2  # one refused
    assert "please answer [1-" in text
    shown = [x.strip() for x in text.splitlines() if x.strip()[:3] in {"1) ", "2) "}]
    assert shown and all(x.split(") ", 1)[1].count(" / ") == 2 for x in shown)
    assert "0) none of these" in text
    # The default item question asks about the user's past.
    assert text.count("Have you seen and liked 'Film") == 9
    assert "Would you watch" not in text
    assert "Top 10 after 10 answers" in text
    listed = [x for x in text.splitlines() if "because you liked Film" in x]
    assert len(listed) == 10, text
    # Every taste shown is named by three titles.
    for line in listed:
        taste = line.split("[", 1)[1].split(";")[0]
        assert taste.startswith("taste ") and taste.count(" / ") == 2 and "Film" in taste
    saved = json.loads(state.read_text())
    first = saved["answers"][0]
    assert first["choice"] == first["group"][0]
    assert [a for _, a in saved["answers"][1:]] == [
        {"y": True, "n": False, "?": None}[x] for x in given[2:]
    ]


def test_cli_refuses_a_malformed_answers_file_and_a_foreign_state(model_dir, tmp_path, capsys):
    import json

    from personae.cli import main

    model, items = model_dir
    answers = tmp_path / "answers.txt"
    answers.write_text("y\nn ?\nmaybe\ny\n")
    base = ["interview", "--model", str(model), "--answers", str(answers)]
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "line 3" in err and "'maybe'" in err and "Traceback" not in err
    # With group questions first, an item answer to one is refused with its number.
    answers.write_text("y n\n")
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "'y' does not answer question 1" in err and "Traceback" not in err
    # This model has one group of large tastes: one group question, then items.
    answers.write_text("2 ? y n\n")
    state = tmp_path / "g.json"
    assert main([*base, "--state", str(state), "--questions", "4"]) == 0
    assert "Top 10 after 4 answers" in capsys.readouterr().out
    saved = json.loads(state.read_text())["answers"]
    assert saved[0]["choice"] == saved[0]["group"][1] and saved[1][1] is None
    assert saved[2][1] is True and saved[3][1] is False
    answers.write_text("none ?\n")
    state = tmp_path / "none.json"
    assert main([*base, "--state", str(state), "--questions", "2"]) == 0
    capsys.readouterr()
    saved = json.loads(state.read_text())["answers"]
    assert saved[0]["choice"] is False and saved[1][1] is None
    answers.write_text("y n\n")
    state = tmp_path / "s.json"
    base += ["--groups", "0"]
    assert main([*base, "--state", str(state), "--questions", "2"]) == 0
    capsys.readouterr()
    d = json.loads(state.read_text())
    d["answers"][0][0] = [10**6]
    state.write_text(json.dumps(d))
    assert main([*base, "--state", str(state)]) == 1
    err = capsys.readouterr().err
    assert "outside" in err and "Traceback" not in err


def test_likely_questions_skip_the_lists_own_top_items(ampcf):
    """With asks="would-like" (every asked item leaves the list) "likely" asks the pool item
    the list scores highest outside the list's top SKIP_TOP: a "yes" teaches the fold-in
    without spending one of the list's own likely hits."""
    from personae import interview as iv

    model, _ = ampcf
    it = Interview(model, strategy="likely", groups=0, asks="would-like")
    for a in (True, False, True):
        it.answer(it.next_question(), a)
    s = it.scores().astype(np.float64)
    s[it.asked()] = -np.inf
    top = set(np.argsort(-s, kind="stable")[: iv.SKIP_TOP].tolist())
    q = int(it.next_question())
    assert q not in top and q in it.pool
    rest = [j for j in it.pool.tolist() if j not in top and np.isfinite(s[j])]
    assert s[q] == max(s[j] for j in rest)


def test_exploration_schedule_asks_the_criterion_outside_the_lists_top(ampcf):
    """With ``explore_first`` / ``explore_every`` the "likely" interview asks those questions
    by PReF's criterion on the taste posterior (with asks="would-like" still outside the list's
    top SKIP_TOP), the others as before; the schedule survives a JSON round trip; negative
    values are refused."""
    from personae import interview as iv

    model, _ = ampcf
    it = Interview(model, explore_first=1, explore_every=3, groups=0, asks="would-like")
    assert it._exploring()  # the first question
    for a in (True, False):
        it.answer(it.next_question(), a)
    # After two answers the third question (index 2) is an exploration one (every 3rd).
    assert it._exploring()
    s = it.scores().astype(np.float64)
    s[it.asked()] = -np.inf
    top = set(np.argsort(-s, kind="stable")[: iv.SKIP_TOP].tolist())
    score, _ = it._criterion(it._pool_phi, it._pool_offset)
    keep = np.array([j not in top and np.isfinite(s[j]) for j in it.pool.tolist()])
    q = int(it.next_question())
    assert q == int(it.pool[np.argmax(np.where(keep, score, -np.inf))])
    it.answer(q, True)
    assert not it._exploring()  # the fourth question is a "likely" one again
    back = Interview.from_json(model, it.to_json())
    assert (back.explore_first, back.explore_every) == (1, 3)
    assert int(back.next_question()) == int(it.next_question())
    # With the default asks="liked-before" the exploration question may be one of the list's
    # top items: the criterion's best pool item not asked yet.
    it = Interview(model, explore_first=1, groups=0)
    score, _ = it._criterion(it._pool_phi, it._pool_offset)
    assert int(it.next_question()) == int(it.pool[np.argmax(score)])
    with pytest.raises(ValueError, match="explore"):
        Interview(model, explore_first=-1)


def test_mix_is_the_posteriors_rise_above_the_prior():
    """``mix()`` sums to 1, is uniform before any answer, and after "yes" answers about one
    taste's items puts its largest share on that taste."""
    t = tastes(n=60, b=3, seed=4)
    it = Interview(t, strategy="random", seed=0, groups=0)
    np.testing.assert_allclose(it.mix(), np.full(3, 1 / 3))
    best = np.argsort(-(t.phi[:, 1] - t.phi[:, [0, 2]].max(1)))[:6]
    for j in best:
        it._pending = Question(int(j))
        it.answer(it._pending, True)
    m = it.mix()
    assert m.sum() == pytest.approx(1.0) and (m >= 0).all()
    assert int(np.argmax(m)) == 1


# -- group questions ("which of these tastes is closest to you?") -------------------------
def reference_choice_map(t: Tastes, groups, slip, scale, none):
    """MAP of the group answers' posterior by a generic optimiser, written from the model
    (softmax over z_c = scale (lam_c - m0_c) / sd_c and "none" at scale * none, with slips),
    and the Fisher information at the MAP by finite differences of the option probabilities."""
    m0, S0 = t.prior_mean, t.prior_cov
    P0, sd = np.linalg.inv(S0), np.sqrt(np.diag(S0))

    def probs(lam, shown):
        z = np.append(scale * (lam[shown] - m0[shown]) / sd[shown], scale * none)
        p = np.exp(z - z.max())
        p /= p.sum()
        return slip / len(z) + (1 - slip) * p

    def f(lam):
        r = lam - m0
        out = 0.5 * r @ P0 @ r
        for shown, k in groups:
            out -= np.log(probs(lam, list(shown))[k])
        return out

    lam = minimize(f, m0, method="BFGS", options={"gtol": 1e-10}).x
    H, eps = P0.copy(), 1e-6
    for shown, _ in groups:
        q = probs(lam, list(shown))
        J = np.array(
            [
                (probs(lam + eps * e, list(shown)) - probs(lam - eps * e, list(shown))) / (2 * eps)
                for e in np.eye(len(lam))
            ]
        ).T  # options x B
        H += (J.T / q) @ J
    return lam, H


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.1, 0.3]))
def test_group_posterior_matches_a_generic_optimiser(seed, slip):
    from personae import interview

    rng = np.random.default_rng(seed)
    b = 5
    t = tastes(b=b, seed=seed)
    t = Tastes(
        t.phi, t.offset, t.popularity, t.names, rng.random(b) * 0.3, np.diag(rng.random(b) + 0.1)
    )
    it = Interview(t, seed=seed, slip=slip, groups=3, group_size=3)
    given = []
    for _ in range(3):
        q = it.next_question()
        if not isinstance(q, GroupQuestion):  # no other group of these tastes to show
            break
        a = [*q, False][int(rng.integers(len(q) + 1))]
        it.answer(q, a)
        given.append((tuple(q), len(q) if a is False else list(q).index(a)))
    assert given
    lam, H = reference_choice_map(t, given, slip, interview.CHOICE_SCALE, interview.CHOICE_NONE)
    np.testing.assert_allclose(it.weights, lam, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(it.post.precision, H, rtol=1e-4, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(2, 6),
    st.sampled_from([0.0, 0.1, 0.3]),
    st.sampled_from(["item", "pair"]),
)
def test_choosing_a_taste_raises_its_weight(seed, b, slip, kind):
    """Choosing a shown taste raises its posterior weight, above its weight under any other
    answer; "none of these" lowers every shown taste's weight (independent prior tastes)."""
    rng = np.random.default_rng(seed)
    base = tastes(b=b, seed=seed)
    t = Tastes(
        base.phi,
        base.offset,
        base.popularity,
        base.names,
        rng.random(b),
        np.diag(rng.random(b) * 2 + 0.05),
    )
    size = int(rng.integers(1, b + 1))

    def after(choice):
        it = Interview(t, kind=kind, slip=slip, groups=1, group_size=size, seed=seed)
        q = it.next_question()
        it.answer(q, choice(q))
        return q, it.weights

    q, _ = after(lambda q: None)  # no opinion: the prior, untouched
    np.testing.assert_allclose(after(lambda q: None)[1], t.prior_mean)
    _, none = after(lambda q: False)
    assert (none[list(q)] < t.prior_mean[list(q)]).all()
    for c in q:
        _, w = after(lambda q, c=c: c)
        assert w[c] > t.prior_mean[c]
        for other in [*q, False]:
            if other is not c:
                assert w[c] > after(lambda q, o=other: o)[1][c]


def test_group_question_through_the_api():
    import json

    import personae

    t = tastes(b=6)
    it = Interview(t, groups=2, group_size=3, seed=1)
    q = it.next_question()
    assert isinstance(q, GroupQuestion) and len(q) == len(set(q)) == 3
    assert q.names == tuple(t.names[c] for c in q) and len(it.asked()) == 0
    for bad in (max(set(range(6)) - set(q)), True, 1.0, "1", -1):
        with pytest.raises(personae.InvalidInputError, match="not one of the tastes shown"):
            it.answer(q, bad)
    with pytest.raises(ValueError, match="not the question just asked"):
        it.answer(Question(q[0]), True)  # an item question with the same index is not it
    it.answer(q, q[1])
    q2 = it.next_question()
    assert isinstance(q2, GroupQuestion) and q2 != q  # the second shows other tastes
    it.answer(q2, False)
    q3 = it.next_question()
    assert isinstance(q3, Question)  # then items
    it.answer(q3, True)
    assert list(it.chosen()) == [q[1]] and list(it.liked()) == [q3]
    saved = it.to_json()
    again = Interview.from_json(t, saved)
    assert [(tuple(np.atleast_1d(x)), a) for x, a in again.answers] == [
        (tuple(np.atleast_1d(x)), a) for x, a in it.answers
    ]
    assert isinstance(again.answers[0][0], GroupQuestion)
    np.testing.assert_allclose(again.weights, it.weights)
    np.testing.assert_allclose(again.scores(), it.scores())
    d = json.loads(saved)
    assert d["answers"][0] == {"group": list(q), "choice": q[1]}
    assert d["answers"][1] == {"group": list(q2), "choice": False}
    for answer, match in [
        ({"group": list(q), "choice": 99}, "not one of the tastes shown"),
        ({"group": list(q), "choice": True}, "not one of the tastes shown"),
        ({"group": [0, 0], "choice": 0}, "distinct tastes"),
        ({"group": [0, 6], "choice": 0}, r"0\.\.5"),
        ({"group": [], "choice": None}, "must be"),
        ({"group": [0, 1]}, "must be"),
    ]:
        bad = dict(d, answers=[answer])
        with pytest.raises(personae.InvalidInputError, match=match):
            Interview.from_json(t, json.dumps(bad))
    # A version-2 state (item answers only) still resumes.
    old = dict(d, version=2, answers=d["answers"][2:])
    del old["groups"], old["group_size"]
    assert list(Interview.from_json(t, json.dumps(old)).liked()) == [q3]
    with pytest.raises(ValueError, match="group_size"):
        Interview(t, groups=1, group_size=7)
    with pytest.raises(ValueError, match="groups"):
        Interview(t, groups=-1)


def test_group_answers_fold_the_chosen_tastes_items_into_the_list(ampcf):
    """A chosen taste's most distinctive items (the model's own distinctive_items) join the
    fold-in as a soft history at GROUP_WEIGHT; the first question is computed once per model."""
    import scipy.sparse as sp

    from personae import interview
    from personae.interview import distinctive

    model, _ = ampcf
    n = model.n_items
    k = interview.GROUP_ITEMS
    np.testing.assert_array_equal(distinctive(model.base_tastes(), k), model.distinctive_items(k))
    it = Interview(model, groups=1, posterior_weight=0.5)
    q = it.next_question()
    assert isinstance(q, GroupQuestion)
    assert Interview(model, groups=1, seed=9).next_question() == q  # the same for everyone
    assert not isinstance(Interview(model, groups=0).next_question(), GroupQuestion)
    it.answer(q, q[0])
    items = model.distinctive_items(k)[q[0]]
    items = items[items >= 0]
    x = sp.csr_matrix(
        (np.full(len(items), interview.GROUP_WEIGHT), (np.zeros(len(items), int), items)),
        shape=(1, n),
    )
    post = it.phi @ it.weights + it.offset
    want = _standard(model.score(x)[0]) + 0.5 * _standard(post)
    np.testing.assert_allclose(it.scores(), want, rtol=1e-4, atol=1e-4)
    # "None of these" folds nothing in: the list is the posterior alone.
    none = Interview(model, groups=1)
    none.answer(none.next_question(), False)
    np.testing.assert_allclose(
        none.scores(), none.phi @ none.weights + none.offset, rtol=1e-4, atol=1e-4
    )


def test_liked_before_keeps_no_answers_on_the_list_and_asks_its_best_item(ampcf):
    """asks="liked-before" ("have you liked it?"): a "no" may be an item the user has not met
    yet, so only liked items leave the list (an item answered "no" can be listed, where
    "would-like" never lists an asked item), and "likely" questions ask the list's best pool
    item, its own top included."""
    model, _ = ampcf
    with pytest.raises(ValueError, match="asks must be one of"):
        Interview(model, asks="maybe")
    before = Interview(model, groups=0, slip=0.0)  # the default
    assert before.asks == "liked-before"
    would = Interview(model, groups=0, slip=0.0, asks="would-like")
    answers = [False, True, False, False, True, None, False]
    for a in answers:
        for it in (before, would):
            it.answer(it.next_question(), a)
    for it in (before, would):  # every next question is still new
        assert len(it.asked()) == len(answers)
    n = model.n_items
    ids_before = before.recommend(n)[0]
    ids_would = would.recommend(n)[0]
    # Every item but the liked ones is listed; "would-like" lists none of the asked ones.
    assert set(ids_before[ids_before >= 0].tolist()) == set(range(n)) - set(before.liked().tolist())
    assert not set(ids_would.tolist()) & set(would.asked().tolist())
    assert set(before.disliked().tolist()) <= set(ids_before.tolist())
    # The listed order is the scores' order over what is left.
    s = before.scores().astype(np.float64)
    s[before.liked()] = -np.inf
    top = before.recommend(5)[0]
    np.testing.assert_array_equal(s[top], np.sort(s)[::-1][:5])
    # "likely" asks the list's best pool item not asked yet, even inside the list's top.
    s = before.scores().astype(np.float64)
    s[before.asked()] = -np.inf
    q = int(before.next_question())
    free = [j for j in before.pool.tolist() if np.isfinite(s[j])]
    assert s[q] == max(s[j] for j in free)
    # Saved and resumed with its meaning; a state saved before "asks" existed is "would-like".
    again = Interview.from_json(model, before.to_json())
    assert again.asks == "liked-before"
    np.testing.assert_array_equal(again.recommend(10)[0], before.recommend(10)[0])
    import json

    old = json.loads(would.to_json())
    del old["asks"]
    resumed = Interview.from_json(model, json.dumps(old))
    assert resumed.asks == "would-like"
    np.testing.assert_array_equal(resumed.recommend(n)[0], ids_would)
    # Even the answers of a "liked-before" interview read without the setting as "would-like"
    # (that is what such a state was made with): every asked item leaves the list.
    old = json.loads(before.to_json())
    del old["asks"]
    resumed = Interview.from_json(model, json.dumps(old))
    assert resumed.asks == "would-like"
    listed = resumed.recommend(n)[0]
    assert not set(listed.tolist()) & set(resumed.asked().tolist())
    assert set(listed[listed >= 0].tolist()) == set(range(n)) - set(resumed.asked().tolist())
    bad = json.loads(before.to_json())
    bad["asks"] = "sometimes"
    import personae

    with pytest.raises(personae.InvalidInputError, match="asks must be one of"):
        Interview.from_json(model, json.dumps(bad))


def loop_group(it: Interview) -> list:
    """The group question's greedy choice as first written: one candidate at a time, each
    scored with ``choice_info`` and ``slogdet`` (the reference for the batched choice)."""
    from personae import interview as iv

    shown: list[int] = []
    m0 = it.post.m0
    cands = set(range(len(m0)))
    if iv.GROUP_MIN_SHARE > 0 and m0.sum() > 0:
        big = np.flatnonzero(m0 >= iv.GROUP_MIN_SHARE * m0.sum() / len(m0))
        if len(big) < it.group_size:
            big = np.argsort(-m0, kind="stable")[: it.group_size]
        cands = {int(c) for c in big}
    for _ in range(it.group_size):
        best, gain = -1, -np.inf
        for c in sorted(cands - set(shown)):
            W, b = it._choice_rows([*shown, c])
            G = it.post.choice_info(W, b, it.post.mean)
            g = np.linalg.slogdet(np.eye(G.shape[1]) + G.T @ it.post.cov @ G)[1]
            if g > gain:
                best, gain = c, g
        shown.append(best)
    return shown


def random_group_posterior(seed: int, b: int, slip: float) -> Interview:
    """An interview over `b` tastes with a random prior (correlated, positive mean) moved by a
    random posterior: no two candidate tastes tie."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((b, b))
    t = Tastes(
        phi=rng.standard_normal((30, b)),
        offset=np.zeros(30),
        popularity=np.ones(30),
        names=[str(k) for k in range(b)],
        prior_mean=rng.random(b) + 0.1,
        prior_cov=a @ a.T / b + np.eye(b) * 0.5,
    )
    it = Interview(t, groups=1, group_size=min(4, b), slip=slip)
    it.post.mean = it.post.m0 + rng.standard_normal(b) * rng.random(b)
    h = rng.standard_normal((b, b))
    it.post.cov = np.linalg.inv(it.post.P0 + h @ h.T * rng.random())
    return it


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12), st.sampled_from([0.0, 0.1, 0.3]))
def test_batched_group_choice_equals_the_loop(seed, b, slip):
    """The batched gains equal the loop's ``choice_info`` + ``slogdet`` for every candidate,
    and on posteriors without ties the batched greedy shows the same tastes as the loop."""
    it = random_group_posterior(seed, b, slip)
    shown = [int(c) for c in np.random.default_rng(seed).permutation(b)[: min(2, b - 1)]]
    free = np.setdiff1d(np.arange(b), shown)
    want = []
    for c in free:
        W, bb = it._choice_rows([*shown, int(c)])
        G = it.post.choice_info(W, bb, it.post.mean)
        want.append(np.linalg.slogdet(np.eye(G.shape[1]) + G.T @ it.post.cov @ G)[1])
    np.testing.assert_allclose(it._group_gains(shown, free), want, rtol=1e-9, atol=1e-12)
    assert list(it._pick_group()) == loop_group(it)


def test_group_tie_break_is_the_largest_prior_share_then_the_lowest_index():
    from personae.interview import _tie_break

    m0 = np.array([0.1, 0.3, 0.3, 0.2])
    c = np.arange(4)
    assert _tie_break(np.array([1.0, 1.0, 1.0, 1.0]), c, m0) == 1  # share, then index
    assert _tie_break(np.array([1.0, 1.0 - 1e-12, 1.0, 1.0]), c, m0) == 1  # rounding: a tie
    assert _tie_break(np.array([1.0, 1.0 - 1e-6, 1.0, 1.0]), c, m0) == 2  # a real difference
    assert _tie_break(np.array([2.0, 1.0, 1.0, 1.0]), c, m0) == 0  # the gain comes first
    # Candidates in any order; a NaN gain (taste 1) is never chosen: the tie goes to 2.
    assert _tie_break(np.array([1.0, 1.0, np.nan, 1.0]), c[[3, 2, 1, 0]], m0) == 2
    assert _tie_break(np.full(2, -np.inf), np.array([3, 2]), m0) == 2


@pytest.mark.parametrize("b", [5, 16, 64])
def test_first_group_question_at_the_prior_is_deterministic(b):
    """Before any answer every taste's first-slot gain is analytically the same (a weight in
    prior standard deviations): the first taste shown is the largest prior share, whatever the
    rounding. With a diagonal prior every slot ties: the group is the largest shares, in
    order (lowest index among equal shares), and scaling the prior does not change it."""
    rng = np.random.default_rng(b)
    m0 = rng.permutation(np.arange(1, b + 1)).astype(float)
    m0[m0 == m0.max()] = m0.max() - 1  # two tastes share the largest mean
    order = np.lexsort((np.arange(b), -m0))
    for scale in (1.0, 0.37, 3.1e3):
        sd = rng.random(b) + 0.5
        t = Tastes(
            phi=rng.standard_normal((20, b)),
            offset=np.zeros(20),
            popularity=np.ones(20),
            names=[str(k) for k in range(b)],
            prior_mean=m0 * scale,
            prior_cov=np.diag(sd**2) * scale,
        )
        q = Interview(t, groups=1).next_question()
        assert list(q) == list(order[:4])
    # A correlated prior: the first slot still ties exactly and goes to the largest share.
    a = rng.standard_normal((b, b))
    t = dataclasses.replace(t, prior_cov=a @ a.T / b + np.eye(b))
    assert Interview(t, groups=1).next_question()[0] == order[0]


def test_first_group_question_is_computed_once_per_model(ampcf, monkeypatch):
    model, _ = ampcf
    q = Interview(model).next_question()
    assert isinstance(q, GroupQuestion)
    calls = []
    real = Interview._pick_group
    monkeypatch.setattr(Interview, "_pick_group", lambda self: calls.append(1) or real(self))
    # Another user, another strategy, kind or pool: the same first group question, read back.
    for kw in ({"seed": 5}, {"strategy": "random"}, {"kind": "pair"}, {"pool": np.arange(50)}):
        again = Interview(model, **kw)
        assert tuple(again.next_question()) == tuple(q) and not calls
    again.answer(q, q[0])
    again.next_question()  # the second: computed (a group, or items when none is left)
    assert calls
    assert tuple(Interview(model, slip=0.2).next_question()) and len(calls) == 2  # other slip


def test_a_resumed_interview_has_the_live_posterior_and_next_question():
    """With slips the posterior can have several optima; the live interview refits from the
    last answer's optimum, so a resume refits answer by answer too (one fit of every answer
    from the prior landed on another optimum here: other weights, another next question)."""
    rng = np.random.default_rng(16)
    n, b = 60, 4
    t = Tastes(
        rng.standard_normal((n, b)),
        rng.standard_normal(n) * 0.3,
        rng.integers(1, 100, n).astype(float),
        [f"t{k}" for k in range(b)],
        np.abs(rng.standard_normal(b)),
        np.diag(rng.uniform(0.5, 2, b)),
    )
    it = Interview(t, groups=0)
    for a in [False, True, True, True, False, True, False, False]:
        it.answer(it.next_question(), a)
    back = Interview.from_json(t, it.to_json())
    np.testing.assert_allclose(back.weights, it.weights)
    assert back.next_question() == it.next_question()


def test_pair_direction_does_not_depend_on_how_a_tie_is_ordered():
    """The pair candidates' direction started from the largest diagonal entry of the
    covariance: with tied entries, rounding picked one or the other, and 30 iterations do not
    converge when the top eigenvalues are close, so a resumed interview could ask another
    pair. From a fixed start the direction follows the covariance: relabelling the tastes
    relabels it."""
    from personae.interview import _top_direction

    rng = np.random.default_rng(0)
    off = np.triu(rng.standard_normal((4, 4)) * 0.05, 1)
    cov = np.diag([18.0, 18.0, 17.9, 13.0]) + off + off.T  # tastes 0 and 1 tied
    perm = np.array([1, 0, 2, 3])  # swap the two tied tastes
    v = _top_direction(cov)
    w = _top_direction(cov[np.ix_(perm, perm)])
    np.testing.assert_allclose(np.abs(w), np.abs(v[perm]), atol=1e-9)


def test_answers_are_bools_or_none_by_identity():
    """0, 1 and 1.0 compare equal to the bools: a pair answered with item index 0 read as
    "the second"; numpy bools passed and then broke to_json."""
    t = tastes(n=50, b=3, seed=2)
    for kind in ("item", "pair"):
        it = Interview(t, kind=kind, groups=0)
        q = it.next_question()
        for bad in (0, 1, 1.0, np.int64(1), "yes"):
            with pytest.raises(TypeError, match="liked must be True, False or None"):
                it.answer(q, bad)
        it.answer(q, np.True_)
        assert it.answers[-1][1] is True
        Interview.from_json(t, it.to_json())  # the state serialises


def test_first_question_cache_tells_exploration_schedules_apart():
    t = tastes(n=80, b=3, seed=3)
    explored = Interview(t, groups=0, explore_every=1).next_question()
    fresh = tastes(n=80, b=3, seed=3)
    plain = Interview(fresh, groups=0, explore_every=0).next_question()  # cached first
    assert plain != explored  # the two schedules ask different first questions here
    assert Interview(fresh, groups=0, explore_every=1).next_question() == explored


def test_a_group_question_is_never_asked_twice():
    """With as many tastes as a group shows, every group question is the same tastes again;
    answered again it counted one choice as new evidence. The interview moves on to items."""
    t = tastes(n=40, b=3, seed=4)
    it = Interview(t, groups=3, group_size=3)
    q = it.next_question()
    assert isinstance(q, GroupQuestion)
    it.answer(q, q[0])
    q2 = it.next_question()
    assert not isinstance(q2, GroupQuestion)
    it.answer(q2, True)
    back = Interview.from_json(t, it.to_json())
    assert back.next_question() == it.next_question()
    # "No opinion" answers nothing: the same group, still the best question, is asked again.
    again = Interview(t, groups=3, group_size=3)
    q = again.next_question()
    again.answer(q, None)
    assert again.next_question() == q


def test_tastes_and_saved_states_are_checked_by_name():
    """Found by a review: an asymmetric prior covariance passed (eigvalsh reads one triangle),
    NaN in prior_mean or popularity failed later in the core, a 1-D phi failed unpacking; a
    ragged pool, a string slip or None raised numpy's or json's own errors."""
    import json

    import personae

    good = dict(
        phi=np.ones((30, 3)),
        offset=np.zeros(30),
        popularity=np.ones(30),
        names=["a", "b", "c"],
        prior_mean=np.zeros(3),
        prior_cov=np.eye(3),
    )
    for change, match in (
        ({"prior_cov": np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1.0]])}, "symmetric"),
        ({"prior_mean": np.array([np.nan, 0, 0])}, r"\['prior_mean'\] must be finite"),
        ({"popularity": np.full(30, np.nan)}, r"\['popularity'\] must be finite"),
        ({"phi": np.ones(30)}, "phi must be 2-D"),
    ):
        with pytest.raises(ValueError, match=match):
            Tastes(**{**good, **change})
    t = tastes(n=30, b=3, seed=7)
    it = Interview(t, groups=0)
    it.answer(it.next_question(), True)
    saved = json.loads(it.to_json())
    for change in ({"pool": [[1, 2], [3]]}, {"slip": "x"}):
        with pytest.raises(personae.InvalidInputError, match="saved interview"):
            Interview.from_json(t, json.dumps({**saved, **change}))
    with pytest.raises(personae.InvalidInputError, match="saved interview"):
        Interview.from_json(t, None)
