"""Issue 19: the ``personae`` command in a pipeline: every error one line and exit 1, counts
checked by argparse, split / evaluate --recommendations / recommend --explain."""

import sys

import numpy as np
import pandas as pd
import pytest

import personae
from personae.cli import build_parser, main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Train/test CSVs of a small synthetic set, an AMP-CF and a popularity model."""
    d = tmp_path_factory.mktemp("cli")
    data = personae.synthetic(n_users=300, n_items=100, n_tastes=4, seed=5)
    train, test = personae.holdout_split(data.interactions, 0.2, seed=0)
    for name, part in (("train", train), ("test", test)):
        u, i, _ = part.to_arrays()
        pd.DataFrame({"user": u, "item": i}).to_csv(d / f"{name}.csv", index=False)
    personae.AMPCF(device="cpu").fit(train, show_progress=False).save(d / "ampcf")
    personae.Popularity().fit(train).save(d / "pop")
    return d, train, test


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("personae: error:") and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "argv",
    [
        ["recommend", "--model", "m", "--data", "d.csv", "--out", "r.csv", "--batch-size", "-5"],
        ["recommend", "--model", "m", "--data", "d.csv", "--out", "r.csv", "--n", "0"],
        ["evaluate", "--model", "m", "--train", "a.csv", "--test", "b.csv", "--k", "-1"],
        ["train", "--data", "d.csv", "--out", "m", "--epochs", "0"],
        ["train", "--data", "d.csv", "--out", "m", "--personas", "0"],
        ["rerank", "--candidates", "c", "--history", "h", "--categories", "g", "--out", "o.csv"]
        + ["--n", "-2"],
        ["quickstart", "--n", "0"],
    ],
)
def test_counts_must_be_positive(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_train_help_prints_a_plain_percent(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "20%" in out and "%%" not in out


def test_train_defaults_to_the_persona_model():
    train = build_parser().parse_args(["train", "--data", "x.csv", "--out", "m"])
    assert train.model == "ampcf"


def test_huge_n_is_one_line_not_a_traceback(files, tmp_path, capsys):
    d, _, _ = files
    argv = ["recommend", "--model", str(d / "pop"), "--data", str(d / "train.csv")]
    argv += ["--out", str(tmp_path / "r.csv"), "--quiet", "--n", "1099511627776"]
    assert main(argv) == 1
    assert "memory" in _one_line_error(capsys).lower()


def test_every_error_is_one_line(monkeypatch, files, tmp_path, capsys):
    import personae.cli as cli

    d, _, _ = files
    argv = ["recommend", "--model", str(d / "pop"), "--data", str(d / "train.csv")]
    argv += ["--out", str(tmp_path / "r.csv"), "--quiet"]
    for exc, code, text in (
        (MemoryError(), 1, "out of memory"),
        (personae.PersonaeError("broken"), 1, "broken"),
        (RuntimeError("odd state"), 1, "odd state"),
        (ImportError("No module named 'torch'", name="torch"), 1, "personae[train]"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ):

        def _recommend(a, exc=exc):
            raise exc

        monkeypatch.setattr(cli, "_recommend", _recommend)
        assert main(argv) == code
        assert text in _one_line_error(capsys)


def test_parquet_without_pyarrow_names_the_extra(monkeypatch, files, tmp_path, capsys):
    d, _, _ = files
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "fastparquet", None)
    assert main(["train", "--data", str(tmp_path / "x.parquet"), "--out", str(tmp_path)]) == 1
    assert "pip install 'personae[io]'" in _one_line_error(capsys)
    argv = ["recommend", "--model", str(d / "pop"), "--data", str(d / "train.csv")]
    assert main([*argv, "--out", str(tmp_path / "r.parquet"), "--quiet"]) == 1
    assert "pip install 'personae[io]'" in _one_line_error(capsys)


def test_unknown_ids_hint_names_the_flag(files, tmp_path, capsys):
    d, _, _ = files
    pd.DataFrame({"user": [1, 2], "item": ["x9", "y9"]}).to_csv(tmp_path / "h.csv", index=False)
    argv = ["recommend", "--model", str(d / "pop"), "--data", str(tmp_path / "h.csv")]
    assert main([*argv, "--out", str(tmp_path / "r.csv"), "--quiet"]) == 1
    err = _one_line_error(capsys)
    assert "--drop-unknown" in err and "drop_unknown=True" not in err


def test_recommend_explain_writes_the_persona(files, tmp_path, capsys):
    d, train, _ = files
    out = tmp_path / "r.csv"
    argv = ["recommend", "--data", str(d / "train.csv"), "--n", "5", "--quiet", "--explain"]
    assert main([*argv, "--model", str(d / "ampcf"), "--out", str(out)]) == 0
    recs = pd.read_csv(out)
    assert list(recs.columns) == ["user", "item", "score", "rank", "persona", "taste_cluster"]
    model = personae.load(d / "ampcf")
    ids, _, persona = model.recommend(train, 5, explain=True)
    got = recs.sort_values(["user", "rank"])
    np.testing.assert_array_equal(got["persona"].to_numpy(), persona[ids >= 0])
    taste = np.take_along_axis(model.personas(train)["taste"], np.maximum(persona, 0), 1)
    np.testing.assert_array_equal(got["taste_cluster"].to_numpy(), taste[ids >= 0])
    assert main([*argv, "--model", str(d / "pop"), "--out", str(tmp_path / "p.csv")]) == 1
    assert "AMP-CF" in _one_line_error(capsys)


def test_evaluate_a_recommendations_file(files, tmp_path, capsys):
    d, train, test = files
    from personae.metrics import evaluate

    model = personae.load(d / "ampcf")
    ids, scores = model.recommend(train, 10)
    rows = personae.data.long_format(train.user_ids, model.item_ids, ids, scores)
    rows = rows.sample(frac=1.0, random_state=0)  # file order must not matter: ranks do
    rows.to_csv(tmp_path / "recs.csv", index=False)
    want = evaluate(ids, test.matrix, 10)
    argv = ["evaluate", "--recommendations", str(tmp_path / "recs.csv")]
    assert main([*argv, "--test", str(d / "test.csv"), "--k", "10", "--quiet"]) == 0
    printed = dict(
        line.split()[:2] for line in capsys.readouterr().out.splitlines() if line.strip()
    )
    for key in ("ndcg@10", "recall@10", "hit_rate@10"):
        assert float(printed[key]) == pytest.approx(want[key], abs=1e-4)
    assert int(printed["users"]) == want["users"]
    # Neither a model nor a lists file: a clear error.
    assert main(["evaluate", "--test", str(d / "test.csv")]) == 1
    assert "--recommendations" in _one_line_error(capsys)


def test_split_writes_a_seeded_holdout(files, tmp_path, capsys):
    d, _, _ = files
    src = tmp_path / "all.csv"
    pd.DataFrame(
        {"uid": np.repeat(["a", "b", "c"], 10), "iid": np.tile(np.arange(10), 3), "w": 2.0}
    ).to_csv(src, index=False)
    argv = ["split", "--data", str(src), "--user-col", "uid", "--item-col", "iid"]
    argv += ["--weight-col", "w", "--test-fraction", "0.3", "--seed", "4"]
    outs = [tmp_path / "tr.csv", tmp_path / "te.csv"]
    assert main([*argv, "--train-out", str(outs[0]), "--test-out", str(outs[1])]) == 0
    tr, te = (pd.read_csv(p, dtype={"uid": str}) for p in outs)
    assert list(tr.columns) == ["uid", "iid", "w"] and (tr["w"] == 2.0).all()
    assert te.groupby("uid").size().to_dict() == {"a": 3, "b": 3, "c": 3}
    pairs = lambda f: set(zip(f["uid"], f["iid"], strict=True))  # noqa: E731
    assert not pairs(tr) & pairs(te) and len(pairs(tr) | pairs(te)) == 30
    again = [tmp_path / "tr2.csv", tmp_path / "te2.csv"]
    assert main([*argv, "--train-out", str(again[0]), "--test-out", str(again[1])]) == 0
    assert pairs(pd.read_csv(again[1], dtype={"uid": str})) == pairs(te)


def test_headerless_file_with_names(files, tmp_path, capsys):
    d, _, _ = files
    path = tmp_path / "u.data"
    path.write_text("1\t0\t5\t9\n1\t3\t4\t9\n2\t3\t1\t9\n")
    argv = ["split", "--data", str(path), "--sep", "\\t", "--names", "user,item,rating,ts"]
    argv += ["--weight-col", "rating", "--train-out", str(tmp_path / "a.csv")]
    assert main([*argv, "--test-out", str(tmp_path / "b.csv"), "--test-fraction", "0.5"]) == 0
    both = pd.concat([pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")])
    assert sorted(both["rating"].tolist()) == [1, 4, 5]
