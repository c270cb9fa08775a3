"""personae.Categories: tables keyed by item id mapped onto the model's item order, and the
reranker and metrics taking it (the same results as the matrix in model order, and an error
instead of wrong lists when the items differ)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import personae
from personae import CalibratedReranker, Categories, Interactions, metrics

pd = pytest.importorskip("pandas")

GENRES = ["comedy", "doc", "drama"]


def _catalogue(n_items=12, seed=0):
    """A long-format genre table over items "m1".."mn" (file order: by number) and the same
    flags as a dense items x genres matrix in that file order. The ids are text, not plain
    integers, so personae orders them as text ('m1', 'm10', 'm11', 'm12', 'm2', ...): the
    model's order differs from the file's."""
    rng = np.random.default_rng(seed)
    flags = (rng.random((n_items, len(GENRES))) < 0.4).astype(np.float32)
    flags[np.arange(n_items), rng.integers(0, len(GENRES), n_items)] = 1
    ids = [f"m{i + 1}" for i in range(n_items)]
    rows, cols = np.nonzero(flags)
    long = pd.DataFrame({"item": [ids[r] for r in rows], "genre": [GENRES[c] for c in cols]})
    return ids, flags, long


def _problem(n_users=6, n_items=12, seed=0):
    """Interactions read the way a CSV gives them (text ids: items ordered 'm1', 'm10', 'm11',
    'm12', 'm2', ...), candidates and scores in that model order, and the genre table."""
    ids, flags, long = _catalogue(n_items, seed)
    rng = np.random.default_rng(seed + 1)
    users = np.repeat(np.arange(n_users), 4)
    # Every item seen at least once, so the model's items are the table's.
    picks = np.concatenate([rng.permutation(n_items), rng.integers(0, n_items, len(users))])
    items = np.array([ids[i] for i in picks[: len(users)]])
    train = Interactions.from_arrays(users, items)
    assert train.item_ids[:3].tolist() == ["m1", "m10", "m11"]  # text order, not the file's
    cand = np.stack([rng.permutation(train.n_items) for _ in range(train.n_users)])
    scores = rng.random(cand.shape).astype(np.float32)
    # The flags in the model's order, built by hand: row i is the item train.item_ids[i].
    in_model_order = flags[[ids.index(x) for x in train.item_ids]]
    return train, cand, scores, long, flags, in_model_order


# -- building ---------------------------------------------------------------------------------


def test_from_frame_long_wide_and_split_agree():
    ids, flags, long = _catalogue()
    c = Categories.from_frame(long, "item", "genre", item_ids=ids)
    assert (c.n_items, c.n_categories, c.names) == (12, 3, GENRES)
    np.testing.assert_array_equal(c.matrix.toarray(), flags)
    assert c.item_ids.tolist() == ids
    wide = pd.DataFrame(flags.astype(int), columns=GENRES).assign(item=ids)
    w = Categories.from_frame(wide, "item", GENRES, item_ids=ids)
    assert w == c and w.names == GENRES
    # MovieLens' multi-genre cells ("comedy|drama") read with split=.
    cells = long.groupby("item", sort=False)["genre"].agg("|".join).reset_index()
    s = Categories.from_frame(cells, "item", "genre", item_ids=ids, split="|")
    assert s == c
    # Without item_ids the table's distinct ids, sorted (as text: they are not plain
    # integers), are the rows.
    assert Categories.from_frame(long, "item", "genre").item_ids.tolist() == sorted(ids)


def test_long_weights_sum_and_flags_count_once():
    df = pd.DataFrame(
        {"item": ["a", "a", "a", "b"], "genre": ["x", "x", "y", "y"], "w": [1.0, 2.0, 0.5, 4]}
    )
    flags = Categories.from_frame(df, "item", "genre", item_ids=["a", "b"])
    np.testing.assert_array_equal(flags.matrix.toarray(), [[1, 1], [0, 1]])
    weighted = Categories.from_frame(df, "item", "genre", item_ids=["a", "b"], weight_col="w")
    np.testing.assert_array_equal(weighted.matrix.toarray(), [[3, 0.5], [0, 4]])


def test_ids_are_compared_as_text():
    df = pd.DataFrame({"item": ["7", "10", "8"], "genre": ["x", "y", "x"]})
    c = Categories.from_frame(df, "item", "genre", item_ids=np.array([8, 7, 10]))
    np.testing.assert_array_equal(c.matrix.toarray(), [[1, 0], [1, 0], [0, 1]])
    ints = pd.DataFrame({"item": [7, 10, 8], "genre": ["x", "y", "x"]})
    assert Categories.from_frame(ints, "item", "genre", item_ids=["8", "7", "10"]) == c
    # "007" is another id than 7.
    with pytest.raises(personae.InvalidInputError, match="item '007'"):
        Categories.from_frame(
            pd.DataFrame({"item": ["007"], "genre": ["x"]}), "item", "genre", item_ids=[7]
        )


def test_unknown_and_missing_policies():
    df = pd.DataFrame({"item": ["a", "zz", "b", "c"], "genre": ["x", "y", "x", "y"]})
    with pytest.raises(personae.InvalidInputError, match=r"1 of the 4 rows.*first: item 'zz'"):
        Categories.from_frame(df, "item", "genre", item_ids=["a", "b", "c"])
    ok = Categories.from_frame(df, "item", "genre", item_ids=["a", "b", "c"], unknown="ignore")
    np.testing.assert_array_equal(ok.matrix.toarray(), [[1, 0], [1, 0], [0, 1]])
    with pytest.warns(UserWarning, match="1 of the 4 rows"):
        auto = Categories.from_frame(df, "item", "genre", item_ids=["a", "b", "c"], unknown="auto")
    assert auto == ok
    with pytest.raises(personae.InvalidInputError, match="same format"):
        Categories.from_frame(df, "item", "genre", item_ids=["A", "B", "zz"], unknown="auto")
    # Items of the model that the table does not list.
    model = ["a", "d", "b", "zz"]
    with pytest.raises(personae.InvalidInputError, match=r"1 of the 4 items.*first: item 'd'"):
        Categories.from_frame(df, "item", "genre", item_ids=model, unknown="ignore")
    empty = Categories.from_frame(
        df, "item", "genre", item_ids=model, unknown="ignore", missing="empty"
    )
    np.testing.assert_array_equal(empty.matrix.toarray(), [[1, 0], [0, 0], [1, 0], [0, 1]])
    with pytest.raises(ValueError, match="unknown must be one of"):
        Categories.from_frame(df, "item", "genre", unknown="drop")
    with pytest.raises(ValueError, match="missing must be one of"):
        Categories.from_frame(df, "item", "genre", missing="zero")


@pytest.mark.parametrize(
    ("matrix", "kw", "exc", "match"),
    [
        (np.ones(3), {}, personae.InvalidInputError, "must be 2-D"),
        (np.array([[1.0, np.nan]]), {}, personae.InvalidInputError, "finite"),
        (np.array([[1.0, np.inf]]), {}, personae.InvalidInputError, "finite"),
        (sp.csr_matrix(np.array([[1.0, -1.0]])), {}, personae.InvalidInputError, "non-negative"),
        (np.array([[1e39]]), {}, personae.InvalidInputError, "float32"),
        (np.array([["a"]]), {}, TypeError, "numbers"),
        ("genres", {}, TypeError, "2-D array or a scipy.sparse"),
        (np.eye(2), {"names": ["a"]}, personae.InvalidInputError, "1 names for 2"),
        (np.eye(2), {"names": ["a", "a"]}, personae.InvalidInputError, "'a' appears more"),
        (np.eye(2), {"item_ids": [1]}, personae.InvalidInputError, "1 ids for the matrix's 2"),
        (np.eye(2), {"item_ids": [1, "1"]}, ValueError, "more than once"),
    ],
)
def test_bad_matrices(matrix, kw, exc, match):
    with pytest.raises(exc, match=match):
        Categories(matrix, **kw)


def test_bad_tables():
    df = pd.DataFrame({"item": ["a", "a"], "x": [1, 0], "y": [0, 1]})
    with pytest.raises(ValueError, match="column 'genre' not found"):
        Categories.from_frame(df, "item", "genre")
    with pytest.raises(personae.InvalidInputError, match="item 'a' has more than one row"):
        Categories.from_frame(df, "item", ["x", "y"])
    with pytest.raises(ValueError, match="long format"):
        Categories.from_frame(df, "item", ["x", "y"], weight_col="x")
    with pytest.raises(personae.InvalidInputError, match="non-negative"):
        Categories.from_frame(df.assign(x=[-1, 0]).iloc[:1], "item", ["x", "y"])
    nulls = pd.DataFrame({"item": ["a", None], "genre": ["x", "y"]})
    with pytest.raises(ValueError, match="null id"):
        Categories.from_frame(nulls, "item", "genre")
    # An empty label: the item is listed, with no category (not "missing").
    blank = pd.DataFrame({"item": ["a", "b", "b"], "genre": [None, "x", "y"]})
    c = Categories.from_frame(blank, "item", "genre", item_ids=["a", "b"])
    np.testing.assert_array_equal(c.matrix.toarray(), [[0, 0], [1, 1]])


def test_read_csv_and_parquet(tmp_path):
    ids, flags, long = _catalogue()
    long.to_csv(tmp_path / "g.csv", index=False)
    c = Categories.read(tmp_path / "g.csv", "item", "genre", item_ids=ids)
    np.testing.assert_array_equal(c.matrix.toarray(), flags)
    pytest.importorskip("pyarrow")
    wide = pd.DataFrame(flags, columns=GENRES).assign(item=ids)
    wide.to_parquet(tmp_path / "g.parquet")
    assert Categories.read(tmp_path / "g.parquet", "item", GENRES, item_ids=ids) == c


def test_pickles_and_matrix_is_a_copy():
    ids, _, long = _catalogue()
    c = Categories.from_frame(long, "item", "genre", item_ids=ids)
    metrics.miscalibration(np.array([[0, 1]]), c, p=np.full((1, 3), 1 / 3))
    back = pickle.loads(pickle.dumps(c))
    assert back == c and back._rerankers == {}
    m = c.matrix
    m.data[:] = 9
    assert c.matrix.max() == 1
    assert "12 items x 3 categories, with item ids" in repr(c)


# -- the reranker and the metrics ---------------------------------------------------------------


def test_file_order_table_gives_the_model_order_lists():
    """The issue's bug: a genre matrix in the file's own order is silently wrong; the table
    mapped by item id gives the lists of the matrix in model order."""
    train, cand, scores, long, flags, in_model_order = _problem()
    genres = Categories.from_frame(long, "item", "genre", item_ids=train.item_ids)
    np.testing.assert_array_equal(genres.matrix.toarray(), in_model_order)
    want = CalibratedReranker(in_model_order, lam=0.9).rerank(cand, scores, history=train, n=5)
    got = CalibratedReranker(genres, lam=0.9).rerank(cand, scores, history=train, n=5)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.ckl_after, want.ckl_after)
    wrong = CalibratedReranker(flags, lam=0.9).rerank(cand, scores, history=train, n=5)
    assert not np.array_equal(wrong.ids, want.ids)  # what the file order silently gave


def test_interactions_over_other_items_raise():
    train, cand, scores, long, _, _ = _problem()
    genres = Categories.from_frame(long, "item", "genre", item_ids=train.item_ids)
    order = np.argsort([int(x[1:]) for x in train.item_ids])  # the same items by number
    shuffled = Interactions(
        train.matrix[:, order].sorted_indices(), train.user_ids, train.item_ids[order]
    )
    rr = CalibratedReranker(genres)
    with pytest.raises(personae.InvalidInputError, match="history has other item ids"):
        rr.rerank(cand, scores, history=shuffled, n=5)
    with pytest.raises(personae.InvalidInputError, match="history has other item ids"):
        metrics.miscalibration(cand[:, :5], genres, history=shuffled)
    with pytest.raises(personae.InvalidInputError, match="truth has other item ids"):
        metrics.minority_taste_recall(cand, shuffled, genres, history=train)
    fewer = Interactions(train.matrix[:, :-1], train.user_ids, train.item_ids[:-1])
    with pytest.raises(personae.InvalidInputError, match="11 items, 12 in the categories"):
        metrics.evaluate(cand, train, 5, item_categories=genres, history=fewer)
    frame = pd.DataFrame({"user": [0, 0], "item": [0, 1], "score": [0.5, 0.2]})
    with pytest.raises(personae.InvalidInputError, match="history has other item ids"):
        rr.rerank_dataframe(frame, history=shuffled, n=2)
    # Ids compared as text: integer ids are the same items as their text; a bare matrix
    # carries no ids to check.
    numbered = np.arange(train.n_items)
    as_text = Categories(genres.matrix, genres.names, item_ids=numbered.astype(str))
    as_int = Interactions(train.matrix, train.user_ids, numbered)
    CalibratedReranker(as_text).rerank(cand, scores, history=as_int, n=5)
    rr.rerank(cand, scores, history=shuffled.matrix, n=5)
    # Attributes built on different items.
    other = Categories(np.eye(12), item_ids=train.item_ids[order])
    with pytest.raises(personae.InvalidInputError, match="item_categories\\['b'\\]"):
        CalibratedReranker({"a": genres, "b": other}, lam=0.2)


def test_reranker_and_metrics_match_the_matrix_path():
    train, cand, scores, long, _, m = _problem(seed=3)
    genres = Categories.from_frame(long, "item", "genre", item_ids=train.item_ids)
    truth = train
    for lam in (0.0, 0.5):
        a = CalibratedReranker(genres, lam=lam).rerank(cand, scores, history=train, n=6)
        b = CalibratedReranker(sp.csr_matrix(m), lam=lam).rerank(cand, scores, history=train, n=6)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    ids = cand[:, :6]
    for f, args in (
        (metrics.miscalibration, (ids,)),
        (metrics.minority_interest_recall, (ids,)),
        (metrics.category_coverage, (ids,)),
    ):
        np.testing.assert_array_equal(
            f(*args, genres, history=train), f(*args, m, history=train), err_msg=f.__name__
        )
    np.testing.assert_array_equal(
        metrics.minority_taste_recall(ids, truth, genres, history=train, k=6),
        metrics.minority_taste_recall(ids, truth, m, history=train, k=6),
    )
    assert metrics.calibration(ids, genres, history=train) == metrics.calibration(
        ids, m, history=train
    )
    e1 = metrics.evaluate(ids, truth, 6, item_categories=genres, history=train)
    e2 = metrics.evaluate(ids, truth, 6, item_categories=m, history=train)
    assert e1.keys() == e2.keys()
    for key in e1:
        np.testing.assert_equal(e1[key], e2[key])
    # Converted once: every metric call above reused one reranker per setting.
    assert list(genres._rerankers) == [(0.01, False)]
    r = genres._rerankers[(0.01, False)]
    metrics.miscalibration(ids, genres, history=train)
    assert genres._rerankers[(0.01, False)] is r
    # Several attributes, each a Categories, against the same as matrices.
    two = {"g": genres, "t": Categories(np.eye(train.n_items), item_ids=train.item_ids)}
    mats = {"g": m, "t": np.eye(train.n_items)}
    lam = {"g": 0.3, "t": 0.3}
    x = CalibratedReranker(two, lam=lam).rerank(cand, scores, history=train, n=4)
    y = CalibratedReranker(mats, lam=lam).rerank(cand, scores, history=train, n=4)
    np.testing.assert_array_equal(x.ids, y.ids)
    assert CalibratedReranker(two, lam=lam).item_ids.tolist() == train.item_ids.tolist()


def test_taste_clusters_as_categories():
    """A model's taste clusters (a CSR, e.g. AMPCF.taste_categories()) work as a bare matrix
    or wrapped in a Categories, with the same results."""
    rng = np.random.default_rng(5)
    labels = rng.integers(-1, 3, 20)
    rows = np.flatnonzero(labels >= 0)
    tastes = sp.csr_matrix((np.ones(len(rows)), (rows, labels[rows])), shape=(20, 3))
    hist = sp.csr_matrix((rng.random((4, 20)) < 0.3).astype(np.float32))
    cand = np.stack([rng.permutation(20) for _ in range(4)])
    scores = rng.random(cand.shape).astype(np.float32)
    a = CalibratedReranker(tastes).rerank(cand, scores, history=hist, n=5)
    b = CalibratedReranker(Categories(tastes)).rerank(cand, scores, history=hist, n=5)
    np.testing.assert_array_equal(a.ids, b.ids)


# -- the CLI ------------------------------------------------------------------------------------


def _cli_files(tmp_path):
    ids = [f"m{i}" for i in range(10)]
    genre = ["drama"] * 8 + ["doc"] * 2
    hist = pd.DataFrame({"user": ["a"] * 4 + ["b"], "item": ["m0", "m1", "m8", "m2", "m9"]})
    cand = pd.DataFrame(
        {
            "user": ["a"] * 10 + ["b"] * 3,
            "item": ids + ["m0", "m1", "m9"],
            "score": list(np.linspace(1, 0.1, 10)) + [0.9, 0.8, 0.1],
        }
    )
    hist.to_csv(tmp_path / "hist.csv", index=False)
    cand.to_csv(tmp_path / "cand.csv", index=False)
    base = ["rerank", "--candidates", str(tmp_path / "cand.csv"), "--history"]
    base += [str(tmp_path / "hist.csv"), "--n", "3", "--lam", "0.9"]
    return ids, genre, base


def test_cli_categories_with_unknown_item_ids(tmp_path, capsys):
    from personae.cli import main

    ids, genre, base = _cli_files(tmp_path)
    # Ids written another way ("M0" for "m0"): every row unknown -> one-line error, exit 1.
    bad = pd.DataFrame({"item": [x.upper() for x in ids], "category": genre})
    bad.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "out.csv"
    assert main([*base, "--categories", str(tmp_path / "bad.csv"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "personae: error:" in err and "item 'M0'" in err and "same format" in err
    assert not out.exists()
    # A catalogue file with a few more items than the candidates and history: they are
    # dropped with a warning, and the lists are those of the file without them.
    extra = pd.DataFrame({"item": ids + ["m99"], "category": genre + ["doc"]})
    extra.to_csv(tmp_path / "extra.csv", index=False)
    pd.DataFrame({"item": ids, "category": genre}).to_csv(tmp_path / "g.csv", index=False)
    assert main([*base, "--categories", str(tmp_path / "extra.csv"), "--out", str(out)]) == 0
    assert "1 of the 11 rows" in capsys.readouterr().err
    want = tmp_path / "want.csv"
    assert main([*base, "--categories", str(tmp_path / "g.csv"), "--out", str(want)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(want))


def test_cli_wide_and_split_categories(tmp_path):
    from personae.cli import main

    ids, genre, base = _cli_files(tmp_path)
    long = tmp_path / "long.csv"
    pd.DataFrame({"item": ids, "category": genre}).to_csv(long, index=False)
    wide = tmp_path / "wide.csv"
    flags = pd.DataFrame({"item": ids[::-1], "drama": 0, "doc": 0})
    flags.loc[[g == "drama" for g in genre[::-1]], "drama"] = 1
    flags.loc[[g == "doc" for g in genre[::-1]], "doc"] = 1
    flags.to_csv(wide, index=False)
    cells = tmp_path / "cells.csv"
    pd.DataFrame({"item": ids, "genres": [g + "|" + g for g in genre]}).to_csv(cells, index=False)
    outs = [tmp_path / f"{k}.csv" for k in ("a", "b", "c")]
    assert main([*base, "--categories", str(long), "--out", str(outs[0])]) == 0
    args = [*base, "--categories", str(wide), "--category-cols", "drama,doc"]
    assert main([*args, "--out", str(outs[1])]) == 0
    args = [*base, "--categories", str(cells), "--category-col", "genres"]
    assert main([*args, "--category-split", "|", "--out", str(outs[2])]) == 0
    a, b, c = (pd.read_csv(o) for o in outs)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert {"m8", "m9"} & set(a[a["user"] == "a"]["item"])  # a documentary made it in
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray warnings on the happy path
        assert main([*base, "--categories", str(long), "--out", str(outs[0])]) == 0
