"""Issue 22, a CLI that parses and calls: ``personae recommend`` streams its lists to the file in
batches (memory bounded by a batch, 1,000,000 users), the streaming writer, and the quickstart
as a script on the public API."""

import ast
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

import personae
from personae.cli import main
from personae.data import Interactions, TableWriter, long_format, write_recommendations, write_table


def _frame(start: int, rows: int) -> pd.DataFrame:
    k = np.arange(start, start + rows)
    return pd.DataFrame({"user": k.astype(str), "item": k * 7, "score": k / 3.0})


@pytest.mark.parametrize("suffix", ["csv", "tsv", "parquet"])
def test_table_writer_pieces_make_the_same_file_as_one_write(tmp_path, suffix):
    pieces = [_frame(0, 5), _frame(5, 0), _frame(5, 3), _frame(8, 1)]
    with TableWriter(tmp_path / f"a.{suffix}") as out:
        for p in pieces:
            out.write(p)
    assert out.rows == 9
    write_table(pd.concat(pieces, ignore_index=True), tmp_path / f"b.{suffix}")
    if suffix == "parquet":
        a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
        pd.testing.assert_frame_equal(a, b)
        assert pq.ParquetFile(tmp_path / "a.parquet").num_row_groups == 3  # one per piece
    else:
        assert (tmp_path / f"a.{suffix}").read_bytes() == (tmp_path / f"b.{suffix}").read_bytes()
    # Only empty pieces: the header (CSV) or the columns (Parquet), no rows.
    with TableWriter(tmp_path / f"e.{suffix}") as out:
        out.write(_frame(0, 0))
    sep = "\t" if suffix == "tsv" else ","
    read = pd.read_parquet if suffix == "parquet" else lambda p: pd.read_csv(p, sep=sep)
    empty = read(tmp_path / f"e.{suffix}")
    assert len(empty) == 0 and list(empty.columns) == ["user", "item", "score"]


def test_table_writer_is_atomic(tmp_path):
    for suffix in ("csv", "parquet"):
        folder = tmp_path / suffix
        folder.mkdir()
        path = folder / f"out.{suffix}"
        path.write_text("the previous file")
        with pytest.raises(RuntimeError, match="crash"):
            with TableWriter(path) as out:
                out.write(_frame(0, 4))
                raise RuntimeError("crash")
        # The final name still holds the old file; no temporary file is left behind.
        assert path.read_text() == "the previous file" and os.listdir(folder) == [path.name]
    with pytest.raises(ValueError, match="columns"):
        with TableWriter(tmp_path / "c.csv") as out:
            out.write(_frame(0, 2))
            out.write(_frame(0, 2).rename(columns={"item": "thing"}))
    assert not (tmp_path / "c.csv").exists()
    with pytest.raises(ValueError, match="unknown output format"):
        TableWriter(tmp_path / "x.json")


def _status(key: str) -> int:
    """A line of /proc/self/status in bytes (VmRSS: now; VmHWM: the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _peak_extra(job) -> tuple[int, str]:
    """Runs `job()` and returns the most memory it added at once, and how it was measured: the
    resident set's peak (numpy, pyarrow and the Rust core alike) where Linux lets it be reset,
    else tracemalloc (Python and numpy allocations only)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        base = _status("VmRSS")
    except OSError:
        import tracemalloc

        tracemalloc.start()
        try:
            job()
            return tracemalloc.get_traced_memory()[1], "tracemalloc"
        finally:
            tracemalloc.stop()
    job()
    return _status("VmHWM") - base, "peak RSS"


def test_recommend_to_a_file_streams_a_million_users(tmp_path):
    """1,000,000 users (3 items each of 200): the lists go to the file batch by batch, so the
    memory added while writing them stays a small part of what holding them would take."""
    t0 = time.perf_counter()
    users, items, n, batch = 1_000_000, 200, 10, 10_000
    rng = np.random.default_rng(0)
    m = sp.csr_matrix(
        (
            np.ones(3 * users, np.float32),
            rng.integers(0, items, 3 * users),
            np.arange(0, 3 * users + 1, 3),
        ),
        shape=(users, items),
    )
    m.sum_duplicates()
    m.sort_indices()
    data = Interactions(m, np.arange(users) * 10, np.arange(items))
    model = personae.Popularity().fit(data)
    # Imports, thread pools and the Parquet writer's first allocations are not the lists'.
    warm = Interactions(m[:batch], data.user_ids[:batch], data.item_ids)
    write_recommendations(model, warm, tmp_path / "warm.parquet", n, batch_size=batch)
    out = tmp_path / "lists.parquet"
    rows = []
    peak, how = _peak_extra(
        lambda: rows.append(write_recommendations(model, data, out, n, batch_size=batch))
    )
    held = users * n * (8 + 4)  # all lists at once: int64 ids and float32 scores, no frame
    assert peak < held / 4, f"{how}: {peak / 1e6:.1f} MB added, all lists are {held / 1e6:.0f} MB"
    # Every user has n lists entries (3 seen of 200 items: never padded), one row group a batch.
    f = pq.ParquetFile(out)
    assert rows == [users * n] and f.metadata.num_rows == users * n
    assert f.num_row_groups == users // batch
    # A sample of batches (first, middle, last) holds the model's own lists, in order.
    for g in (0, f.num_row_groups // 2, f.num_row_groups - 1):
        got = f.read_row_group(g).to_pandas()
        s = g * batch
        ids, scores = model.recommend(m[s : s + batch], n)
        want = long_format(data.user_ids[s : s + batch], model.item_ids, ids, scores)
        pd.testing.assert_frame_equal(got, want)
    assert time.perf_counter() - t0 < 120  # about 10 s on 2 busy cores


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    data = personae.synthetic(n_users=250, n_items=90, n_tastes=4, seed=4).interactions
    u, i, _ = data.to_arrays()
    pd.DataFrame({"user": u, "item": i}).to_csv(d / "h.csv", index=False)
    personae.AMPCF(device="cpu").fit(data, show_progress=False).save(d / "ampcf")
    return d, data


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_cli_recommend_in_small_batches_matches_one_call(fitted, tmp_path, suffix):
    d, data = fitted
    model = personae.load(d / "ampcf")
    ids, scores, persona = model.recommend(data, 7, explain=True)
    taste = np.take_along_axis(model.personas(data)["taste"], np.maximum(persona, 0), 1)
    out = tmp_path / f"r.{suffix}"
    argv = ["recommend", "--model", str(d / "ampcf"), "--data", str(d / "h.csv"), "--n", "7"]
    # 250 users in batches of 17: 15 batches, the last one short.
    assert main([*argv, "--batch-size", "17", "--explain", "--quiet", "--out", str(out)]) == 0
    got = pd.read_parquet(out) if suffix == "parquet" else pd.read_csv(out)
    keep = ids >= 0
    users = np.repeat(data.user_ids, 7)[keep.ravel()]
    np.testing.assert_array_equal(got["user"].astype(int), users)
    np.testing.assert_array_equal(got["item"].astype(int), model.item_ids[ids[keep]])
    np.testing.assert_allclose(got["score"], scores[keep], rtol=1e-6)
    np.testing.assert_array_equal(got["persona"], persona[keep])
    np.testing.assert_array_equal(got["taste_cluster"], taste[keep])
    assert list(got.columns) == ["user", "item", "score", "rank", "persona", "taste_cluster"]


def test_cli_recommend_failure_leaves_no_file(fitted, tmp_path, capsys, monkeypatch):
    d, _ = fitted
    out = tmp_path / "r.csv"
    calls, serve = [], personae.AMPCF._recommend_batch

    def failing(self, user_items, n=20, **kw):  # the third batch fails
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("no room")
        return serve(self, user_items, n, **kw)

    monkeypatch.setattr(personae.AMPCF, "_recommend_batch", failing, raising=True)
    argv = ["recommend", "--model", str(d / "ampcf"), "--data", str(d / "h.csv")]
    assert main([*argv, "--batch-size", "50", "--quiet", "--out", str(out)]) == 1
    assert "out of memory" in capsys.readouterr().err
    assert len(calls) == 3 and os.listdir(tmp_path) == []


def test_quickstart_uses_only_public_names():
    """The quickstart is an example to copy: no private attribute of personae's objects."""
    import personae.quickstart as q

    tree = ast.parse(Path(q.__file__).read_text())
    private = [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]
    assert private == []
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    ]
    assert not [name for name in imported if name.startswith("_")]
    assert "model.tensors()" in Path(q.__file__).read_text()


def test_lists_from_long_is_the_inverse_of_long_format():
    from personae.data import lists_from_long

    rng = np.random.default_rng(1)
    users, items = np.array(["b", "a", "c"]), np.array([10, 20, 30, 40, 50])
    ids = np.array([[4, 0, 2], [1, -1, -1], [3, 2, -1]])
    frame = long_format(users, items, ids, rng.random(ids.shape).astype(np.float32))
    shuffled = frame.sample(frac=1.0, random_state=0)
    np.testing.assert_array_equal(lists_from_long(shuffled, users, items, 3), ids)
    # Without ranks, the scores order each list (best first); n cuts or pads.
    by_score = frame.assign(score=-frame["rank"].astype(float)).drop(columns="rank")
    np.testing.assert_array_equal(lists_from_long(by_score, users, items, 2), ids[:, :2])
    wide = lists_from_long(frame, users, items, 4)
    assert wide.shape == (3, 4) and (wide[:, 3] == -1).all()
    # Rows follow the users asked for (ids as text match integers: the id rule).
    with pytest.warns(UserWarning, match="1 of 6 user ids .* dropped"):
        got = lists_from_long(frame, ["c", "b"], items.astype(str), 3)
    np.testing.assert_array_equal(got, ids[[2, 0]])
    with pytest.raises(ValueError, match=r"2 of 6 item ids \(column 'item' and file lists.csv"):
        lists_from_long(frame, users, items[:3], 3, source="lists.csv")
    with pytest.warns(UserWarning, match="2 of 6 item ids"):
        short = lists_from_long(frame, users, items[:3], 3, drop_unknown=True)
    assert short.tolist() == [[0, 2, -1], [1, -1, -1], [2, -1, -1]]
    with pytest.raises(ValueError, match="needs a 'rank' or 'score' column"):
        lists_from_long(frame.drop(columns=["rank", "score"]), users, items, 3)


def test_interactions_to_frame_round_trips():
    x = Interactions.from_arrays(["u2", "u1", "u1"], [7, 3, 7], [2.0, 1.0, 0.5])
    df = x.to_frame("uid", "iid", "w")
    assert list(df.columns) == ["uid", "iid", "w"] and df["w"].tolist() == [1.0, 0.5, 2.0]
    y = Interactions.from_dataframe(df, "uid", "iid", "w")
    assert (x.matrix != y.matrix).nnz == 0 and list(x.to_frame().columns) == ["user", "item"]


def test_write_recommendations_of_a_bare_matrix_and_its_errors(tmp_path):
    m = sp.csr_matrix(np.eye(5, 8, dtype=np.float32))
    model = personae.Popularity().fit(m)
    rows = write_recommendations(model, m, tmp_path / "r.tsv", 3, batch_size=2)
    got = pd.read_csv(tmp_path / "r.tsv", sep="\t")
    assert rows == len(got) == 15 and got["user"].tolist() == np.repeat(np.arange(5), 3).tolist()
    ids, _ = model.recommend(m, 3)
    assert got["item"].tolist() == ids.ravel().tolist()
    with pytest.raises(ValueError, match="AMP-CF"):
        write_recommendations(model, m, tmp_path / "x.csv", 3, explain=True)
    with pytest.raises(ValueError, match="batch_size"):
        write_recommendations(model, m, tmp_path / "x.csv", 3, batch_size=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.tsv"]
