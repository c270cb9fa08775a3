"""The graph filter's path for large catalogues: ``GraphFilter(neighbours=k)`` keeps each item's
k largest votes of P~ (ties to the lower item), computed by the core a row at a time. Pinned
against a float64 numpy reference, against the exact filter, and by property tests on random
shapes."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import personae
from personae import _core
from personae.train import filters as tf


def weighted(n_users, n_items, density, seed, empty_items=()) -> sp.csr_matrix:
    """Random positive weights (continuous: no two votes of a row tie, even in float32)."""
    rng = np.random.default_rng(seed)
    d = (rng.random((n_users, n_items)) < density) * rng.uniform(0.1, 1.0, (n_users, n_items))
    d[np.arange(n_users), rng.integers(0, n_items, n_users)] = 0.5  # no empty user
    d[:, list(empty_items)] = 0
    return sp.csr_matrix(d.astype(np.float32))


def reference_scores(X, rows, k, beta, rank, eta=0.0, user_weight=1.0, flatness=0.0, power=0.0):
    """``x (top_k(P d^-eta) + beta D^-1/2 V^T V D^1/2 d^-eta)`` in float64, with
    ``P = D_i^-1/2 X^T D_u^-user_weight X D_i^-1/2`` dense (GF-CF's P~ at user_weight 1; V
    from GF-CF's R~ always), each row cut to its k largest entries by a sort (ties to the lower
    column). With ``flatness > 0``, ChebyCF's: ``d^-power`` on the history, ``d^power`` on
    the scores, the kept votes times the chord b of the plateau response over the tail, and
    the low-rank part ``V^T diag(f(lam) - f(0) - b lam + beta) V``. Returns the scores and b
    (1 for GF-CF's form)."""
    x = X.toarray().astype(np.float64)
    x /= x.max()
    du, di = x.sum(1), x.sum(0)
    inv = lambda v: np.where(v > 0, 1 / np.sqrt(np.maximum(v, 1e-300)), 0.0)  # noqa: E731
    R = inv(du)[:, None] * x * inv(di)[None, :]
    post = np.where(di > 0, np.maximum(di, 1.0) ** (power - eta), 0.0)
    pre = np.where(di > 0, np.maximum(di, 1.0) ** -power, 1.0)
    Xd = x * inv(di)[None, :]
    wu = np.where(du > 0, np.maximum(du, 1e-300) ** -user_weight, 0.0)
    S = Xd.T @ (wu[:, None] * Xd)
    S = S * post[None, :]
    kept = np.zeros_like(S)
    for i in range(len(S)):
        live = [j for j in range(len(S)) if S[i, j] > 0]
        top = sorted(live, key=lambda j: (-S[i, j], j))[:k]
        kept[i, top] = S[i, top]
    _, s, vt = np.linalg.svd(R, full_matrices=False)
    vt = vt[:rank]
    y = rows.toarray().astype(np.float64)
    y /= y.max(axis=1, keepdims=True)
    if flatness > 0:
        lam = s[:rank] ** 2
        f = tf.plateau_response(np.append(lam, 0.0), flatness)
        b = (f[-2] - f[-1]) / lam[-1]
        low = (vt.T * (f[:-1] - f[-1] - b * lam + beta)) @ vt * post[None, :]
        return (y * pre) @ (b * kept + low), b
    low = (inv(di)[:, None] * vt.T) @ (vt * np.sqrt(di)[None, :]) * post[None, :]
    return y @ (kept + beta * low), 1.0


def fit(X, **kw):
    """A GraphFilter fitted on X: GF-CF's form unless ``flatness`` / ``item_power`` say."""
    kw = {"flatness": 0.0, "item_power": 0.0, **kw}
    return personae.GraphFilter(device="cpu", **kw).fit(X, show_progress=False)


@pytest.mark.parametrize(
    ("k", "eta", "user_weight", "flatness", "power"),
    [
        (1, 0.0, 1.0, 0.0, 0.0),
        (3, 0.0, 1.0, 0.0, 0.0),
        (7, 0.3, 1.0, 0.0, 0.0),
        (7, -0.1, 0.6, 0.0, 0.0),
        (3, 0.0, 1.0, 2.0, 0.3),
        (7, 0.1, 0.8, 1.5, 0.4),
    ],
)
def test_pruned_filter_matches_the_numpy_reference(k, eta, user_weight, flatness, power):
    X = weighted(60, 25, 0.25, seed=k, empty_items=(4, 17))
    rows = X[:12]
    model = fit(
        X,
        rank=6,
        beta=0.2,
        neighbours=k,
        eta=eta,
        user_weight=user_weight,
        flatness=flatness,
        item_power=power,
    )
    want, b = reference_scores(X, rows, k, 0.2, 6, eta, user_weight, flatness, power)
    np.testing.assert_allclose(model.score(rows), want, rtol=1e-5, atol=1e-5)
    # The manifest names the tail's slope, which an exact reference needs beside pruned votes.
    assert model.manifest["training"]["tail_slope"] == pytest.approx(b, rel=1e-5)
    counts = np.diff(model.tensors()["votes_indptr"])
    assert counts.max() == k and counts[[4, 17]].sum() == 0  # items without users vote for none


def test_as_many_neighbours_as_items_is_the_exact_filter():
    X = weighted(50, 30, 0.3, seed=1)
    exact = fit(X, rank=5, neighbours=None)
    whole = fit(X, rank=5, neighbours=30)
    more = fit(X, rank=5, neighbours=10**6)
    te, tw, tm = exact.tensors(), whole.tensors(), more.tensors()
    for key in ("votes_indptr", "votes_indices", "votes_data", "low_left", "low_right"):
        np.testing.assert_array_equal(tw[key], te[key])
        np.testing.assert_array_equal(tm[key], te[key])
    pruned = fit(X, rank=5, neighbours=4)
    assert len(pruned.tensors()["votes_data"]) < len(te["votes_data"])


def test_ties_keep_the_lower_items():
    """One user who holds every item: every vote of P~ is the same number (1 / n), so the kept
    neighbours are the k lowest items, whatever the order the products come in."""
    X = sp.csr_matrix(np.ones((1, 9), np.float32))
    t = fit(X, rank=1, neighbours=3).tensors()
    np.testing.assert_array_equal(t["votes_indptr"], np.arange(10) * 3)
    np.testing.assert_array_equal(t["votes_indices"], np.tile([0, 1, 2], 9))
    assert len(set(t["votes_data"].tolist())) == 1


def test_the_automatic_rule_keeps_the_exact_filter_up_to_its_bound(monkeypatch):
    cfg = tf.GraphConfig()
    assert cfg.kept(41_000) is None and cfg.kept(tf.EXACT_MAX_ITEMS) is None
    assert cfg.kept(tf.EXACT_MAX_ITEMS + 1) == tf.AUTO_NEIGHBOURS
    assert tf.GraphConfig(neighbours=5).kept(10) == 5
    X = weighted(40, 20, 0.4, seed=2)
    monkeypatch.setattr(tf, "EXACT_MAX_ITEMS", 10)
    monkeypatch.setattr(tf, "AUTO_NEIGHBOURS", 2)
    auto = fit(X, rank=4)
    assert np.diff(auto.tensors()["votes_indptr"]).max() == 2
    assert auto.manifest["training"]["settings"]["neighbours"] == 2


@pytest.mark.parametrize("bad", [0, -1, -100])
def test_neighbours_below_one_are_refused(bad):
    with pytest.raises(ValueError, match="neighbours must be >= 1"):
        personae.GraphFilter(neighbours=bad)


@pytest.mark.parametrize("bad", [2.5, "10", True])
def test_neighbours_must_be_an_integer(bad):
    with pytest.raises(TypeError, match="neighbours"):
        personae.GraphFilter(neighbours=bad)


def test_the_setting_survives_save_and_load(tmp_path):
    X = weighted(40, 20, 0.4, seed=3)
    model = fit(X, rank=4, neighbours=3)
    model.save(tmp_path / "m")
    back = personae.load(tmp_path / "m")
    assert back.params["neighbours"] == 3
    np.testing.assert_array_equal(back.score(X[:5]), model.score(X[:5]))


def top_k_rows(S: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's k largest entries by a per-row sort (ties to the lower column)."""
    S = S.tocsr()
    S.sort_indices()
    out = sp.lil_matrix(S.shape, dtype=S.dtype)
    for i in range(S.shape[0]):
        lo, hi = S.indptr[i], S.indptr[i + 1]
        cols, vals = S.indices[lo:hi], S.data[lo:hi]
        for j in sorted(range(len(cols)), key=lambda t: (-vals[t], cols[t]))[:k]:
            out[i, cols[j]] = vals[j]
    return out.tocsr()


@settings(max_examples=40, deadline=None)
@given(
    n_users=st.integers(1, 30),
    n_items=st.integers(1, 25),
    density=st.floats(0.0, 1.0),
    k=st.integers(1, 30),
    binary=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_pruning_is_the_exact_votes_cut_per_row(n_users, n_items, density, k, binary, seed):
    """Any shape (empty items and users included): the pruned votes are the exact votes, each
    row cut to its k largest, ties (many, with binary weights) to the lower column; the values
    bit for bit."""
    rng = np.random.default_rng(seed)
    d = (rng.random((n_users, n_items)) < density).astype(np.float32)
    if not binary:
        d *= rng.uniform(0.1, 1.0, d.shape).astype(np.float32)
    R = sp.csr_matrix(d)
    post = rng.choice([0.5, 1.0, 2.0], n_items)  # powers of 2: the ties of P~ stay ties
    exact = (R.T.tocsr() @ R).tocsr().multiply(post[None, :]).tocsr().astype(np.float32)
    indptr, indices, data = _core.graph_votes(R, post, keep=k)
    got = sp.csr_matrix((data, indices, indptr), shape=(n_items,) * 2)
    want = top_k_rows(exact, k)
    assert got.has_sorted_indices
    np.testing.assert_array_equal(np.diff(got.indptr), np.diff(want.indptr))
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


@settings(max_examples=60, deadline=None)
@given(
    n_users=st.integers(0, 30),
    n_items=st.integers(0, 25),
    density=st.floats(0.0, 1.0),
    keep=st.one_of(st.none(), st.integers(1, 30)),
    after=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_core_votes_equal_scipys_scaled_product(n_users, n_items, density, keep, after, seed):
    """``_core.graph_votes`` with the fit's scalings: ``R = f32(a_u ((r_u x_uj) c_j))`` built
    in float64 as scipy's diagonal products build it, ``R^T R`` in float32, times ``post``:
    the same bits as scipy's, every row (or its `keep` largest) with sorted columns; zero sums
    dropped as scipy drops them (users or items without interactions, scalings of 0)."""
    rng = np.random.default_rng(seed)
    d = (rng.random((n_users, n_items)) < density) * rng.uniform(0.1, 1.0, (n_users, n_items))
    X = sp.csr_matrix(d.astype(np.float32))
    rows = rng.uniform(0.0, 2.0, n_users) * (rng.random(n_users) < 0.9)
    cols = rng.uniform(0.0, 2.0, n_items) * (rng.random(n_items) < 0.9)
    rows_after = rng.uniform(0.5, 3.0, n_users) if after else None
    post = rng.uniform(0.0, 2.0, n_items)
    R = sp.diags(rows) @ X @ sp.diags(cols)
    if after:
        R = sp.diags(rows_after) @ R
    R = sp.csr_matrix(R).astype(np.float32)
    exact = (R.T.tocsr() @ R).tocsr()
    exact.sort_indices()
    exact.data = (exact.data * post[exact.indices]).astype(np.float32)
    want = exact if keep is None else top_k_rows(exact, keep)
    indptr, indices, data = _core.graph_votes(
        X, post, keep=keep, rows=rows, cols=cols, rows_after=rows_after
    )
    np.testing.assert_array_equal(indptr, want.indptr)
    np.testing.assert_array_equal(indices, want.indices)
    np.testing.assert_array_equal(data.view(np.uint32), want.data.view(np.uint32))


def test_core_votes_refuse_bad_input():
    X = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(personae.InvalidInputError, match="rows and cols"):
        _core.graph_votes(X, np.ones(3), rows=np.ones(3))
    with pytest.raises(personae.InvalidInputError, match="post"):
        _core.graph_votes(X, np.ones(2))
    with pytest.raises(personae.InvalidInputError, match="4 item values for a 3 x 3"):
        _core.graph_votes(X, np.ones(3), rows=np.ones(3), cols=np.ones(4))


@settings(max_examples=15, deadline=None)
@given(
    n_users=st.integers(2, 25),
    n_items=st.integers(2, 20),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_pruned_model_scores_are_the_exact_models_with_the_votes_cut(n_users, n_items, k, seed):
    """Model level, binary data (ties everywhere): the pruned model's scores are the exact
    model's low-rank part plus the history times the exact votes cut to k per row."""
    rng = np.random.default_rng(seed)
    d = (rng.random((n_users, n_items)) < 0.3).astype(np.float32)
    empty = rng.integers(0, n_items)
    d[:, empty] = 0  # an item without users
    # Every user has an item besides it (else X could be empty, which a fit refuses).
    d[np.arange(n_users), (empty + 1 + rng.integers(0, n_items - 1, n_users)) % n_items] = 1
    X = sp.csr_matrix(d)
    exact, pruned = fit(X, rank=3), fit(X, rank=3, neighbours=k)
    te = exact.tensors()
    S = sp.csr_matrix((te["votes_data"], te["votes_indices"], te["votes_indptr"]), (n_items,) * 2)
    low = exact.score(X) - (X @ S).toarray()
    want = low + (X @ top_k_rows(S, k)).toarray()
    np.testing.assert_allclose(pruned.score(X), want, rtol=1e-5, atol=1e-6)


def test_degree_exponents_left_as_none_are_chosen_from_the_grid():
    """``eta`` / ``user_weight`` None: every pair of ``GRAPH_DEGREE_GRID`` scored on the carve,
    the best one kept, and the model is that setting's filter (the numpy reference)."""
    X = weighted(120, 30, 0.2, seed=5)
    model = personae.GraphFilter(rank=4, eta=None, user_weight=None, device="cpu", seed=0)
    model.fit(X, show_progress=False)
    tr = model.manifest["training"]
    tried = {(r["user_weight"], r["eta"]) for r in tr["search"]}
    assert tried == set(tf.GRAPH_DEGREE_GRID)
    best = max(tr["search"], key=lambda r: r["ndcg@20"])
    w, e = tr["settings"]["user_weight"], tr["settings"]["eta"]
    assert (w, e) == (best["user_weight"], best["eta"])
    rows = X[:10]
    # The defaults around the searched exponents: ChebyCF's filter (flatness 2, power 0.3).
    want, _ = reference_scores(X, rows, 30, 0.1, 4, e, w, 2.0, 0.3)
    np.testing.assert_allclose(model.score(rows), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_bad_user_weights_are_refused(bad):
    with pytest.raises(ValueError, match="user_weight must be finite and >= 0"):
        personae.GraphFilter(user_weight=bad)


def test_a_file_without_user_weight_reads_as_gf_cf():
    params = personae.GraphFilter._known_params({"rank": 8, "beta": 0.2, "time": 0.0, "eta": 0.0})
    cfg = personae.GraphFilter(**params)._config()
    # Written before ChebyCF's settings: GF-CF's response, not today's default.
    assert (cfg.user_weight, cfg.flatness, cfg.item_power) == (1.0, 0.0, 0.0)
    assert personae.GraphFilter()._config().flatness == 2.0


@settings(max_examples=30, deadline=None)
@given(
    n_users=st.integers(0, 40),
    n_items=st.integers(1, 30),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_scaled_rows_are_scipys_diagonal_products(n_users, n_items, density, seed):
    """R~ built in blocks of rows over X's own structure: the bits of scipy's
    ``diags(ru) @ X @ diags(c)`` (float32 ``ru x`` first, then float64)."""
    X = sp.random(n_users, n_items, density=density, format="csr", dtype=np.float32, rng=seed)
    du = np.asarray(X.sum(1)).ravel()
    ru = np.where(du > 0, 1 / np.sqrt(np.maximum(du, 1e-30)), 0.0)
    di = np.asarray(X.sum(0)).ravel().astype(np.float64)
    c = np.where(di > 0, 1 / np.sqrt(np.maximum(di, 1e-30)), 0.0)
    want = (sp.diags(ru) @ X @ sp.diags(c)).tocsr()
    got = tf._scaled_rows(X, ru, c)
    assert got.dtype == want.dtype == np.float64
    np.testing.assert_array_equal(got.toarray().view(np.uint64), want.toarray().view(np.uint64))


@pytest.mark.parametrize(("n_users", "n_items", "k"), [(300, 120, 8), (500, 500, 1), (90, 60, 59)])
def test_item_side_svd_is_the_top_of_the_svd(n_users, n_items, k):
    """The spectrum's path for users >= items (ARPACK on R^T R, then Rayleigh-Ritz on k x k,
    no users x k arrays): the top-k singular values and right subspace of numpy's SVD."""
    rng = np.random.default_rng(k)
    R = sp.random(n_users, n_items, density=0.05, format="csr", rng=rng) * 3.0
    s, vt = tf._item_side_svd(R.tocsr(), k, rng.standard_normal(n_items))
    o = np.argsort(-s)
    s, vt = s[o], vt[o]
    _, s_ref, vt_ref = np.linalg.svd(R.toarray())
    np.testing.assert_allclose(s, s_ref[:k], rtol=1e-9)
    np.testing.assert_allclose(vt @ vt.T, np.eye(k), atol=1e-9)
    # The same subspace: projections equal (singular values distinct on random data).
    np.testing.assert_allclose(vt.T @ vt, vt_ref[:k].T @ vt_ref[:k], atol=1e-7)


def test_item_space_by_blocks_is_the_whole_formula():
    """The item space computed a block of items at a time (across a block boundary, with an
    item without interactions): the bits of the one-shot formula."""
    rng = np.random.default_rng(3)
    spec = tf.Spectrum.__new__(tf.Spectrum)
    spec.Vt = rng.standard_normal((16, 40_000))
    spec.Vt[:, 7] = 0.0
    spec.s = np.sort(rng.random(16))[::-1]
    for dim in (8, 16, 64):
        Z = (spec.Vt[:dim] * spec.s[:dim, None]).T
        n = np.linalg.norm(Z, axis=1, keepdims=True)
        want = np.where(n > 0, Z / np.maximum(n, 1e-12), 0.0).astype(np.float32)
        got = spec.item_space(dim)
        assert got.shape == want.shape and not got[7].any()
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
