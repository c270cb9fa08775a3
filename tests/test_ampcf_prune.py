"""AMP-CF's certified pruned top-N against the exact path (the fused scorer on every item,
``exact_top_n``) and the reference top-N of the dense scores, on random models: the same lists,
ties aside."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ampcf import random_model, weighted_csr

from personae import AMPCF

from conftest import runnable_first_passes
from reference import assert_same_lists, top_n


def with_ties(t: dict, n_items: int) -> dict:
    """The tensors with items 1 and 3 copying items 0 and 2 as candidates (their column of S,
    R and z): every user scores them exactly alike."""
    t = dict(t)
    for a, b in ((0, 1), (2, 3)):
        for key in ("low_right", "item_space"):
            if key in t:
                t[key] = t[key].copy()
                t[key][b] = t[key][a]
        if "votes" in t:
            t["votes"] = t["votes"].copy()
            t["votes"][:, b] = t["votes"][:, a]
        else:
            s = sp.csr_matrix(
                (t["votes_data"], t["votes_indices"], t["votes_indptr"]),
                shape=(n_items, n_items),
            ).tolil()
            s[:, b] = s[:, a]
            s = sp.csr_matrix(s)
            s.eliminate_zeros()
            s.sort_indices()
            t.update(
                votes_indptr=s.indptr.astype(np.int64),
                votes_indices=s.indices.astype(np.int32),
                votes_data=s.data.astype(np.float32),
            )
    return t


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_users=st.integers(1, 8),
    n_items=st.integers(1, 70),
    k=st.integers(1, 6),
    n_clusters=st.integers(1, 8),
    att_dim=st.integers(1, 5),
    rank=st.integers(0, 5),
    sparse=st.booleans(),
    mix=st.sampled_from([0.0, 0.25, 0.6, 1.0]),
    delta=st.sampled_from([0.0, 0.5]),
    gamma=st.sampled_from([0.0, 1.0, -0.5]),
    tau=st.sampled_from([0.2, 1.0, 5.0]),
    n=st.integers(1, 80),
    ties=st.booleans(),
    exclude=st.booleans(),
)
def test_pruned_top_n_equals_the_exact_lists(
    seed,
    n_users,
    n_items,
    k,
    n_clusters,
    att_dim,
    rank,
    sparse,
    mix,
    delta,
    gamma,
    tau,
    n,
    ties,
    exclude,
):
    model, t, cfg = random_model(
        seed, n_items, k, n_clusters, att_dim, rank, sparse, mix, delta, gamma, tau
    )
    if ties and n_items >= 4:
        model = type(model).from_tensors(with_ties(t, n_items), **cfg)
    rng = np.random.default_rng(seed)
    x = weighted_csr(rng, n_users, n_items, 0.3)  # the last row is empty
    # A user who has seen every item.
    x = sp.csr_matrix(sp.vstack([x, sp.csr_matrix(np.ones((1, n_items), np.float32))]))
    x.sort_indices()
    ex = rng.choice(n_items, size=n_items // 4, replace=False) if exclude else None
    dense = model.score(x)
    masked = dense.copy()
    if ex is not None:
        masked[:, ex] = -np.inf
    masked[x.nonzero()] = -np.inf
    ref_ids, ref_scores = top_n(dense, n, seen=x, exclude=ex)
    core = model._fitted()
    assert core.exact_top_n is False  # pruned by default
    kw = {} if ex is None else {"exclude_items": ex}
    got_ids, got_scores = model.recommend(x, n, **kw)
    core.set_exact_top_n(True)
    try:
        exact_ids, exact_scores = model.recommend(x, n, **kw)
    finally:
        core.set_exact_top_n(False)
    # The exact path is the reference top-N of the dense scores, bit for bit.
    np.testing.assert_array_equal(exact_ids, ref_ids)
    np.testing.assert_array_equal(exact_scores, ref_scores)
    assert_same_lists(got_ids, got_scores, masked, ref_ids, ref_scores)
    assert (got_ids[-1] == -1).all()  # everything seen: nothing to list
    # explain=True on the pruned path: the same lists, the dominant persona of each item.
    ids2, _, dom = model.recommend(x, n, explain=True, **kw)
    np.testing.assert_array_equal(ids2, got_ids)
    listed = got_ids >= 0
    want = model.explain(np.where(listed, got_ids, -1), x)["dominant"]
    np.testing.assert_array_equal(dom[listed], want[listed])
    assert (dom[~listed] == -1).all()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_users=st.integers(1, 40),
    n_items=st.integers(1, 300),
    k=st.integers(1, 6),
    rank=st.sampled_from([1, 7, 33, 64]),
    sparse=st.booleans(),
    mix=st.sampled_from([0.0, 0.25, 1.0]),
    n=st.integers(1, 120),
    ties=st.booleans(),
    exclude=st.booleans(),
)
@pytest.mark.parametrize("first", ["fp32", "amx", "avx512bf16", "avx512int16", "avx2int16"])
def test_each_first_pass_of_t_gives_the_exact_lists(
    seed, n_users, n_items, k, rank, sparse, mix, n, ties, exclude, first
):
    # The pruned path's t = x F has its low-rank part from the fp32 kernel, or from a bf16 or int16
    # kernel (AMX tiles, AVX-512 vdpbf16ps or vpdpwssd, AVX2 vpmaddwd) within a certified bound
    # (then the bounds widen by it, the seeds are t's best items by the low-precision value, and
    # users with one persona rescore exactly the items whose bound reaches their n-th best lower
    # bound). Either way: the exact path's lists, ties aside, and with one persona per user (mix = 0
    # or K = 1) the low-precision pass rescores in the fused scorer's order, so ids and scores are
    # the exact path's bit for bit. Users past 32 (a bf16 block) and ranks past 32 (a k block)
    # included.
    from personae import _core

    if first != "fp32" and first not in runnable_first_passes():
        pytest.skip(f"no {first} first pass on this CPU: it would be the fp32 path")
    model, t, cfg = random_model(seed, n_items, k, 4, 3, rank, sparse, mix, 0.5, 0.0, 1.0)
    if ties and n_items >= 4:
        model = type(model).from_tensors(with_ties(t, n_items), **cfg)
    rng = np.random.default_rng(seed)
    x = weighted_csr(rng, n_users, n_items, 0.3)
    ex = rng.choice(n_items, size=n_items // 4, replace=False) if exclude else None
    kw = {} if ex is None else {"exclude_items": ex}
    masked = model.score(x)
    if ex is not None:
        masked[:, ex] = -np.inf
    masked[x.nonzero()] = -np.inf
    core = model._fitted()
    try:
        assert _core.first_pass(first) == first
        got_ids, got_scores = model.recommend(x, n, **kw)
        _core.first_pass("best")
        core.set_exact_top_n(True)
        want_ids, want_scores = model.recommend(x, n, **kw)
    finally:
        _core.first_pass("best")
        core.set_exact_top_n(False)
    assert_same_lists(got_ids, got_scores, masked, want_ids, want_scores)
    if first != "fp32" and (mix == 0.0 or k == 1):
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_array_equal(got_scores, want_scores)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_items=st.sampled_from([2049, 4100, 6001]),
    k=st.sampled_from([3, 8]),
    rank=st.sampled_from([0, 16, 48]),
    first=st.sampled_from(["fp32", "avx2int16"]),
    mix=st.sampled_from([0.25, 1.0]),
)
def test_catalogues_of_several_tiles_give_the_exact_lists(seed, n_items, k, rank, first, mix):
    # Past 2,048 items the pruned path walks each user's rows of sparse S a tile at a time and
    # bounds the personas' low-rank votes along x L (the Split bound): Gowalla's shape in small
    # (non-negative sparse S, a low-rank part, items in taste clusters, histories of 5 to 60
    # items), every first pass of t this CPU runs, against the exact path.
    from personae import _core

    if first != "fp32" and first not in runnable_first_passes():
        first = "fp32"
    rng = np.random.default_rng(seed)
    n_clusters, att_dim = 12, 8
    s = sp.random(n_items, n_items, density=8 / n_items, random_state=rng, dtype=np.float32)
    s = sp.csr_matrix(s + sp.eye(n_items, dtype=np.float32))
    s.sort_indices()
    centroids = rng.normal(size=(n_clusters, att_dim))
    labels = rng.integers(0, n_clusters, size=n_items)
    z = centroids[labels] + 0.3 * rng.normal(size=(n_items, att_dim))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    t = {
        "item_space": z.astype(np.float32),
        "item_cluster": labels.astype(np.int32),
        "centroids": centroids.astype(np.float32),
        "item_count": rng.integers(1, 50, size=n_items).astype(np.float32),
        "votes_indptr": s.indptr.astype(np.int64),
        "votes_indices": s.indices.astype(np.int32),
        "votes_data": s.data,
    }
    if rank:
        t["low_left"] = (0.2 * rng.normal(size=(n_items, rank))).astype(np.float32)
        t["low_right"] = (0.2 * rng.normal(size=(n_items, rank))).astype(np.float32)
    model = AMPCF.from_tensors(t, n_personas=k, tau=1.0, mix=mix, delta=0.0, gamma=0.0)
    rows = []
    for _ in range(24):
        tastes = rng.choice(n_clusters, size=rng.integers(1, 5), replace=False)
        pool = np.flatnonzero(np.isin(labels, tastes))
        rows.append(rng.choice(pool, size=min(len(pool), rng.integers(5, 60)), replace=False))
    x = sp.csr_matrix(
        (
            rng.uniform(0.5, 3.0, size=sum(map(len, rows))).astype(np.float32),
            np.concatenate(rows),
            np.r_[0, np.cumsum(list(map(len, rows)))],
        ),
        shape=(len(rows), n_items),
    )
    x.sort_indices()
    masked = model.score(x)
    masked[x.nonzero()] = -np.inf
    core = model._fitted()
    try:
        _core.first_pass(first)
        got_ids, got_scores = model.recommend(x, 100)
        _core.first_pass("best")
        core.set_exact_top_n(True)
        want_ids, want_scores = model.recommend(x, 100)
    finally:
        _core.first_pass("best")
        core.set_exact_top_n(False)
    assert_same_lists(got_ids, got_scores, masked, want_ids, want_scores)
