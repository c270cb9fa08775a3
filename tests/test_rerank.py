"""The Rust calibrated reranker against the slow Python reference, brute force and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import personae
from personae import CalibratedReranker

import reference_calibrate as ref


def genre_flags(rng, n_items, n_cats, empty_share=0.0):
    flags = (rng.random((n_items, n_cats)) < 0.3).astype(np.float32)
    flags[np.arange(n_items), rng.integers(0, n_cats, n_items)] = 1
    flags[rng.random(n_items) < empty_share] = 0  # items without category
    return flags


@st.composite
def problems(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_items = draw(st.integers(1, 30))
    n_cats = draw(st.integers(1, 6))
    b = draw(st.integers(0, 5))
    c = draw(st.integers(1, 12))
    flags = genre_flags(rng, n_items, n_cats, draw(st.sampled_from([0.0, 0.2])))
    cand = np.array([rng.permutation(max(n_items, c))[:c] for _ in range(b)], dtype=np.int64)
    cand = cand.reshape(b, c)
    cand[cand >= n_items] = -1
    cand[rng.random((b, c)) < draw(st.sampled_from([0.0, 0.2]))] = -1
    kind = draw(st.sampled_from(["normal", "ties", "near 1e4"]))
    if kind == "normal":
        scores = rng.standard_normal((b, c)).astype(np.float32)
    elif kind == "ties":
        scores = rng.integers(0, 3, (b, c)).astype(np.float32)
    else:
        # Raw scores whose f32 rounding (~1e-3) is as large as their gaps: where the Rust
        # greedy's f32 first pass alone would choose wrongly.
        scores = (10_000 + rng.integers(0, 8, (b, c)) * 1e-3).astype(np.float32)
    scores[cand < 0] = -np.inf
    use_history = draw(st.booleans())
    if use_history:
        h = (rng.random((b, n_items)) < 0.3) * rng.random((b, n_items))
        history, p = sp.csr_matrix(h.astype(np.float32)), None
    else:
        raw = rng.random((b, n_cats)) * (rng.random((b, n_cats)) < 0.7)
        s = raw.sum(1, keepdims=True)
        history, p = None, np.divide(raw, s, out=np.zeros_like(raw), where=s > 0)
        p = p.astype(np.float32)
    params = {
        "lam": draw(st.sampled_from([0.0, 0.2, 0.5, 0.9, 0.99, 1.0])),
        "smoothing": draw(st.sampled_from([0.01, 0.1, 0.5])),
        "normalize": draw(st.sampled_from(["none", "minmax", "softmax"])),
        "rank_weighting": draw(st.booleans()),
    }
    n = draw(st.integers(1, 15))
    return flags, cand, scores, history, p, params, n


def check_against_reference(flags, cand, scores, history, p, params, n):
    rr = CalibratedReranker(sp.csr_matrix(flags), **params)
    out = rr.rerank(cand, scores, history=history, p=p, n=n)
    cats = ref.normalise_rows(flags)
    pt = ref.target(cats, history, p)
    assert np.allclose(rr.target(history=history, p=p), pt, atol=1e-6)
    kw = {"alpha": params["smoothing"], "rank_weighting": params["rank_weighting"]}
    kw["normalize"] = params["normalize"]
    for u in range(cand.shape[0]):
        want, before, after = ref.rerank_user(
            cand[u], scores[u], pt[u], cats, n, params["lam"], **kw
        )
        got = [int(i) for i in out.ids[u] if i >= 0]
        assert out.ckl_before[u] == pytest.approx(before, rel=1e-6, abs=1e-9, nan_ok=True)
        valid = cand[u][cand[u] >= 0]
        assert len(got) == min(n, valid.size)
        assert len(set(got)) == len(got)
        assert set(got) <= set(valid.tolist())
        assert (out.ids[u, len(got) :] == -1).all()
        assert np.isneginf(out.scores[u, len(got) :]).all()
        score_of = dict(zip(cand[u].tolist(), scores[u].tolist(), strict=True))
        assert out.scores[u, : len(got)].tolist() == [score_of[i] for i in got]
        if got == want:
            assert out.ckl_after[u] == pytest.approx(after, rel=1e-6, abs=1e-9, nan_ok=True)
            continue
        # Lists may differ only at an exact tie of the objective (up to rounding).
        k = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        rel = ref.normalise(scores[u][cand[u] >= 0], params["normalize"])
        rel_of = dict(zip(valid.tolist(), rel, strict=True))
        obj = [
            ref.objective(got[:k] + [x], rel_of, pt[u], cats, params["lam"], **_ow(params))
            for x in (got[k], want[k])
        ]
        assert obj[0] == pytest.approx(obj[1], rel=1e-9, abs=1e-12), (got, want)


def _ow(params):
    return {"alpha": params["smoothing"], "rank_weighting": params["rank_weighting"]}


@settings(max_examples=300, deadline=None)
@given(problems())
def test_matches_reference(prob):
    check_against_reference(*prob)


@settings(max_examples=50, deadline=None)
@given(problems())
def test_lambda_zero_is_relevance_order(prob):
    flags, cand, scores, history, p, params, n = prob
    params = dict(params, lam=0.0)
    out = CalibratedReranker(sp.csr_matrix(flags), **params).rerank(
        cand, scores, history=history, p=p, n=n
    )
    for u in range(cand.shape[0]):
        valid = np.flatnonzero(cand[u] >= 0)
        order = valid[np.lexsort((valid, -scores[u, valid].astype(np.float64)))][:n]
        assert out.ids[u, : order.size].tolist() == cand[u, order].tolist()
        assert (out.ids[u, order.size :] == -1).all()
    np.testing.assert_array_equal(out.ckl_before, out.ckl_after)


def test_greedy_never_beats_brute_force():
    rng = np.random.default_rng(7)
    gaps = []
    for trial in range(150):
        n_items, n_cats = 12, int(rng.integers(2, 5))
        flags = genre_flags(rng, n_items, n_cats)
        c = int(rng.integers(2, 9))
        n = int(rng.integers(1, 4))
        lam = float(rng.choice([0.3, 0.5, 0.8, 0.95]))
        rw = bool(trial % 2)
        cand = rng.permutation(n_items)[:c][None, :]
        scores = rng.random((1, c)).astype(np.float32)
        p = rng.dirichlet(np.ones(n_cats))[None, :].astype(np.float32)
        rr = CalibratedReranker(sp.csr_matrix(flags), lam=lam, rank_weighting=rw)
        got = rr.rerank(cand, scores, p=p, n=n).ids[0]
        cats = ref.normalise_rows(flags)
        pt = ref.target(cats, p=p)[0]
        rel_of = dict(zip(cand[0].tolist(), ref.normalise(scores[0], "minmax"), strict=True))
        kw = {"alpha": 0.01, "rank_weighting": rw}
        k = min(n, c)
        best = max(
            ref.objective(list(lst), rel_of, pt, cats, lam, **kw)
            for lst in itertools.permutations(cand[0].tolist(), k)
        )
        mine = ref.objective(got[:k].tolist(), rel_of, pt, cats, lam, **kw)
        assert mine <= best + 1e-12
        gaps.append(best - mine)
    gaps = np.array(gaps)
    print(
        f"greedy vs brute force over {gaps.size} tiny problems: mean gap {gaps.mean():.2e}, "
        f"max {gaps.max():.2e}, optimal in {(gaps < 1e-12).mean():.0%}"
    )


def test_n_larger_than_candidates_pads():
    flags = np.eye(3, dtype=np.float32)
    rr = CalibratedReranker(sp.csr_matrix(flags), lam=0.5)
    out = rr.rerank(np.array([[2, 0, -1]]), np.array([[0.1, 0.9, -np.inf]]), p=[[0.5, 0.5, 0]], n=5)
    assert out.ids.tolist() == [[0, 2, -1, -1, -1]]
    assert np.isneginf(out.scores[0, 2:]).all()


def test_restores_minority_interest_and_metrics():
    # Items 0-7 drama, 8-9 documentary; history 70% drama / 30% documentary.
    flags = np.zeros((10, 2), dtype=np.float32)
    flags[:8, 0] = 1
    flags[8:, 1] = 1
    history = sp.csr_matrix(np.r_[np.ones(7), 0, 1.5, 1.5][None, :].astype(np.float32))
    cand = np.arange(10)[None, :]
    scores = np.linspace(1, 0.1, 10, dtype=np.float32)[None, :]
    rr = CalibratedReranker(sp.csr_matrix(flags), lam=0.9)
    plain = rr.rerank(cand, scores, history=history, n=5, lam=0.0)
    cal = rr.rerank(cand, scores, history=history, n=5)
    assert plain.ids.tolist() == [[0, 1, 2, 3, 4]]
    assert {8, 9} & set(cal.ids[0].tolist())
    assert cal.ckl_after[0] < cal.ckl_before[0]
    mir = personae.metrics.minority_interest_recall
    assert mir(plain.ids, flags, history=history).tolist() == [0.0]
    assert mir(cal.ids, flags, history=history).tolist() == [1.0]
    np.testing.assert_allclose(
        personae.metrics.miscalibration(cal.ids, flags, history=history), cal.ckl_after
    )
    assert personae.metrics.category_coverage(cal.ids, flags, history=history).tolist() == [1.0]
    summary = personae.metrics.calibration(cal.ids, flags, history=history)
    assert summary["minority_recall"] == 1.0


def test_metrics_match_reference():
    rng = np.random.default_rng(3)
    flags = genre_flags(rng, 40, 6)
    history = sp.csr_matrix((rng.random((30, 40)) < 0.2).astype(np.float32))
    ids = np.stack([rng.permutation(40)[:10] for _ in range(30)])
    ids[rng.random(ids.shape) < 0.1] = -1
    rr = CalibratedReranker(sp.csr_matrix(flags))
    cats = ref.normalise_rows(flags)
    pt = ref.target(cats, history)
    want = [ref.ckl(ids[u], pt[u], cats, 0.01) for u in range(30)]
    np.testing.assert_allclose(rr.miscalibration(ids, history=history), want, rtol=1e-9)
    np.testing.assert_array_equal(
        rr.interest_recall(ids, history=history), ref.interest_recall(ids, pt, cats)
    )
    np.testing.assert_array_equal(
        personae.metrics.category_coverage(ids, flags, history=history),
        ref.interest_recall(ids, pt, cats, 0.0, False),
    )


def test_threads_and_determinism():
    rng = np.random.default_rng(5)
    flags = genre_flags(rng, 200, 8)
    history = sp.csr_matrix((rng.random((300, 200)) < 0.1).astype(np.float32))
    cand = np.stack([rng.permutation(200)[:50] for _ in range(300)])
    scores = rng.standard_normal(cand.shape).astype(np.float32)
    rr = CalibratedReranker(sp.csr_matrix(flags), lam=0.6)
    a = rr.rerank(cand, scores, history=history, n=10, num_threads=1)
    b = rr.rerank(cand, scores, history=history, n=10, num_threads=2)
    c = rr.rerank(cand, scores, history=history, n=10)
    for x, y in ((a, b), (a, c)):
        for f in x._fields:
            np.testing.assert_array_equal(getattr(x, f), getattr(y, f))


def test_normalize_rows_and_rank_weighting():
    flags = sp.csr_matrix(np.array([[1, 1, 1], [0, 1, 0]], dtype=np.float32))
    rr = CalibratedReranker(flags)
    only_item_0 = sp.csr_matrix(np.array([[1, 0]], dtype=np.float32))
    np.testing.assert_allclose(rr.target(history=only_item_0)[0], [1 / 3] * 3, rtol=1e-6)
    with pytest.raises(ValueError, match="item 0 sums to 3"):
        CalibratedReranker(flags, normalize_rows=False)
    rw = CalibratedReranker(flags, rank_weighting=True)
    # Rank weighting: the second item weighs 1/log2(3).
    w1 = 1 / np.log2(3)
    q = (np.array([1 / 3] * 3) + w1 * np.array([0, 1, 0])) / (1 + w1)
    p = np.array([0.6, 0.2, 0.2])
    qt = 0.99 * q + 0.01 * p
    want = float((p * np.log(p / qt)).sum())
    got = rw.miscalibration([[0, 1]], p=p[None, :].astype(np.float32))
    assert got[0] == pytest.approx(want, rel=1e-5)


def test_dataframe_helper():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    flags = genre_flags(rng, 30, 4)
    history = sp.csr_matrix((rng.random((5, 30)) < 0.3).astype(np.float32))
    cand = np.stack([rng.permutation(30)[:8] for _ in range(5)])
    scores = rng.standard_normal(cand.shape).astype(np.float32)
    users = [4, 1, 3]
    df = pd.DataFrame(
        {
            "u": np.repeat(users, 8),
            "i": cand[users].ravel(),
            "s": scores[users].ravel(),
        }
    ).sample(frac=1.0, random_state=0)
    rr = CalibratedReranker(sp.csr_matrix(flags), lam=0.7)
    out = rr.rerank_dataframe(df, "u", "i", "s", history=history, n=4)
    full = rr.rerank(cand, scores, history=history, n=4)
    assert sorted(out["u"].unique().tolist()) == sorted(users)
    for u in users:
        rows = out[out["u"] == u].sort_values("rank")
        # Shuffled rows change the input order, which only matters at exact ties.
        assert rows["i"].tolist() == full.ids[u].tolist()
        assert rows["rank"].tolist() == [1, 2, 3, 4]
    # The frame carries the C_KL of the plain and the reranked lists of the users it served.
    np.testing.assert_array_equal(out.attrs["users"], sorted(users))
    plain = np.stack([cand[u][np.argsort(-scores[u], kind="stable")][:4] for u in sorted(users)])
    np.testing.assert_allclose(
        out.attrs["ckl_before"], rr.miscalibration(plain, history=history[sorted(users)])
    )
    np.testing.assert_allclose(
        out.attrs["ckl_after"],
        rr.miscalibration(full.ids[sorted(users)], history=history[sorted(users)]),
    )
    out2 = personae.rerank.rerank_dataframe(df, rr, "u", "i", "s", history=history, n=4)
    pd.testing.assert_frame_equal(out, out2)


# -- bad input --------------------------------------------------------------------------------


@pytest.fixture
def rr():
    return CalibratedReranker(sp.csr_matrix(np.eye(4, dtype=np.float32)), lam=0.5)


P = np.full((1, 4), 0.25, dtype=np.float32)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"lam": 1.5}, ValueError, r"lambda must lie in \[0, 1\]"),
        ({"lam": -0.1}, ValueError, r"lambda must lie in \[0, 1\]"),
        ({"lam": "a"}, TypeError, "lam must be a number"),
        ({"smoothing": 0.0}, ValueError, r"smoothing must lie in \(0, 1\)"),
        ({"smoothing": 1.0}, ValueError, r"smoothing must lie in \(0, 1\)"),
        ({"normalize": "zscore"}, ValueError, "normalize must be 'none', 'minmax' or 'softmax'"),
        ({"prior_weight": 1.0}, ValueError, r"prior_weight must lie in \[0, 1\)"),
        ({"prior": [1.0]}, ValueError, "prior: must hold 4 finite non-negative weights"),
        ({"min_history": -1}, ValueError, "min_history must be >= 0"),
    ],
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        CalibratedReranker(sp.csr_matrix(np.eye(4)), **kwargs)


def test_pickles_by_its_arguments():
    import pickle

    rr = CalibratedReranker({"a": np.eye(3), "b": np.eye(3)[:, :2]}, lam={"a": 0.3, "b": 0.2})
    back = pickle.loads(pickle.dumps(rr))
    cand, scores = np.array([[0, 1, 2]]), np.array([[0.3, 0.2, 0.1]], np.float32)
    p = {"a": np.array([[0.2, 0.2, 0.6]], np.float32), "b": np.array([[0.5, 0.5]], np.float32)}
    np.testing.assert_array_equal(
        back.rerank(cand, scores, p=p).ids, rr.rerank(cand, scores, p=p).ids
    )


def test_alpha_is_a_deprecated_name_for_smoothing():
    with pytest.warns(DeprecationWarning, match="smoothing"):
        rr = CalibratedReranker(np.eye(4), alpha=0.1)
    assert rr.smoothing == 0.1 and rr.alpha == 0.1
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="smoothing must lie"):
        CalibratedReranker(np.eye(4), alpha=0.0)


def test_item_category_errors():
    with pytest.raises(TypeError, match="scipy.sparse"):
        CalibratedReranker("genres")
    with pytest.raises(ValueError, match="item 1 has a negative"):
        CalibratedReranker(sp.csr_matrix(np.array([[1.0, 0], [-1, 2]])))
    with pytest.raises(ValueError, match="NaN"):
        CalibratedReranker(sp.csr_matrix(np.array([[np.nan, 1.0]])))
    with pytest.raises(ValueError, match="item 0 sums to"):
        CalibratedReranker(sp.csr_matrix(np.array([[0.5, 0.6]])), normalize_rows=False)
    with pytest.raises(ValueError, match="same 3 items"):
        CalibratedReranker({"a": np.eye(3), "b": np.eye(4)})
    with pytest.raises(ValueError, match="sum to at most 1"):
        CalibratedReranker({"a": np.eye(3), "b": np.eye(3)}, lam={"a": 0.6, "b": 0.6})
    with pytest.raises(ValueError, match="exactly the attributes"):
        CalibratedReranker({"a": np.eye(3), "b": np.eye(3)}, lam={"a": 0.6})


@pytest.mark.parametrize(
    ("cand", "scores", "kw", "exc", "match"),
    [
        ([[0, 4]], [[1.0, 2.0]], {}, ValueError, r"row 0, column 1 has item id 4, outside 0..4"),
        ([[0, -3]], [[1.0, 2.0]], {}, ValueError, "outside"),
        ([[0, 1]], [[1.0, np.nan]], {}, ValueError, r"scores: row 0, column 1 is NaN"),
        ([[0, 1]], [[1.0, np.inf]], {}, ValueError, "must be finite"),
        ([[0, 0]], [[1.0, 2.0]], {}, ValueError, "item 0 more than once"),
        ([[0, 1]], [[1.0]], {}, ValueError, "scores has shape"),
        ([0, 1], [1.0, 2.0], {}, TypeError, "must be 2-D"),
        ([[0.0, 1.0]], [[1.0, 2.0]], {}, TypeError, "integer item indices"),
        ([[0, 1]], [["a", "b"]], {}, TypeError, "scores must hold numbers"),
        ([[0, 1]], [[1.0, 2.0]], {"n": 0}, ValueError, "n must be a positive integer"),
        ([[0, 1]], [[1.0, 2.0]], {"n": 2**40}, MemoryError, "would need"),
        ([[0, 1]], [[1.0, 2.0]], {"lam": 2.0}, ValueError, r"lambda must lie in \[0, 1\]"),
        ([[0, 1]], [[1.0, 2.0]], {"num_threads": 0}, ValueError, "num_threads"),
        ([[0, 1]], [[1.0, 2.0]], {"p": None}, ValueError, "exactly one of"),
        ([[0, 1]], [[1.0, 2.0]], {"p": P[:, :3]}, ValueError, r"shape \(1, 3\), expected \(1, 4\)"),
        ([[0, 1]], [[1.0, 2.0]], {"p": P * 2}, ValueError, "row 0 sums to"),
        ([[0, 1]], [[1.0, 2.0]], {"p": -P}, ValueError, "non-negative"),
    ],
)
def test_rerank_errors(rr, cand, scores, kw, exc, match):
    kw = {"p": P, **kw}
    with pytest.raises(exc, match=match):
        rr.rerank(np.array(cand), np.array(scores), **kw)


def test_history_errors(rr):
    c, s = np.array([[0, 1]]), np.array([[1.0, 2.0]])
    with pytest.raises(ValueError, match="exactly one of"):
        rr.rerank(c, s, history=sp.csr_matrix((1, 4)), p=P)
    with pytest.raises(ValueError, match="history has 5 columns"):
        rr.rerank(c, s, history=sp.csr_matrix((1, 5)))
    with pytest.raises(ValueError, match="history has 2 rows"):
        rr.rerank(c, s, history=sp.csr_matrix((2, 4)))
    with pytest.raises(TypeError, match="scipy.sparse"):
        rr.rerank(c, s, history=np.ones((1, 4)))
    neg = sp.csr_matrix(np.array([[0, -1.0, 0, 0]]))
    with pytest.raises(ValueError, match="history: row 0 has a negative weight"):
        rr.rerank(c, s, history=neg)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        rr.interest_recall(c, p=P, threshold=2)


def test_cli_rerank(tmp_path):
    pd = pytest.importorskip("pandas")
    from personae.cli import main

    # Users "a" (drama 70% / doc 30%) and "b"; item ids are strings, categories long format.
    cats = pd.DataFrame(
        {
            "item": [f"m{i}" for i in range(10)] + ["m3"],
            "category": ["drama"] * 8 + ["doc"] * 2 + ["doc"],
        }
    )
    hist = pd.DataFrame({"user": ["a"] * 4 + ["b"], "item": ["m0", "m1", "m8", "m2", "m9"]})
    cand = pd.DataFrame(
        {
            "user": ["a"] * 10 + ["b"] * 3,
            "item": [f"m{i}" for i in range(10)] + ["m0", "m1", "m9"],
            "score": list(np.linspace(1, 0.1, 10)) + [0.9, 0.8, 0.1],
        }
    )
    for name, df in (("cats", cats), ("hist", hist), ("cand", cand)):
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    out = tmp_path / "out.csv"
    args = [
        "rerank",
        "--candidates",
        str(tmp_path / "cand.csv"),
        "--history",
        str(tmp_path / "hist.csv"),
        "--categories",
        str(tmp_path / "cats.csv"),
        "--out",
        str(out),
        "--n",
        "3",
        "--lam",
        "0.9",
    ]
    assert main(args) == 0
    res = pd.read_csv(out)
    assert res.groupby("user").size().to_dict() == {"a": 3, "b": 3}
    a = res[res["user"] == "a"].sort_values("rank")
    assert a["rank"].tolist() == [1, 2, 3]
    assert {"m8", "m9", "m3"} & set(a["item"])  # a documentary made it in
    b = res[res["user"] == "b"].sort_values("rank")
    assert b["item"].iloc[0] == "m9"  # b only watches documentaries
    assert main([*args[:-2], "--lam", "1.5"]) == 1


def test_plot_calibration(tmp_path):
    pytest.importorskip("matplotlib")
    from personae import plot

    rng = np.random.default_rng(2)
    flags = genre_flags(rng, 40, 5)
    history = sp.csr_matrix((rng.random((6, 40)) < 0.3).astype(np.float32))
    cand = np.stack([rng.permutation(40)[:20] for _ in range(6)])
    scores = rng.standard_normal(cand.shape).astype(np.float32)
    rr = CalibratedReranker(sp.csr_matrix(flags), lam=0.8)
    plain = rr.rerank(cand, scores, history=history, n=5, lam=0.0).ids
    cal = rr.rerank(cand, scores, history=history, n=5).ids
    out = plot.calibration(
        rr, history, plain, cal, tmp_path / "c.png", user=2, category_names="ABCDE"
    )
    assert (tmp_path / "c.png").stat().st_size > 1000 and out.endswith("c.png")
    with pytest.raises(ValueError, match="user must lie"):
        plot.calibration(rr, history, plain, cal, tmp_path / "d.png", user=6)


def test_min_history_and_prior():
    rng = np.random.default_rng(4)
    flags = genre_flags(rng, 30, 4)
    h = (rng.random((6, 30)) < 0.2).astype(np.float32)
    h[0] = 0
    h[0, :2] = 1  # user 0: two interactions
    history = sp.csr_matrix(h)
    cand = np.stack([rng.permutation(30)[:12] for _ in range(6)])
    scores = rng.standard_normal(cand.shape).astype(np.float32)
    plain = CalibratedReranker(sp.csr_matrix(flags), lam=0.0).rerank(
        cand, scores, history=history, n=5
    )
    rr = CalibratedReranker(sp.csr_matrix(flags), lam=0.95, min_history=3)
    out = rr.rerank(cand, scores, history=history, n=5)
    assert out.ids[0].tolist() == plain.ids[0].tolist()  # passes through
    assert np.isnan(out.ckl_before[0])  # no target: C_KL undefined
    # Prior: equivalent to giving p~ = beta p0 + (1 - beta) p directly.
    beta = 0.3
    rp = CalibratedReranker(sp.csr_matrix(flags), lam=0.8, prior_weight=beta)
    p = CalibratedReranker(sp.csr_matrix(flags)).target(history=history)
    p0 = ref.normalise_rows(flags).sum(0) / ref.normalise_rows(flags).sum()
    np.testing.assert_allclose(rp.prior, p0, rtol=1e-9)
    p_tilde = np.where(p.sum(1, keepdims=True) > 0, beta * p0 + (1 - beta) * p, 0)
    np.testing.assert_allclose(rp.target(history=history), p_tilde, rtol=1e-9)
    want = rp.rerank(cand, scores, p=p_tilde.astype(np.float32), n=5)
    got = rp.rerank(cand, scores, history=history, n=5)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.ckl_after, want.ckl_after, rtol=1e-6)


def test_plot_is_reachable_from_the_package(tmp_path):
    import personae as pk

    hist = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.float32))
    cats = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    rr = pk.CalibratedReranker(cats)
    ids = np.array([[0, 2], [3, 1]])
    out = pk.plot.calibration(rr, hist, ids, ids, tmp_path / "c.png", user=1)
    assert (tmp_path / "c.png").stat().st_size > 0 and str(out).endswith("c.png")
    with pytest.raises(AttributeError, match="no attribute"):
        pk.nonexistent  # noqa: B018


@st.composite
def two_attribute_problems(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_items = draw(st.integers(1, 20))
    b, c = draw(st.integers(1, 4)), draw(st.integers(1, 10))
    flags = [genre_flags(rng, n_items, draw(st.integers(1, 5))) for _ in range(2)]
    cand = np.array([rng.permutation(max(n_items, c))[:c] for _ in range(b)], dtype=np.int64)
    cand[cand >= n_items] = -1
    scores = rng.integers(0, 4, (b, c)).astype(np.float32)  # ties
    scores[cand < 0] = -np.inf
    history = sp.csr_matrix(((rng.random((b, n_items)) < 0.4) * 1.0).astype(np.float32))
    la = draw(st.sampled_from([0.0, 0.2, 0.5]))
    lams = (la, draw(st.sampled_from([0.0, 0.3, 0.5])))
    return flags, cand, scores, history, lams, draw(st.integers(1, 8))


@settings(max_examples=150, deadline=None)
@given(two_attribute_problems())
def test_several_attributes_match_reference(prob):
    """Two category attributes, each with its own lambda and KL term, against the slow
    reference greedy that recomputes the whole objective."""
    flags, cand, scores, history, lams, n = prob
    rr = CalibratedReranker(
        {"genre": flags[0], "decade": flags[1]},
        lam=dict(zip(["genre", "decade"], lams, strict=True)),
    )
    out = rr.rerank(cand, scores, history=history, n=n)
    cats = [ref.normalise_rows(f) for f in flags]
    ps = [ref.target(c, history) for c in cats]
    targets = rr.target(history=history)
    for a, p in zip(("genre", "decade"), ps, strict=True):
        np.testing.assert_allclose(targets[a], p, atol=1e-9)
    for u in range(cand.shape[0]):
        got = [int(i) for i in out.ids[u] if i >= 0]
        want = ref.rerank_user_multi(cand[u], scores[u], [p[u] for p in ps], cats, n, lams, 0.01)
        if got != want:
            # Lists may differ only at an exact tie of the objective (up to rounding).
            k = next(i for i, (x, y) in enumerate(zip(got, want, strict=True)) if x != y)
            valid = cand[u][cand[u] >= 0]
            rel = ref.normalise(scores[u][cand[u] >= 0], "minmax")
            rel_of = dict(zip(valid.tolist(), rel, strict=True))
            pu = [p[u] for p in ps]
            obj = [
                ref.objective_multi(got[:k] + [x], rel_of, pu, cats, lams, 0.01)
                for x in (got[k], want[k])
            ]
            assert obj[0] == pytest.approx(obj[1], rel=1e-9, abs=1e-12), (got, want)
        for a, (p, c) in enumerate(zip(ps, cats, strict=True)):
            name = ("genre", "decade")[a]
            assert out.ckl_after[name][u] == pytest.approx(
                ref.ckl(out.ids[u], p[u], c, 0.01), rel=1e-6, abs=1e-9, nan_ok=True
            )


def test_cli_rerank_with_two_attributes(tmp_path):
    pd = pytest.importorskip("pandas")
    from personae.cli import main

    items = [f"m{i}" for i in range(8)]
    genre = pd.DataFrame({"item": items, "category": ["drama"] * 6 + ["doc"] * 2})
    decade = pd.DataFrame({"item": items, "category": ["1990s", "2010s"] * 4})
    hist = pd.DataFrame({"user": ["a"] * 4, "item": ["m0", "m6", "m1", "m3"]})
    cand = pd.DataFrame({"user": ["a"] * 8, "item": items, "score": np.linspace(1, 0.1, 8)})
    for name, df in (("genre", genre), ("decade", decade), ("hist", hist), ("cand", cand)):
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    out = tmp_path / "out.csv"
    args = ["rerank", "--candidates", str(tmp_path / "cand.csv"), "--history"]
    args += [str(tmp_path / "hist.csv"), "--out", str(out), "--n", "4"]
    args += ["--categories", str(tmp_path / "genre.csv"), "--lam", "0.4"]
    args += ["--categories", str(tmp_path / "decade.csv"), "--lam", "0.4"]
    assert main(args) == 0
    res = pd.read_csv(out).sort_values("rank")
    assert "doc" in set(genre.set_index("item").loc[res["item"], "category"])
    assert main(args + ["--lam", "0.1"]) == 1  # three lambdas for two attributes


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_lists_do_not_depend_on_unused_catalogue_items(seed, rank_weighting):
    """The greedy takes every key of the catalogue as a term when the catalogue has few
    (category, weight) keys, and looks up only the candidates' keys otherwise: the same
    problem, once in a small catalogue and once with 400 extra items that bring hundreds of
    new weights (which no candidate uses), must give the same bits either way."""
    rng = np.random.default_rng(seed)
    # The sizes pick the two paths (greedy.rs: every key a term when the catalogue's keys plus
    # categories are at most the keys a user's candidates reference): the small catalogue has
    # at most 8 x 8 keys + 8 categories against ~150 references from 50 candidates, the big one
    # over a thousand keys.
    n_items, n_cats, users, width = 60, 8, 20, 50
    flags = genre_flags(rng, n_items, n_cats)
    extra = rng.integers(1, 50, (400, n_cats)) * (rng.random((400, n_cats)) < 0.5)
    big = np.vstack([flags, extra.astype(np.float32)])
    cand = np.stack([rng.permutation(n_items)[:width] for _ in range(users)]).astype(np.int64)
    scores = rng.integers(0, 4, cand.shape).astype(np.float32)  # ties
    h = (rng.random((users, n_items)) < 0.2) * rng.random((users, n_items))
    history = sp.csr_matrix(h.astype(np.float32))
    same_lists_in((flags, big), cand, scores, history, lam=0.7, rank_weighting=rank_weighting)


def same_lists_in(catalogues, cand, scores, history, **kw):
    """Reranks the same problem over each catalogue (the first one's items first in every
    catalogue; the history padded to each): the lists, scores and C_KL must be the same bits."""
    outs = []
    for m in catalogues:
        rr = CalibratedReranker(sp.csr_matrix(m), normalize_rows=True, **kw)
        extra = sp.csr_matrix((history.shape[0], m.shape[0] - history.shape[1]))
        outs.append(rr.rerank(cand, scores, history=sp.hstack([history, extra]).tocsr(), n=10))
    for out in outs[1:]:
        assert np.array_equal(out.ids, outs[0].ids)
        assert np.array_equal(out.scores, outs[0].scores)
        assert np.array_equal(out.ckl_after, outs[0].ckl_after)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_one_item_with_every_category_changes_no_list(seed):
    """The greedy's all-keys path pads every signature's terms to the longest one; one item
    with every category among thousands of 3-category ones would make that padding 20x the
    keys, so such a catalogue takes the per-user path instead. Adding that item (never a
    candidate) must change no bit of the lists."""
    rng = np.random.default_rng(seed)
    n_items, n_cats, users, width = 3000, 60, 5, 100
    flags = np.zeros((n_items, n_cats), np.float32)
    for i in range(n_items):
        flags[i, rng.choice(n_cats, 3, replace=False)] = 1
    every = np.vstack([flags, np.ones((1, n_cats), np.float32)])
    cand = np.stack([rng.permutation(n_items)[:width] for _ in range(users)]).astype(np.int64)
    scores = rng.integers(0, 4, cand.shape).astype(np.float32)  # ties
    h = (rng.random((users, n_items)) < 0.01) * rng.random((users, n_items))
    history = sp.csr_matrix(h.astype(np.float32))
    same_lists_in((flags, every), cand, scores, history, lam=0.6)


def test_scores_and_targets_of_another_shape_are_refused():
    """Only the number of values was compared: transposed scores, or a p reshaped to the same
    count, were read as other users' values, silently."""
    flags = sp.csr_matrix(np.eye(3, dtype=np.float32))
    rr = CalibratedReranker(flags, lam=0.5)
    cand = np.array([[0, 1, 2], [2, 1, 0]])
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]], np.float32)
    p = np.array([[0.6, 0.3, 0.1], [0.1, 0.3, 0.6]], np.float32)
    with pytest.raises(personae.InvalidInputError, match=r"scores has shape \(3, 2\)"):
        rr.rerank(cand, scores.T, p=p, n=3)
    for call in (
        lambda q: rr.rerank(cand, scores, p=q, n=3),
        lambda q: rr.target(p=q),
        lambda q: rr.miscalibration(cand, p=q),
    ):
        with pytest.raises(personae.InvalidInputError, match=r"p: attribute 0 has shape \(3, 2\)"):
            call(p.reshape(3, 2))
    assert rr.rerank(cand, scores, p=p, n=3).ids.shape == (2, 3)


def test_dataframe_without_a_target_and_p_of_other_attributes_are_named():
    """rerank_dataframe with neither history nor p raised a bare IndexError; a p dict missing
    an attribute a bare KeyError, and one with an extra attribute was read without it."""
    pd = pytest.importorskip("pandas")
    flags = sp.csr_matrix(np.eye(3, dtype=np.float32))
    rr = CalibratedReranker({"a": flags, "b": flags}, lam=0.2)
    frame = pd.DataFrame({"user": [0, 0], "item": [0, 1], "score": [1.0, 2.0]})
    with pytest.raises(ValueError, match="exactly one of history"):
        rr.rerank_dataframe(frame, n=2)
    one = np.eye(1, 3, dtype=np.float32)
    for p in ({"a": one}, {"a": one, "b": one, "c": one}):
        with pytest.raises(ValueError, match=r"p must name exactly the attributes \['a', 'b'\]"):
            rr.rerank([[0, 1]], [[1.0, 2.0]], p=p, n=2)
    assert rr.rerank([[0, 1]], [[1.0, 2.0]], p={"a": one, "b": one}, n=2).ids.shape == (1, 2)


def test_min_history_counts_interactions_not_stored_zeros():
    flags = sp.csr_matrix(np.eye(3, dtype=np.float32))
    rr = CalibratedReranker(flags, lam=0.5, min_history=2)
    h = sp.csr_matrix(
        (np.array([1.0, 0.0], np.float32), np.array([0, 1]), np.array([0, 2])), shape=(1, 3)
    )
    assert h.nnz == 2  # one interaction and one stored zero
    np.testing.assert_array_equal(rr.target(history=h), [[0.0, 0.0, 0.0]])
