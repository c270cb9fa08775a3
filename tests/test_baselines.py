"""The accuracy harness's baselines (benches/baselines.py) and taste metrics (benches/accuracy.py),
each pinned on tiny matrices against an obvious, independent reference."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))

import accuracy  # noqa: E402
import baselines as bl  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.linalg as sla  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import personae  # noqa: E402


def tiny(n_users=30, n_items=20, density=0.3, seed=0) -> sp.csr_matrix:
    """A random binary matrix in which every user and every item has an interaction."""
    rng = np.random.default_rng(seed)
    d = (rng.random((n_users, n_items)) < density).astype(np.float32)
    d[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1
    d[rng.integers(0, n_users, n_items), np.arange(n_items)] = 1
    return sp.csr_matrix(d)


def split_of(X, users=None, truth=None, k=5, genres=None) -> accuracy.Split:
    users = np.arange(X.shape[0]) if users is None else users
    truth = X[users] if truth is None else truth
    return accuracy.Split("test", X, users, truth, k, genres)


def norm_parts(X):
    """Dense R~ = D_u^-1/2 X D_i^-1/2 and the item degrees, in float64."""
    x = X.toarray().astype(np.float64)
    du, di = x.sum(1), x.sum(0)
    return x / np.sqrt(du)[:, None] / np.sqrt(di)[None, :], di


def ideal_filter(X, rank):
    """D^-1/2 V_r^T V_r D^1/2 with V_r from an exact SVD of R~."""
    R, di = norm_parts(X)
    vt = np.linalg.svd(R, full_matrices=False)[2][:rank]
    return np.diag(di**-0.5) @ vt.T @ vt @ np.diag(di**0.5)


# ----------------------------------------------------------------------------- EASE


def ease_closed_form(X, lam):
    """Steck's B = I - P diag(1 / diag P), P = (X^T X + lam I)^-1, in float64."""
    x = X.toarray().astype(np.float64)
    P = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - P @ np.diag(1 / np.diag(P))


@pytest.mark.parametrize("weights", [1.0, 4.0])  # the library's lam is scale-free
def test_ease_matches_its_closed_form(weights):
    X, lam = tiny(), 3.0
    B = ease_closed_form(X, lam)
    m = bl.ease(X * weights, lam * weights**2)
    got = m.tensors()["votes"]
    np.testing.assert_allclose(got, B, atol=1e-5)
    assert (np.diag(got) == 0).all()
    # the constrained least-squares optimum: (G + lam I) B - G is diagonal (the multipliers)
    x = X.toarray().astype(np.float64)
    K = (x.T @ x + lam * np.eye(x.shape[1])) @ got.astype(np.float64) - x.T @ x
    np.testing.assert_allclose(K - np.diag(np.diag(K)), 0, atol=1e-3)
    rows = X[:7]
    np.testing.assert_allclose(m.score(rows), rows.toarray() @ B, atol=1e-4)
    ids, _ = m.recommend(rows, 5)
    want = personae.top_n((rows.toarray() @ B).astype(np.float32), 5, seen=rows)[0]
    np.testing.assert_array_equal(ids, want)


def test_ease_big_float32_cholesky_matches_ease():
    X, lam = tiny(40, 23, seed=1), 5.0
    ref = ease_closed_form(X, lam)
    big = bl.EASEBig(X, lam, step=7)  # slabs that do not divide the item count
    assert big.B.dtype == np.float32
    assert (np.diag(big.B) == 0).all()
    np.testing.assert_allclose(big.B, ref, atol=2e-5)


# ----------------------------------------------------------------------------- graph filters


def test_gfcf_matches_the_dense_formula():
    """The library's GraphFilter, as the harness fits GF-CF, against the dense formula."""
    X = tiny()
    R, _ = norm_parts(X)
    rows = X[3:11]
    for alpha, rank in [(0.0, 4), (0.3, 4), (1.5, 9)]:
        F = R.T @ R + alpha * ideal_filter(X, rank)
        got = bl.fit("gfcf", X, {"alpha": alpha, "rank": rank}).score(rows)
        np.testing.assert_allclose(got, rows.toarray() @ F, atol=1e-5)


def test_library_bspm_is_the_taylor_polynomial_exactly():
    """The library's GraphFilter with time > 0, as the harness fits BSPM: exact powers of P~
    (the whole spectrum is computed on catalogues this small)."""
    X = tiny(seed=2)
    R, _ = norm_parts(X)
    P = R.T @ R
    Y = X[:9].toarray().astype(np.float64)
    beta, rank, T = 0.3, 6, 1.7
    y0 = Y @ P + beta * Y @ ideal_filter(X, rank)
    taylor = sum(np.linalg.matrix_power(-T * P, j) / math.factorial(j) for j in range(5))
    cfg = {"beta": beta, "rank": rank, "T_s": T}
    got = bl.fit("bspm", X, cfg).score(X[:9])
    np.testing.assert_allclose(got, y0 @ taylor, rtol=1e-4, atol=1e-4)
    euler = bl.fit("bspm", X, {**cfg, "solver": "euler"}).score(X[:9])
    np.testing.assert_allclose(euler, y0 @ (np.eye(P.shape[0]) - T * P), rtol=1e-4, atol=1e-4)
    assert isinstance(bl.fit("bspm", X, {**cfg, "K_s": 2}), bl.BSPM)  # numpy beyond one step


def _plateau_reference(lam, phi, K=8):
    """ChebyCF's response at eigenvalues `lam` of P~, written out from the paper's recipe:
    the plateau at the Chebyshev extrema, c_j = 2/(K+1) sum_m target_m T_j(node_m) (c_0
    halved), f = sum_j c_j T_j(1 - 2 lam), with T_j(x) = cos(j arccos x)."""
    k = np.arange(K + 1)
    x = np.cos((K - k) / K * math.pi).round(3)
    target = np.array([0.5 + 0.5 * (-v) ** phi if v < 0 else 0.5 - 0.5 * v**phi for v in x])
    target = target.round(3)
    nodes = np.cos(((K + 1) + 0.5 - (k + 1)) / (K + 1) * math.pi)
    c = np.array([2 / (K + 1) * sum(target * np.cos(j * np.arccos(nodes))) for j in k])
    c[0] /= 2
    t = 1 - 2 * np.asarray(lam, np.float64)
    return sum(c[j] * np.cos(j * np.arccos(np.clip(t, -1, 1))) for j in k)


def _chebycf_reference(X, phi, beta, alpha, rank):
    """ChebyCF's items x items filter, dense, from P~'s eigendecomposition (float64)."""
    R, di = norm_parts(X)
    lam, E = np.linalg.eigh(R.T @ R)
    lam = np.clip(lam, 0, None)
    F = (E * _plateau_reference(lam, phi)) @ E.T
    _, _, vt = np.linalg.svd(R, full_matrices=False)
    F += alpha * vt[:rank].T @ vt[:rank]
    return (di**-beta)[:, None] * F * (di**beta)[None, :]


@pytest.mark.parametrize("phi,beta,alpha,rank", [(1.5, 0.4, 0.2, 5), (2.0, 0.3, 0.0, 12)])
def test_chebycf_matches_its_spectral_definition(phi, beta, alpha, rank):
    """The harness's numpy ChebyCF (K passes of L~) against the filter built from P~'s
    eigendecomposition, and the library's response function against the written-out one."""
    from personae.train.filters import plateau_response

    X = tiny(seed=4)
    lam = np.linspace(0, 1, 11)
    np.testing.assert_allclose(plateau_response(lam, phi), _plateau_reference(lam, phi), atol=1e-12)
    g = bl.NormGraph(X, max_rank=rank)
    got = bl.fit(
        "chebycf", X, {"phi": phi, "beta": beta, "alpha": alpha, "rank": rank}, {"graph": g}
    )
    Y = X[2:12]
    want = Y.toarray() @ _chebycf_reference(X, phi, beta, alpha, rank)
    np.testing.assert_allclose(got.score(None, Y), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("phi,beta,alpha", [(1.5, 0.4, 0.2), (2.0, 0.3, 0.1), (3.0, 0.0, 0.0)])
def test_library_chebycf_is_the_exact_filter_on_a_whole_spectrum(phi, beta, alpha):
    """With every direction of P~ in its spectrum (rank = items), the library's ChebyCF
    (votes b P~ plus the head's exact response less b lam) is the authors' filter on every
    unseen item: the two differ by the response's value at 0 times the identity, which only
    scores the seen items."""
    X = tiny(n_users=40, n_items=16, seed=5)
    F = _chebycf_reference(X, phi, beta, alpha, 16)
    model = personae.GraphFilter(
        rank=16, beta=alpha, flatness=phi, item_power=beta, device="cpu"
    ).fit(X, show_progress=False)
    Y = X[:12]
    got, want = model.score(Y), Y.toarray() @ F
    unseen = Y.toarray() == 0
    np.testing.assert_allclose(got[unseen], want[unseen], rtol=1e-4, atol=1e-5)


def test_chebycf_refuses_bspm_time():
    with pytest.raises(ValueError, match="flatness"):
        personae.GraphFilter(time=1.0, flatness=2.0)
    with pytest.raises(ValueError, match="flatness"):
        personae.GraphFilter(flatness=-1.0)
    with pytest.raises(ValueError, match="item_power"):
        personae.GraphFilter(item_power=float("nan"))


def test_bspm_one_rk4_step_is_the_fourth_order_taylor_polynomial():
    X = tiny(seed=2)
    R, _ = norm_parts(X)
    P = R.T @ R
    g = bl.NormGraph(X, max_rank=8)
    Y = X[:9].toarray().astype(np.float64)
    beta, rank, T = 0.3, 6, 1.7
    y0 = Y @ P + beta * Y @ ideal_filter(X, rank)
    n = P.shape[0]
    taylor = sum(np.linalg.matrix_power(-T * P, j) / math.factorial(j) for j in range(5))
    got = bl.BSPM(g, beta=beta, rank=rank, T_s=T).score(None, X[:9])
    np.testing.assert_allclose(got, y0 @ taylor, atol=1e-4)
    euler = bl.BSPM(g, beta=beta, rank=rank, T_s=T, solver="euler").score(None, X[:9])
    np.testing.assert_allclose(euler, y0 @ (np.eye(n) - T * P), atol=1e-4)
    # two rk4 steps: the polynomial of h = T / 2, twice
    h = T / 2
    step = sum(np.linalg.matrix_power(-h * P, j) / math.factorial(j) for j in range(5))
    two = bl.BSPM(g, beta=beta, rank=rank, T_s=T, K_s=2).score(None, X[:9])
    np.testing.assert_allclose(two, y0 @ step @ step, atol=1e-4)
    # many small steps solve the ODE: y0 exp(-T P~)
    many = bl.BSPM(g, beta=beta, rank=rank, T_s=T, K_s=40).score(None, X[:9])
    np.testing.assert_allclose(many, y0 @ sla.expm(-T * P), atol=1e-4)
    # T = 0: no sharpening
    flat = bl.BSPM(g, beta=beta, rank=rank, T_s=0.0).score(None, X[:9])
    np.testing.assert_allclose(flat, y0, atol=1e-5)


@pytest.mark.parametrize("dense_limit,exact", [(12000, 5000), (0, 0)])
def test_graph_scorer_reads_the_same_scores_as_the_plain_filters(dense_limit, exact):
    X = tiny(40, 25, seed=3)
    g = bl.NormGraph(X, max_rank=12, dense_limit=dense_limit, exact_svd_limit=exact)
    gs = bl.GraphScorer(g)
    rows = X[5:20]
    parts = gs.batch(rows)
    configs = [("gfcf", {"alpha": a, "rank": r}) for a, r in [(0.0, 4), (0.3, 8), (2.0, 12)]]
    configs += [
        ("bspm", {"beta": b, "rank": r, "T_s": t, "solver": s})
        for b, r, t, s in [
            (0.0, 8, 1.0, "rk4"),
            (0.2, 8, 2.5, "rk4"),
            (0.5, 8, 2.5, "rk4"),  # the remembered ideal part of the line above
            (0.5, 12, 2.5, "rk4"),
            (0.5, 12, 0.25, "rk4"),
            (0.3, 4, 0.2, "euler"),
            (0.1, 12, 0.0, "rk4"),
        ]
    ]
    R, _ = norm_parts(X)
    for name, c in configs:
        if name == "gfcf":
            plain = rows.toarray() @ (R.T @ R + c["alpha"] * ideal_filter(X, c["rank"]))
        else:
            plain = bl.BSPM(g, **c).score(None, rows)
        got = gs.score(parts, name, c)
        np.testing.assert_allclose(got, plain, atol=1e-5, err_msg=f"{name} {c}")
    with pytest.raises(ValueError):
        gs.score(parts, "bspm", {"beta": 0.1, "rank": 4, "T_s": 1.0, "K_s": 2})


def test_graph_grids_pick_the_same_numbers_as_full_evaluation():
    X = tiny(60, 30, density=0.25, seed=4)
    fit, held = personae.data._split_rows(X, 0.3, np.random.default_rng(0))
    users = np.flatnonzero(np.diff(held.indptr) > 0)
    s = accuracy.Split("val", fit, users, held[users], 5)
    rows, g = accuracy.graph_grids(["gfcf", "bspm"], s, "ml-100k", batch=17)
    assert len(rows["gfcf"]) == len(bl.grid("gfcf", "ml-100k"))
    assert len(rows["bspm"]) == len(bl.grid("bspm", "ml-100k"))
    for name in ("gfcf", "bspm"):
        for r in rows[name][::25]:
            m = bl.fit(name, fit, r["config"], {"graph": g})  # the library's filter
            assert accuracy.evaluate(m, s, full=False)["ndcg@5"] == pytest.approx(
                r["ndcg@5"], abs=1e-9
            )


# ----------------------------------------------------------------------------- ALS, popularity


def test_als_ranks_as_implicit_recommends():
    X = tiny(50, 40, density=0.2, seed=5)
    m = bl.ALS(X, factors=8, regularization=0.5, alpha=2.0, iterations=6, num_threads=1)
    users = np.arange(X.shape[0])
    want, want_scores = m.model.recommend(users, X, N=7, filter_already_liked_items=True)
    ids, scores = accuracy.rank(m, split_of(X), 7)
    np.testing.assert_array_equal(ids, want)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.score(users[:3], X[:3]), m.U[:3] @ m.V.T, rtol=1e-6)


def test_popularity_ranks_by_count_without_seen_items():
    X = tiny(25, 15, seed=6)
    counts = np.asarray(X.sum(0)).ravel()
    ids, _ = accuracy.rank(bl.Popularity(X), split_of(X), 4)
    order = np.lexsort((np.arange(len(counts)), -counts))  # most popular first, ties lower index
    for u in range(X.shape[0]):
        seen = set(X[u].indices)
        assert list(ids[u]) == [i for i in order if i not in seen][:4]


def test_rank_masks_seen_items_of_dense_scores():
    X = tiny(12, 30, density=0.2, seed=7)
    B = ease_closed_form(X, 2.0)

    class Dense:  # a peer that gives dense scores (as ALS does)
        def score(self, users, rows):
            return rows @ B

    ids, scores = accuracy.rank(Dense(), split_of(X), 3)
    dense = (X @ B).astype(np.float32)
    for u in range(X.shape[0]):
        s = np.where(X[u].toarray().ravel() > 0, -np.inf, dense[u])
        want = np.lexsort((np.arange(len(s)), -s))[:3]
        np.testing.assert_array_equal(ids[u], want)
        np.testing.assert_allclose(scores[u], s[want], rtol=1e-6)


# ----------------------------------------------------------------------------- harness metrics


def taste_example(seed=8):
    """Random histories, disjoint held-out items and lists over 40 items with 5 genres (some
    items have two genres, some none); users 0 and 1 share a history (an entropy tie)."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n_genres = 30, 40, 5
    G = np.zeros((n_items, n_genres), np.float32)
    G[np.arange(n_items), rng.integers(0, n_genres, n_items)] = 1
    G[rng.choice(n_items, 10, replace=False), rng.integers(0, n_genres, 10)] = 1
    G[[0, 1]] = 0  # items without a genre
    # skewed histories: most items from a user's main genre, a few from others
    hist = np.zeros((n_users, n_items), np.float32)
    truth = np.zeros((n_users, n_items), np.float32)
    for u in range(n_users):
        main = rng.integers(0, n_genres)
        w = np.where(G[:, main] > 0, 8.0, 1.0)
        items = rng.choice(n_items, 22, replace=False, p=w / w.sum())
        hist[u, items[:15]] = 1
        truth[u, items[15:]] = 1
    # users 0 and 1: the same history, three single-genre items of every genre (the highest
    # entropy, ln 5, a tie that the stable sort breaks towards user 0)
    single = G.sum(1) == 1
    spread = np.concatenate([np.flatnonzero(single & (G[:, c] > 0))[:3] for c in range(n_genres)])
    assert len(spread) == 3 * n_genres
    hist[0] = 0
    hist[0, spread] = 1
    truth[0] = 0
    truth[0, rng.choice(np.flatnonzero(hist[0] == 0), 6, replace=False)] = 1
    hist[1], truth[1] = hist[0], truth[0]
    ids = np.stack([rng.permutation(np.flatnonzero(hist[u] == 0))[:20] for u in range(n_users)])
    return sp.csr_matrix(hist), sp.csr_matrix(truth), sp.csr_matrix(G), ids


def reference_p(hist, G):
    """p(g|u): each item's genre row normalised to sum 1, summed over the history."""
    g = G.toarray().astype(np.float64)
    g = g / np.maximum(g.sum(1, keepdims=True), 1e-300)
    mass = hist.toarray() @ g
    return mass / mass.sum(1, keepdims=True)


def test_minority_taste_recall_matches_a_direct_computation():
    hist, truth, G, ids = taste_example()
    p = reference_p(hist, G)
    g = G.toarray() > 0
    values = []
    for u in range(hist.shape[0]):
        minority = [j for j in truth[u].indices if g[j].any() and (p[u, g[j]] < 0.1).all()]
        if minority:
            values.append(len(set(ids[u, :10]) & set(minority)) / len(minority))
    assert 3 <= len(values) < hist.shape[0]  # the example exercises both cases
    assert any(v > 0 for v in values)
    got, n = accuracy.minority_recall(ids, truth, G, hist, k=10)
    assert n == len(values)
    assert got == pytest.approx(np.mean(values), abs=1e-9)


def test_multi_taste_third_matches_a_direct_computation():
    hist, _, G, _ = taste_example()
    p = reference_p(hist, G)
    H = [-sum(x * np.log(x) for x in row if x > 0) for row in p]
    np.testing.assert_allclose(accuracy.taste_entropy(hist, G), H, atol=1e-9)
    order = sorted(range(len(H)), key=lambda u: (-H[u], u))  # ties: lower index first
    got = accuracy.multi_taste_third(hist, G)
    assert list(got) == order[: len(H) // 3]
    assert len(got) == 10
    assert list(got[:2]) == [0, 1] and H[0] == pytest.approx(np.log(5))


def test_evaluate_matches_the_definitions():
    hist, truth, G, ids = taste_example()

    class Fixed:  # a model that recommends fixed lists
        def recommend(self, rows, n):
            assert rows.shape[0] == len(ids)
            return ids[:, :n], np.tile(np.arange(n, 0, -1, dtype=np.float32), (len(ids), 1))

    s = accuracy.Split("test", hist, np.arange(hist.shape[0]), truth, 10, G)
    accuracy.CANDIDATES, old = 20, accuracy.CANDIDATES
    try:
        res = accuracy.evaluate(Fixed(), s)
    finally:
        accuracy.CANDIDATES = old

    def by_definition(lists):
        nd, rc = [], []
        for u in range(len(lists)):
            t = set(truth[u].indices)
            hits = [int(i) in t for i in lists[u, :10]]
            dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1 / np.log2(r + 2) for r in range(min(10, len(t))))
            nd.append(dcg / idcg)
            rc.append(sum(hits) / len(t))
        return nd, rc

    nd, rc = by_definition(ids)
    assert res["ndcg@10"] == pytest.approx(np.mean(nd), abs=1e-6)
    assert res["recall@10"] == pytest.approx(np.mean(rc), abs=1e-6)
    third = accuracy.multi_taste_third(hist, G)
    assert res["multi_third_ndcg@10"] == pytest.approx(np.mean(np.array(nd)[third]), abs=1e-6)
    assert res["multi_third_recall@10"] == pytest.approx(np.mean(np.array(rc)[third]), abs=1e-6)
    # calibrated columns: lambda 0.5 on the 20 candidates and their scores, cut to 10
    scores = np.tile(np.arange(20, 0, -1, dtype=np.float32), (len(ids), 1))
    cal = personae.CalibratedReranker(G, lam=0.5).rerank(ids, scores, history=hist, n=10).ids
    assert not np.array_equal(cal, ids[:, :10])  # the reranker changed some lists
    cnd, crc = by_definition(cal)
    assert res["cal_ndcg@10"] == pytest.approx(np.mean(cnd), abs=1e-6)
    assert res["cal_recall@10"] == pytest.approx(np.mean(crc), abs=1e-6)
    assert res["cal_minority_recall@10"] == pytest.approx(
        accuracy.minority_recall(cal, truth, G, hist)[0], abs=1e-9
    )


def test_grids():
    assert len(bl.grid("als", "ml-100k")) == 27
    assert len(bl.grid("als", "gowalla")) == 8
    assert {"lam": 500} in bl.grid("ease", "ml-100k")
    assert len(bl.grid("multvae", "ml-100k")) == 8
    assert len(bl.grid("gfcf", "ml-100k")) == 36
    assert len(bl.grid("bspm", "ml-100k")) == 150
    assert len(bl.grid("ease", "ml-100k")) == 11
    # the paper's schedule and today's defaults are both in the grid
    assert {"total_anneal_steps": 200_000, "anneal_cap": 0.2} in bl.grid("multvae", "ml-100k")
    defaults = personae.MultVAE().params
    assert any(
        all(defaults[k] == v for k, v in c.items()) and c for c in bl.grid("multvae", "ml-100k")
    )
    assert bl.grid("ampcf", "gowalla") == [{}]
    assert {"phi": 1.5, "beta": 0.4, "alpha": 0.2, "rank": 512} in bl.grid("chebycf", "gowalla")
    assert len(bl.grid("gfcf", "synthetic")) == len(bl.grid("gfcf", "ml-100k")) + 8
    with pytest.raises(ValueError):
        bl.fit("ampcf", tiny(), {"lam": 1.0})


def test_splits_table_pairs_ampcf_with_each_peer_per_split(tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy, "OUT", tmp_path)
    ndcg = {0: (0.30, 0.33), 1: (0.20, 0.20), 3: (0.40, 0.36)}  # split: (ease, ampcf)
    for seed, (e, a) in ndcg.items():
        minority = 0.0 if seed == 1 else 0.1  # a split without a ratio
        res = {
            "models": {
                "ease": {"test": {"ndcg@10": e, "minority_recall@10": minority}},
                "ampcf": {"test": {"ndcg@10": a, "minority_recall@10": 0.2}},
            }
        }
        accuracy.write_results("ml-100k", res, seed)
    accuracy.write_results("ml-100k-other", {"models": {}})  # another data set's file
    assert (tmp_path / "ml-100k.json").exists() and (tmp_path / "ml-100k-split3.json").exists()
    lines = accuracy.splits_table("ml-100k").splitlines()
    assert "splits 0, 1, 3" in lines[0]
    ease = next(line for line in lines if line.startswith("| ease |")).split(" | ")
    ratios = np.array([1.1, 1.0, 0.9])
    want_se = ratios.std(ddof=1) / np.sqrt(3)
    assert ease[1] == "3" and float(ease[2]) == pytest.approx(0.3, abs=1e-4)
    assert float(ease[4]) == pytest.approx(1.0, abs=1e-4)
    assert float(ease[5]) == pytest.approx(want_se, abs=1e-4)
    assert float(ease[8]) == pytest.approx(2.0, abs=1e-4)  # minority recall, paired
    assert float(ease[6]) == pytest.approx(0.2 / 3, abs=1e-4)


def test_other_splits_leave_the_harness_split_and_gowalla_alone():
    with pytest.raises(ValueError, match="one split"):
        accuracy.load_dataset("gowalla", split_seed=1)
    assert accuracy.result_path("ml-100k") == accuracy.OUT / "ml-100k.json"
    assert accuracy.result_path("ml-100k", 2) == accuracy.OUT / "ml-100k-split2.json"
