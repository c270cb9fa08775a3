"""Interactions, loaders, splits and the synthetic generator."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import personae
import personae.data
from personae import Interactions, holdout_split, strong_split, synthetic

from conftest import DATA


def test_from_arrays_maps_ids_and_sums_duplicates():
    x = Interactions.from_arrays(["b", "a", "b", "b"], [10, 20, 10, 30], [1.0, 2.0, 0.5, 1.0])
    assert x.user_ids.tolist() == ["a", "b"] and x.item_ids.tolist() == [10, 20, 30]
    assert x.matrix.toarray().tolist() == [[0, 2, 0], [1.5, 0, 1]]
    assert x.matrix.has_canonical_format and x.matrix.dtype == np.float32


def test_fixed_vocabulary_and_unknown_ids():
    train = Interactions.from_arrays([1, 2], [5, 6])
    test = Interactions.from_arrays(
        [2, 1, 1], [6, 5, 7], user_ids=train.user_ids, item_ids=train.item_ids, drop_unknown=True
    )
    assert test.matrix.shape == (2, 2) and test.nnz == 2
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        Interactions.from_arrays([1], [7], item_ids=train.item_ids)


@pytest.mark.parametrize(
    "bad,msg",
    [
        ({"weights": [np.nan]}, "finite"),
        ({"weights": [-1.0]}, "non-negative"),
        ({"weights": [1.0, 2.0]}, "shape"),
    ],
)
def test_bad_weights(bad, msg):
    with pytest.raises(ValueError, match=msg):
        Interactions.from_arrays([1], [2], **bad)


def test_files_round_trip(tmp_path):
    df = pd.DataFrame({"uid": ["u1", "u1", "u2"], "iid": ["x", "y", "x"], "w": [1.0, 2.0, 3.0]})
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_parquet(tmp_path / "a.parquet")
    (tmp_path / "a.txt").write_text("0 1 2\n1 2\n")
    a = Interactions.read(tmp_path / "a.csv", user_col="uid", item_col="iid", weight_col="w")
    b = Interactions.read(tmp_path / "a.parquet", user_col="uid", item_col="iid", weight_col="w")
    assert (a.matrix != b.matrix).nnz == 0 and a.matrix.sum() == 6.0
    c = Interactions.read(tmp_path / "a.txt")
    assert c.matrix.toarray().tolist() == [[1, 1], [0, 1]] and c.item_ids.tolist() == [1, 2]
    with pytest.raises(ValueError, match="column 'nope' not found"):
        Interactions.read(tmp_path / "a.csv", user_col="nope")
    with pytest.raises(FileNotFoundError):
        Interactions.read(tmp_path / "missing.csv")
    (tmp_path / "bad.txt").write_text("0 a b\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        Interactions.read(tmp_path / "bad.txt")


def test_holdout_split_is_seeded_disjoint_and_complete():
    x = synthetic(n_users=300, n_items=100, n_tastes=4, seed=1).interactions
    tr, te = holdout_split(x, 0.2, seed=7)
    tr2, te2 = holdout_split(x, 0.2, seed=7)
    assert (tr.matrix != tr2.matrix).nnz == 0 and (te.matrix != te2.matrix).nnz == 0
    assert tr.matrix.multiply(te.matrix).nnz == 0
    assert ((tr.matrix + te.matrix) != x.matrix).nnz == 0
    counts = np.diff(x.matrix.indptr)
    assert (np.diff(tr.matrix.indptr)[counts > 0] >= 1).all()
    np.testing.assert_array_equal(
        np.diff(te.matrix.indptr), np.floor(counts * 0.2 + 0.5).clip(max=counts - 1)
    )
    assert (holdout_split(x, 0.2, seed=8)[1].matrix != te.matrix).nnz > 0


def test_strong_split():
    x = synthetic(n_users=300, n_items=100, n_tastes=4, seed=1).interactions
    s = strong_split(x, 50, seed=0)
    assert s.train.n_users == 200 and s.val_in.n_users == 50 and s.test_out.n_users == 50
    users = np.concatenate([s.train.user_ids, s.val_in.user_ids, s.test_in.user_ids])
    assert sorted(users.tolist()) == x.user_ids.tolist()
    assert (s.val_in.user_ids == s.val_out.user_ids).all()
    assert s.val_in.matrix.multiply(s.val_out.matrix).nnz == 0
    with pytest.raises(ValueError, match="n_heldout_users"):
        strong_split(x, 150)


def test_synthetic_ground_truth_is_consistent():
    d = synthetic(n_users=500, n_items=240, n_tastes=6, seed=2)
    assert d.interactions.n_users == 500 and d.item_taste.shape == (240,)
    np.testing.assert_allclose(d.user_mixture.sum(1), 1.0)
    k = (d.user_mixture > 0).sum(1)
    assert set(np.unique(k)) <= {1, 2, 3, 4} and (k >= 2).mean() > 0.5
    dom = d.user_mixture.max(1)[k >= 2]
    assert (dom >= 0.55).all() and (dom <= 0.8).all()
    # Items a user touched come from that user's own tastes only.
    m = d.interactions.matrix
    for u in range(50):
        tastes = set(d.item_taste[m[u].indices].tolist())
        assert tastes <= set(np.flatnonzero(d.user_mixture[u]).tolist())
    assert d.user_tastes(0)[0] == np.argmax(d.user_mixture[0])
    # Power-law popularity: the top 10% of items hold far more than 10% of interactions.
    pop = np.sort(np.asarray(m.sum(0)).ravel())[::-1]
    assert pop[:24].sum() > 2 * 0.1 * pop.sum()  # over twice the uniform share
    again = synthetic(n_users=500, n_items=240, n_tastes=6, seed=2)
    assert (again.interactions.matrix != m).nnz == 0


@pytest.mark.skipif(not (DATA / "gowalla").exists(), reason="shared data folder absent")
def test_gowalla_loads_with_published_sizes():
    tr = Interactions.from_lightgcn(DATA / "gowalla" / "train.txt")
    assert tr.n_users == 29858 and tr.n_items == 40981 and tr.nnz == 810128


def test_public_api_names():
    for name in personae.__all__:
        assert getattr(personae, name).__doc__, name


def test_ids_are_read_as_written(tmp_path):
    """'007' and '7' are two items in every reader; numbers and their text are one id."""
    df = pd.DataFrame({"user": ["u1", "u1", "u2"], "item": ["007", "7", "7"]})
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_csv(tmp_path / "a.tsv", index=False, sep="\t")
    df.to_parquet(tmp_path / "a.parquet")
    for suffix in ("csv", "tsv", "parquet"):
        x = Interactions.read(tmp_path / f"a.{suffix}")
        assert x.item_ids.tolist() == ["007", "7"], suffix
        assert x.matrix.toarray().tolist() == [[1, 1], [0, 1]]
    # A vocabulary of integers (from the Python API) matches the same ids written as text.
    ints = Interactions.from_arrays([1, 2, 2], [7, 8, 9])
    text = Interactions.from_arrays(["1", "2"], ["8", "9"], item_ids=ints.item_ids)
    assert text.matrix.toarray().tolist() == [[0, 1, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        Interactions.from_arrays(["1"], ["007"], item_ids=ints.item_ids)


def test_poor_vocabulary_match_fails_with_examples_unless_dropping(tmp_path):
    train = Interactions.from_arrays(["a"] * 4, ["x1", "x2", "x3", "x4"])
    pd.DataFrame({"user": ["b"] * 4, "item": ["1", "2", "3", "x1"]}).to_csv(
        tmp_path / "h.csv", index=False
    )
    read = Interactions.read
    with pytest.raises(ValueError, match=r"3 of 4 item ids \(column 'item' and file .*h.csv\)"):
        read(tmp_path / "h.csv", item_ids=train.item_ids, drop_unknown="auto")
    with pytest.raises(ValueError, match=r"e.g. \['1', '2', '3'\]"):
        read(tmp_path / "h.csv", item_ids=train.item_ids)
    with pytest.warns(UserWarning, match="3 of 4 item ids .* dropped those rows"):
        x = read(tmp_path / "h.csv", item_ids=train.item_ids, drop_unknown=True)
    assert x.nnz == 1
    pd.DataFrame({"user": ["b"] * 4, "item": ["x1", "x2", "x3", "zz"]}).to_csv(
        tmp_path / "g.csv", index=False
    )
    with pytest.warns(UserWarning, match="1 of 4 item ids"):
        assert read(tmp_path / "g.csv", item_ids=train.item_ids, drop_unknown="auto").nnz == 3


def test_vocabulary_rules():
    v = personae.Vocabulary(["b", "a", "c"])
    codes, known = v.lookup(["c", "z", "a"], drop_unknown=True)
    assert codes.tolist() == [2, -1, 1] and known.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="appears more than once"):
        personae.Vocabulary([1, 2, 1])
    assert personae.Vocabulary(np.array([3.0, 1.0])).ids.dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(2, 25), st.integers(0, 50))
def test_carve_validation_hides_a_share_of_some_users_only(seed, rows, cols, n_users):
    rng = np.random.default_rng(seed)
    m = sp.csr_matrix((rng.random((rows, cols)) < 0.3).astype(np.float32))
    fit, held, users = personae.data.carve_validation(m, n_users, 0.2, seed=seed)
    assert fit.shape == held.shape == m.shape
    # Nothing lost or invented: fit + held is the input, and they never overlap.
    assert ((fit + held) != m).nnz == 0 and fit.multiply(held).nnz == 0
    counts = np.diff(m.indptr)
    hidden = np.diff(held.indptr)
    assert len(users) <= n_users and (np.diff(users) > 0).all()
    # Only validation users lose items: round(0.2 n), at least one left.
    others = np.setdiff1d(np.arange(rows), users)
    assert (hidden[others] == 0).all()
    want = np.minimum(np.floor(counts[users] * 0.2 + 0.5), counts[users] - 1)
    np.testing.assert_array_equal(hidden[users], want)
    assert (hidden[users] > 0).all() and (counts[users] >= 2).all()


def _recency_reference(users, times, strength):
    """One user at a time, in plain Python: sort by (time, input position)."""
    out = [0.0] * len(users)
    for u in set(users):
        mine = sorted((t, i) for i, (v, t) in enumerate(zip(users, times, strict=True)) if v == u)
        for place, (_, i) in enumerate(mine):
            z = place / (len(mine) - 1) if len(mine) > 1 else 1.0
            out[i] = math.exp(strength * (z - 1))
    return np.array(out)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(-3, 3)), max_size=40),
    st.floats(0, 5),
)
def test_recency_weights_match_a_per_user_reference(pairs, strength):
    from personae.data import recency_weights

    users = [u for u, _ in pairs]
    times = [t for _, t in pairs]  # small range: many ties, kept in input order
    w = recency_weights(users, times, strength)
    assert w.shape == (len(pairs),)
    np.testing.assert_allclose(w, _recency_reference(users, times, strength), rtol=1e-12)
    assert ((w > 0) & (w <= 1)).all()
    for u in set(users):  # each user's latest interaction weighs 1
        mine = [i for i, v in enumerate(users) if v == u]
        assert max(w[mine]) == 1.0


def test_recency_weights_inputs():
    from personae.data import recency_weights

    days = np.array(["2024-01-03", "2024-01-01", "2024-01-02"], dtype="datetime64[D]")
    np.testing.assert_allclose(recency_weights(["a", "a", "a"], days), np.exp([0, -1, -0.5]))
    assert (recency_weights(["a", "b"], [1.5, 0.5], strength=0) == 1).all()
    assert recency_weights([], []).shape == (0,)
    far = np.array(["9999-01-01", "1000-01-01"], dtype="datetime64[s]")  # beyond ns range
    np.testing.assert_allclose(recency_weights([7, 7], far), np.exp([0, -1]))
    aware = pd.Series(pd.to_datetime(["2024-01-02 01:00", "2024-01-02 00:30"]))
    aware = aware.dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")  # pandas' object-free form
    np.testing.assert_allclose(recency_weights(pd.Series([3, 3]), aware), np.exp([0, -1]))
    big = np.array([2**64 - 1, 2**63], dtype=np.uint64)
    np.testing.assert_allclose(recency_weights([7, 7], big), np.exp([0, -1]))
    # weights fold into a history as Interactions.from_arrays takes them
    inter = personae.Interactions.from_arrays(
        ["a", "a", "b"], [10, 11, 10], recency_weights(["a", "a", "b"], [5, 9, 1])
    )
    assert np.allclose(sorted(inter.matrix.data), [np.exp(-1), 1, 1])
    with pytest.raises(ValueError, match="one length"):
        recency_weights([1, 2], [1])
    with pytest.raises(ValueError, match="position 1"):
        recency_weights([1, 2], [1.0, float("nan")])
    with pytest.raises(ValueError, match="NaT at position 0"):
        recency_weights([1], np.array(["NaT"], dtype="datetime64[s]"))
    with pytest.raises(ValueError, match="strength must be finite"):
        recency_weights([1], [1], strength=-1)
    with pytest.raises(TypeError, match="times must be numbers"):
        recency_weights([1], ["yesterday"])


def test_odd_files_and_columns_fail_by_name(tmp_path):
    """Found by a review: each failed with an error naming no file or column, or read as
    something else."""
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf0 1 2\n1 2\n")  # LightGCN text saved with a byte-order mark
    assert Interactions.read(bom).user_ids.tolist() == [0, 1]
    big = tmp_path / "big.txt"
    big.write_text("18446744073709551615 1 2\n")
    with pytest.raises(ValueError, match=r"big.txt:1: expected int64 integers"):
        Interactions.read(big)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.csv: the file is empty"):
        Interactions.read(empty)
    header = tmp_path / "header.csv"
    header.write_text("user,item\n")
    with pytest.raises(ValueError, match="header.csv: no interactions found"):
        Interactions.read(header)
    blank = tmp_path / "w.csv"
    blank.write_text("user,item,w\n1,2,\n3,4,1\n")
    with pytest.raises(ValueError, match="the weights of .*w.csv must hold numbers.*empty cell"):
        Interactions.read(blank, weight_col="w")
    for dtype in ("string", "object"):
        frame = pd.DataFrame({"user": pd.array(["a", None], dtype=dtype), "item": [1, 2]})
        with pytest.raises(ValueError, match="1 null id"):
            Interactions.from_dataframe(frame)
    # An empty vocabulary knows no id (it raised IndexError).
    known, mask = personae.data.Vocabulary(np.array([], np.int64)).lookup([1, 2], drop_unknown=True)
    assert known.tolist() == [-1, -1] and not mask.any()


def test_recency_weights_follow_the_id_rule():
    """Users were grouped by np.unique: 7 and "7" raised TypeError, and NaN was a user."""
    w = personae.data.recency_weights(pd.Series([7, "7", 8], dtype=object), [1, 2, 3])
    np.testing.assert_allclose(w, [math.exp(-1), 1.0, 1.0])
    with pytest.raises(ValueError, match="null id"):
        personae.data.recency_weights(np.array([1.0, np.nan]), [1, 2])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"dominant_share": (1.5, 2)}, "dominant_share"),
        ({"dominant_share": (0.8, 0.5)}, "dominant_share"),
        ({"mean_items": -1}, "mean_items"),
        ({"mean_items": 0}, "mean_items"),
        ({"zipf": float("nan")}, "zipf"),
    ],
)
def test_synthetic_refuses_settings_that_would_generate_nonsense(kw, match):
    """A dominant share above 1 gave negative mixture weights; mean_items <= 0 only warned."""
    with pytest.raises(ValueError, match=match):
        synthetic(50, 20, 4, **kw)
