"""AMP-CF: the Rust path against the numpy definition on random models; the fit (baselines it
must beat, tastes it must recover); explanations; save -> load -> recommend; errors."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import personae

from conftest import random_csr
from reference import ampcf_scores, assert_same_lists, top_n, unit_rows


def random_model(seed, n_items, k, n_clusters, att_dim, rank, sparse, mix, delta, gamma, tau):
    """A random AMP-CF (tensors as a fit makes them) and its settings."""
    rng = np.random.default_rng(seed)
    votes = rng.normal(size=(n_items, n_items)).astype(np.float32)
    if sparse:
        votes[rng.random(votes.shape) < 0.6] = 0.0
    Z = rng.normal(size=(n_items, att_dim))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    Z[rng.random(n_items) < 0.1] = 0.0  # items without a direction
    labels = rng.integers(-1, n_clusters, size=n_items).astype(np.int32)
    t = {
        "item_space": Z.astype(np.float32),
        "item_cluster": labels,
        "centroids": rng.normal(size=(n_clusters, att_dim)).astype(np.float32),
        "item_count": rng.integers(0, 9, size=n_items).astype(np.float32),
    }
    if sparse:
        s = sp.csr_matrix(votes)
        s.sort_indices()
        t.update(votes_indptr=s.indptr.astype(np.int64), votes_indices=s.indices, votes_data=s.data)
    else:
        t["votes"] = votes
    if rank:
        t["low_left"] = rng.normal(size=(n_items, rank)).astype(np.float32)
        t["low_right"] = rng.normal(size=(n_items, rank)).astype(np.float32)
    cfg = dict(n_personas=k, tau=tau, mix=mix, delta=delta, gamma=gamma)
    return personae.AMPCF.from_tensors(t, **cfg), t, cfg


def weighted_csr(rng, rows, cols, density):
    x = random_csr(rng, rows, cols, density)
    x.data = rng.uniform(0.5, 3.0, size=x.nnz).astype(np.float32)
    if rows > 1:  # an empty history
        x = sp.csr_matrix(sp.diags(np.r_[np.ones(rows - 1), 0.0]) @ x)
        x.eliminate_zeros()
        x.sort_indices()
    return x


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_users=st.integers(1, 9),
    n_items=st.integers(1, 60),
    k=st.integers(1, 5),
    n_clusters=st.integers(1, 7),
    att_dim=st.integers(1, 6),
    rank=st.integers(0, 4),
    sparse=st.booleans(),
    mix=st.sampled_from([0.0, 0.25, 1.0]),
    delta=st.sampled_from([0.0, 0.5]),
    gamma=st.sampled_from([0.0, 1.0]),
    tau=st.sampled_from([0.2, 1.0]),
    n=st.integers(1, 70),
)
def test_rust_equals_the_numpy_definition(
    seed, n_users, n_items, k, n_clusters, att_dim, rank, sparse, mix, delta, gamma, tau, n
):
    model, t, cfg = random_model(
        seed, n_items, k, n_clusters, att_dim, rank, sparse, mix, delta, gamma, tau
    )
    rng = np.random.default_rng(seed)
    x = weighted_csr(rng, n_users, n_items, 0.3)
    want, att_want, taste_want, parts_want = ampcf_scores(t, cfg, x)
    got = model.score(x)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * max(1.0, np.abs(want).max()))
    # Top-n with seen masking: the exact path (the fused scorer on every item) is the
    # reference top-n of the same dense scores, bit for bit; the default pruned top-n gives the
    # same lists up to ties (more in test_ampcf_prune.py).
    ref_ids, ref_scores = top_n(got, n, seen=x)
    model._fitted().set_exact_top_n(True)
    try:
        exact_ids, exact_scores = model.recommend(x, n)
    finally:
        model._fitted().set_exact_top_n(False)
    np.testing.assert_array_equal(exact_ids, ref_ids)
    np.testing.assert_array_equal(exact_scores, ref_scores)
    ids, scores, dom = model.recommend(x, n, explain=True)
    masked = got.copy()
    masked[x.nonzero()] = -np.inf
    assert_same_lists(ids, scores, masked, ref_ids, ref_scores)
    # Personas, attention and the personas' parts of the score as defined; the dominant
    # persona is the one with the largest part.
    p = model.personas(x)
    np.testing.assert_array_equal(p["taste"], taste_want)
    live = np.diff(x.indptr) > 0
    np.testing.assert_allclose(p["share"].sum(1)[live], 1.0, rtol=1e-5)
    items = rng.integers(0, n_items, size=(n_users, 4))
    ex = model.explain(items, x)
    np.testing.assert_allclose(
        ex["attention"], np.take_along_axis(att_want, items[:, :, None], 1), atol=1e-5
    )
    part_want = np.take_along_axis(parts_want, items[:, :, None], 1)
    scale = max(1.0, np.abs(want).max())
    np.testing.assert_allclose(ex["contribution"], part_want, rtol=2e-4, atol=2e-4 * scale)
    np.testing.assert_allclose(
        ex["contribution"].sum(-1), np.take_along_axis(got, items, 1), atol=2e-4 * scale
    )
    # the user's own personas only: absent ones (part 0) never lead
    n_p = np.maximum((p["taste"] >= 0).sum(1), 1)[:, None, None]
    own = np.where(np.arange(k) < n_p, ex["contribution"], -np.inf)
    np.testing.assert_array_equal(ex["dominant"], own.argmax(-1))
    listed = ids >= 0
    ex_listed = model.explain(np.where(listed, ids, -1), x)
    np.testing.assert_array_equal(dom[listed], ex_listed["dominant"][listed])
    assert (dom[~listed] == -1).all()


def test_one_persona_or_mix_zero_is_the_filter():
    rng = np.random.default_rng(0)
    x = weighted_csr(rng, 6, 30, 0.3)
    m1, t, _ = random_model(1, 30, 1, 4, 3, 2, False, 0.7, 0.3, 1.0, 0.5)
    f = t["votes"].astype(np.float64) + t["low_left"] @ t["low_right"].T
    filt = unit_rows(x).toarray() @ f
    np.testing.assert_allclose(m1.score(x), filt, rtol=1e-4, atol=1e-4)
    m0, _, _ = random_model(1, 30, 4, 4, 3, 2, False, 0.0, 0.3, 1.0, 0.5)
    np.testing.assert_allclose(m0.score(x), filt, rtol=1e-4, atol=1e-4)


def test_large_catalogue_crosses_tiles_and_chunks():
    # More than one item tile (2048) and more than one user chunk (256).
    model, t, cfg = random_model(5, 2100, 3, 6, 4, 2, True, 0.5, 0.2, 0.5, 0.7)
    x = weighted_csr(np.random.default_rng(0), 300, 2100, 0.004)
    dense = model.score(x)
    want, _, _, _ = ampcf_scores(t, cfg, x[:12])
    np.testing.assert_allclose(dense[:12], want, rtol=2e-4, atol=2e-3)
    ids, scores = model.recommend(x, 25)
    ref_ids, ref_scores = top_n(dense, 25, seen=x)
    np.testing.assert_array_equal(ids, ref_ids)


def test_because_lists_the_dominant_personas_strongest_voters():
    model, t, cfg = random_model(7, 40, 3, 4, 3, 0, False, 0.5, 0.0, 0.0, 1.0)
    x = unit_rows(weighted_csr(np.random.default_rng(2), 5, 40, 0.4)).astype(np.float32)
    items = np.array([[0, 5, -1], [1, 2, 3], [4, 4, 4], [39, 0, 1], [7, 8, 9]])
    ex = model.explain(items, x, n_history=2)
    p = model.personas(x)
    for u in range(5):
        row = slice(x.indptr[u], x.indptr[u + 1])
        hist, w, who = x.indices[row], x.data[row], p["entry"][row]
        for c in range(3):
            j = items[u, c]
            if j < 0:
                assert ex["dominant"][u, c] == -1 and (ex["because"][u, c] == -1).all()
                assert np.isnan(ex["attention"][u, c]).all()
                continue
            d = ex["dominant"][u, c]
            mine = who == d
            votes = w[mine] * t["votes"][hist[mine], j]
            order = np.lexsort((hist[mine], -votes))[:2]
            want = np.full(2, -1)
            want[: len(order)] = hist[mine][order]
            np.testing.assert_array_equal(ex["because"][u, c], want)
            np.testing.assert_allclose(
                ex["because_vote"][u, c][: len(order)], votes[order], rtol=1e-5
            )
            if len(hist):
                assert ex["taste"][u, c] == p["taste"][u, d]


def test_persona_summary_and_taste_items():
    model, t, _ = random_model(3, 30, 3, 4, 3, 0, False, 0.25, 0.0, 0.0, 1.0)
    x = weighted_csr(np.random.default_rng(1), 4, 30, 0.4)
    cats = sp.random(30, 5, density=0.4, format="csr", random_state=0)
    s = model.persona_summary(x, item_categories=cats, top=2)
    p = model.personas(x)
    np.testing.assert_array_equal(s["share"], p["share"])
    assert s["top_categories"].shape == (4, 3, 2) and s["category_share"].shape == (4, 3, 5)
    # The category mix of persona 0 of user 0, by hand.
    row = slice(x.indptr[0], x.indptr[0] + np.diff(x.indptr)[0])
    mine = p["entry"][row] == 0
    mix = x.data[row][mine] @ cats.toarray()[x.indices[row][mine]]
    np.testing.assert_allclose(s["category_share"][0, 0], mix / mix.sum(), rtol=1e-6)
    top = model.taste_items(3)
    assert top.shape == (model.n_tastes, 3)
    for c in range(model.n_tastes):
        members = np.flatnonzero(t["item_cluster"] == c)
        order = members[np.lexsort((members, -t["item_count"][members]))][:3]
        np.testing.assert_array_equal(top[c][: len(order)], order)
        assert (top[c][len(order) :] == -1).all()
    with pytest.raises(ValueError, match="item_categories must have 30 rows"):
        model.persona_summary(x, item_categories=sp.eye(5, format="csr"))
    # A Categories on the model's items gives the same summary; on other items, an error.
    named = personae.Categories(cats, item_ids=model.item_ids)
    np.testing.assert_array_equal(
        model.persona_summary(x, item_categories=named, top=2)["top_categories"],
        s["top_categories"],
    )
    shuffled = personae.Categories(cats, item_ids=model.item_ids[::-1])
    with pytest.raises(personae.InvalidInputError, match="the model has other item ids"):
        model.persona_summary(x, item_categories=shuffled)


@pytest.fixture(scope="module")
def fitted():
    data = personae.synthetic(n_users=1500, n_items=400, n_tastes=6, mean_items=25, seed=4)
    train, test = personae.holdout_split(data.interactions, 0.2, seed=0)
    model = personae.AMPCF(device="cpu").fit(train, show_progress=False)
    return data, train, test, model


def test_default_fit_beats_popularity_and_recovers_the_tastes(fitted):
    data, train, test, model = fitted
    k = 10
    ours = personae.metrics.evaluate(model.recommend(train, k)[0], test.matrix, k)
    pop = personae.Popularity().fit(train)
    base = personae.metrics.evaluate(pop.recommend(train, k)[0], test.matrix, k)
    assert ours[f"ndcg@{k}"] > 1.5 * base[f"ndcg@{k}"], (ours, base)
    # Each fitted taste cluster names the true taste most of its items have; a user's persona
    # shares, mapped through it, should match their true taste mix far better than chance.
    labels = model.tensors()["item_cluster"]
    major = np.array(
        [
            np.bincount(data.item_taste[labels == c], minlength=6).argmax()
            for c in range(model.n_tastes)
        ]
    )
    p = model.personas(train)
    est = np.zeros_like(data.user_mixture)
    for kk in range(model.n_personas):
        ok = p["taste"][:, kk] >= 0
        np.add.at(est, (np.flatnonzero(ok), major[p["taste"][ok, kk]]), p["share"][ok, kk])
    corr = np.corrcoef(est.ravel(), data.user_mixture.ravel())[0, 1]
    shuffled = np.corrcoef(
        est.ravel(), data.user_mixture[np.random.default_rng(0).permutation(1500)].ravel()
    )[0, 1]
    assert corr > 0.8 and corr > shuffled + 0.5, (corr, shuffled)
    assert model.manifest["training"]["filter"] == "ease"
    assert model.manifest["training"]["seconds"] < 600


def test_fit_round_trips_and_serves_new_users(fitted, tmp_path):
    data, train, test, model = fitted
    path = model.save(tmp_path / "model")
    loaded = personae.load(path)
    assert type(loaded) is personae.AMPCF and loaded.params == model.params
    np.testing.assert_array_equal(loaded.score(train.matrix[:20]), model.score(train.matrix[:20]))
    ids, _, dom = loaded.recommend(train.matrix[:20], 10, explain=True)
    assert (dom >= 0).all() and (dom < loaded.n_personas).all()
    # A user unseen in training is served from their history alone.
    new = sp.csr_matrix(
        ([1.0, 1.0, 1.0], ([0, 0, 0], [3, 10, 50])), shape=(1, 400), dtype=np.float32
    )
    ids, scores = loaded.recommend(new, 5)
    assert (ids >= 0).all() and not {3, 10, 50} & set(ids[0].tolist())
    t = loaded.tensors()
    assert t["item_cluster"].dtype == np.int32 and t["votes"].dtype == np.float32


def test_explicit_settings_skip_the_search():
    x = personae.synthetic(n_users=200, n_items=60, n_tastes=3, seed=1).interactions
    ease = personae.EASE(lam=10.0, user_weight=0.5, rank=8, low_weight=0.2)
    m = personae.AMPCF(filter=ease, device="cpu")
    m.fit(x, show_progress=False)
    tr = m.manifest["training"]
    assert "search" not in tr
    want = {"lam": 10.0, "user_weight": 0.5, "rank": 8, "low_weight": 0.2, "dropout": 0.3}
    assert tr["settings"] == want
    assert m.tensors()["low_left"].shape == (m.n_items, 8)
    # The same settings as the flat arguments of the previous release: a DeprecationWarning,
    # the same model.
    with pytest.warns(DeprecationWarning, match="filter="):
        old = personae.AMPCF(lam=10.0, user_weight=0.5, rank=8, low_weight=0.2, device="cpu")
    old.fit(x, show_progress=False)
    assert old.manifest["training"]["settings"] == want
    np.testing.assert_array_equal(old.recommend(x, 10)[0], m.recommend(x, 10)[0])


def test_flat_graph_arguments_keep_gf_cf_and_bspm():
    """The deprecated flat graph arguments mean what they meant: GF-CF's filter (BSPM's with
    graph_time > 0), not ChebyCF's, today's GraphFilter default."""
    from personae.ampcf import _filter_config

    with pytest.warns(DeprecationWarning):
        old = personae.AMPCF(graph_time=2.5, graph_rank=16)
    cfg = _filter_config(old.params["filter"])[1]
    assert (cfg.time, cfg.rank, cfg.beta, cfg.flatness, cfg.item_power) == (2.5, 16, 0.2, 0.0, 0.0)
    with pytest.raises(ValueError, match="give time=0 with flatness > 0"):
        personae.GraphFilter(time=2.5)


def test_bad_inputs_raise_clear_errors(fitted):
    _, train, _, model = fitted
    inf = float("inf")
    for kw, msg in [
        ({"tau": 0.0}, "tau must be finite and > 0"),
        ({"tau": inf}, "tau must be finite"),  # was a ModelFormatError at the build: no JSON inf
        ({"mix": 1.5}, "mix must be in"),
        ({"n_personas": 0}, "n_personas must be >= 1"),
        ({"seed": -1}, "seed must be >= 0"),  # was numpy's nameless error, deep in the fit
    ]:
        with pytest.raises(ValueError, match=msg):
            personae.AMPCF(**kw)
    for kw, msg in [
        ({"dropout": 1.0}, "dropout must be in"),
        ({"lam": -1.0}, "lam must be finite and > 0"),
        ({"lam": inf}, "lam must be finite"),  # was NaN scores, refused only when serving
        ({"low_weight": inf}, "low_weight must be finite"),
        ({"search_users": 0}, "search_users must be >= 1"),  # was refused only at the fit
        ({"seed": -1}, "seed must be >= 0"),
    ]:
        with pytest.raises(ValueError, match=msg):
            personae.EASE(**kw)
    for kw in ({"search_users": -1}, {"seed": -1}):
        with pytest.raises(ValueError, match="must be >= "):
            personae.GraphFilter(**kw)
    with pytest.raises(ValueError, match="beta must be"):
        personae.GraphFilter(beta=-1.0)
    with pytest.raises(TypeError, match="personae.EASE or personae.GraphFilter"):
        personae.AMPCF(filter="ease")
    with pytest.raises(TypeError, match="unexpected keyword"):
        personae.AMPCF(lamda=1.0)
    with pytest.raises(RuntimeError, match="not fitted"):
        personae.AMPCF().recommend(train, 3)
    with pytest.raises(ValueError, match="no interactions"):
        personae.AMPCF(device="cpu").fit(sp.csr_matrix((3, 4), dtype=np.float32))
    with pytest.raises(personae.InvalidInputError, match="401 columns"):
        model.recommend(sp.csr_matrix((1, 401), dtype=np.float32), 3)
    neg = sp.csr_matrix(([-1.0], ([0], [2])), shape=(1, 400), dtype=np.float32)
    with pytest.raises(personae.InvalidInputError, match="negative"):
        model.score(neg)
    with pytest.raises(personae.InvalidInputError, match="outside"):
        model.explain(np.array([400]), train.matrix[:1])
    with pytest.raises(ValueError, match="shape"):
        model.explain(np.zeros((2, 3), np.int64), train.matrix[:1])
    with pytest.raises(TypeError, match="integer item indices"):
        model.explain(np.array([0.5]), train.matrix[:1])


@pytest.mark.parametrize("n_personas", [None, 2])
def test_base_tastes_follow_their_definition(fitted, n_personas):
    """The fit's taste tables from the served model's own personas. Two personas put most
    items in the persona nearest to them in the item space, the path that once read a
    column-major item space as rows and built the tables from other personas."""
    _, train, _, model = fitted
    if n_personas is not None:
        model = personae.AMPCF(n_personas=n_personas, device="cpu").fit(train, show_progress=False)
    t = model.base_tastes()
    x = train.matrix.tocsr()
    p = model.personas(x)
    n_c = model.n_tastes
    S = np.zeros((x.shape[0], n_c))
    for k in range(model.n_personas):
        ok = p["taste"][:, k] >= 0
        S[np.flatnonzero(ok), p["taste"][ok, k]] += p["share"][ok, k]
    T = S.T @ x.toarray()
    pj = np.asarray(x.sum(0)).ravel() / x.sum()
    want = np.log((T + 10 * pj) / (T.sum(1, keepdims=True) + 10) / pj).T
    np.testing.assert_allclose(t.phi, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(t.prior_mean, S.mean(0), rtol=1e-5, atol=1e-6)
    users_with = (x.toarray() > 0).mean(0)
    np.testing.assert_allclose(t.offset, np.log(users_with / (1 - users_with)), rtol=1e-4)
    assert len(t.names) == n_c and t.names[0].startswith("taste 0: ")
    # An interview on them runs, and its list names a taste for every item.
    it = personae.Interview(model, seed=0, groups=0)
    for _ in range(3):
        it.answer(it.next_question(), True)
    ids, scores, persona = it.recommend(5)
    assert (ids >= 0).all() and ((persona >= 0) & (persona < n_c)).all()


def test_large_catalogue_graph_filter(fitted, monkeypatch):
    """The catalogue-size switch to the sparse graph filter (normally above 20,000 items),
    forced on the small data: sparse votes that still rank far above popularity."""
    import personae.train.filters as fit_filters

    data, train, test, _ = fitted
    monkeypatch.setattr(fit_filters, "DENSE_MAX_ITEMS", 10)
    model = personae.AMPCF(device="cpu").fit(train, show_progress=False)
    assert model.manifest["training"]["filter"] == "graph_filter"
    t = model.tensors()
    assert "votes" not in t and t["votes_indptr"].shape == (train.n_items + 1,)
    k = 10
    ours = personae.metrics.evaluate(model.recommend(train, k)[0], test.matrix, k)
    pop = personae.Popularity().fit(train)
    base = personae.metrics.evaluate(pop.recommend(train, k)[0], test.matrix, k)
    assert ours[f"ndcg@{k}"] > 1.5 * base[f"ndcg@{k}"], (ours, base)


@pytest.mark.parametrize("form", ["chebycf", "gfcf"])
def test_graph_filter_scores_are_the_dense_formula(form):
    """With mix 0 the scores are the filter's, computed here densely with numpy's SVD: the
    defaults' ChebyCF, ``(x d^-p) (b P~ + V^T diag(f(lam) - f(0) - b lam + beta) V) d^p`` (f
    the plateau response of flatness 2, p = 0.3, beta 0.1, b its chord over the tail), and
    GF-CF's ``x P~ + beta x D^-1/2 V^T V D^1/2`` (flatness 0, power 0, beta 0.2)."""
    from personae.train.filters import plateau_response

    data = personae.synthetic(n_users=300, n_items=90, n_tastes=3, mean_items=12, seed=2)
    x = data.interactions.matrix
    kw = {} if form == "chebycf" else {"flatness": 0.0, "item_power": 0.0, "beta": 0.2}
    graph = personae.GraphFilter(rank=16, **kw)
    m = personae.AMPCF(filter=graph, device="cpu", mix=0.0).fit(x, show_progress=False)
    assert m.manifest["training"]["settings"]["time"] == 0.0
    X = x.toarray().astype(np.float64)
    du, di = X.sum(1), X.sum(0)
    ru = np.where(du > 0, 1 / np.sqrt(np.maximum(du, 1e-30)), 0)
    ri = np.where(di > 0, 1 / np.sqrt(np.maximum(di, 1e-30)), 0)
    R = ru[:, None] * X * ri[None, :]
    _, s, V = np.linalg.svd(R, full_matrices=False)
    V = V[:16]
    if form == "gfcf":
        want = X @ (R.T @ R) + 0.2 * ((X * ri) @ V.T @ V) * np.sqrt(di)
    else:
        lam = s[:16] ** 2
        f = plateau_response(np.append(lam, 0.0), 2.0)
        b = (f[-2] - f[-1]) / lam[-1]
        F = b * (R.T @ R) + (V.T * (f[:-1] - f[-1] - b * lam + 0.1)) @ V
        want = ((X * di**-0.3) @ F) * di**0.3
    np.testing.assert_allclose(m.score(x), want, rtol=1e-3, atol=1e-4)
    assert m.tensors()["low_left"].shape == (90, 16)  # no zero sharpening block
