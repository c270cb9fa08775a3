"""The `personae` command."""

import subprocess
import sys

import pandas as pd
import pytest

import personae
from personae.cli import main

from conftest import run_in_terminal


def test_help_explains_every_option(capsys):
    for argv in (["--help"], ["quickstart", "--help"]):
        try:
            main(argv)
        except SystemExit as e:
            assert e.code == 0
    out = capsys.readouterr().out
    for opt in (
        "quickstart",
        "--out",
        "--users",
        "--items",
        "--tastes",
        "--device",
        "--seed",
        "--n",
    ):
        assert opt in out


def data_taste(items):
    """The true taste of the quickstart's items (its synthetic data, seed 0)."""
    taste = personae.synthetic(n_users=300, n_items=120, n_tastes=4, seed=0).item_taste
    return taste[items.to_numpy()]


def test_quickstart_small_end_to_end(tmp_path):
    out = tmp_path / "qs"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "personae.cli",
            "quickstart",
            "--out",
            str(out),
            "--users",
            "300",
            "--items",
            "120",
            "--tastes",
            "4",
            "--quiet",
            "--n",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    # the three rows of the table, each with NDCG, minority-taste recall and C_KL numbers
    table = {}
    for line in r.stdout.splitlines():
        for name in ("(K = 1)", "personas (AMP-CF)", "personas + calibration"):
            if name in line:
                table[name] = [float(x) for x in line.split()[-3:]]
    assert len(table) == 3, r.stdout
    for ndcg, minority, ckl in table.values():
        assert 0 < ndcg <= 1 and 0 <= minority <= 1 and ckl >= 0
    # calibration against the true tastes moves the lists' taste mix towards the history's
    assert table["personas + calibration"][2] < table["personas (AMP-CF)"][2]
    assert "persona 0:" in r.stdout and "<-" in r.stdout
    recs = pd.read_csv(out / "recommendations.csv")
    cols = ["user", "item", "score", "rank", "persona", "model_taste_cluster", "true_taste"]
    assert list(recs.columns) == cols
    assert recs.groupby("user").size().max() == 10
    assert (recs["persona"] >= 0).all() and (recs["model_taste_cluster"] >= 0).all()
    # the lists the quickstart recommends (calibrated) are saved too, with the items' tastes
    cal = pd.read_csv(out / "recommendations_calibrated.csv")
    assert list(cal.columns) == ["user", "item", "score", "rank", "true_taste"]
    assert cal.groupby("user").size().max() == 10
    assert (cal["true_taste"] == data_taste(cal["item"])).all()
    assert (recs["true_taste"] == data_taste(recs["item"])).all()
    model = personae.load(out / "model")
    assert isinstance(model, personae.AMPCF)
    assert (out / "calibration.png").stat().st_size > 0
    # the item and persona columns are the saved model's own lists and explanations
    data = personae.synthetic(n_users=300, n_items=120, n_tastes=4, seed=0)
    train, _ = personae.holdout_split(data.interactions, 0.2, seed=0)
    ids, _, persona = model.recommend(train, 10, explain=True)
    got = recs.sort_values(["user", "rank"])
    users = [str(x) for x in train.user_ids]
    row = {u: i for i, u in enumerate(users)}
    for user, g in list(got.groupby("user", sort=False))[:20]:
        r = row[str(user)]
        keep = ids[r] >= 0
        assert [str(x) for x in g["item"]] == [str(model.item_ids[i]) for i in ids[r][keep]]
        assert list(g["persona"]) == list(persona[r][keep])


def test_bad_arguments_exit_nonzero(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # counts are checked by argparse (usage error, 2)
        main(["quickstart", "--out", str(tmp_path), "--users", "0", "--quiet"])
    assert e.value.code == 2 and "error" in capsys.readouterr().err
    assert main(["quickstart", "--out", str(tmp_path), "--items", "3", "--quiet"]) == 1
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["multvae", "ampcf"])
def test_train_recommend_evaluate_files(tmp_path, family, capsys):
    import personae

    d = personae.synthetic(n_users=300, n_items=120, n_tastes=4, seed=0)
    train, test = personae.holdout_split(d.interactions, 0.2, seed=0)
    for name, part in (("train", train), ("test", test)):
        u, i, _ = part.to_arrays()
        pd.DataFrame({"uid": u, "iid": i}).to_parquet(tmp_path / f"{name}.parquet")
    cols = ["--user-col", "uid", "--item-col", "iid", "--quiet"]
    model = tmp_path / "model"
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "train.parquet"),
                "--out",
                str(model),
                "--epochs",
                "2",
                "--batch-size",
                "100",
                "--model",
                family,
                *cols,
            ]
        )
        == 0
    )
    out = tmp_path / "recs.parquet"
    assert (
        main(
            [
                "recommend",
                "--model",
                str(model),
                "--data",
                str(tmp_path / "train.parquet"),
                "--n",
                "5",
                "--out",
                str(out),
                *cols,
            ]
        )
        == 0
    )
    recs = pd.read_parquet(out)
    assert list(recs.columns) == ["user", "item", "score", "rank"]
    assert recs.groupby("user").size().max() == 5 and recs["rank"].min() == 1
    seen = set(zip(*train.to_arrays()[:2], strict=True))
    assert not any((u, i) in seen for u, i in zip(recs["user"], recs["item"], strict=True))
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model),
                "--train",
                str(tmp_path / "train.parquet"),
                "--test",
                str(tmp_path / "test.parquet"),
                "--k",
                "5",
                *cols,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "ndcg@5" in printed
    assert personae.load(model).kind == family


def test_file_errors_are_clear(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path)]) == 1
    assert "no such file" in capsys.readouterr().err
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "x.csv", index=False)
    assert main(["train", "--data", str(tmp_path / "x.csv"), "--out", str(tmp_path / "m")]) == 1
    assert "column 'user' not found" in capsys.readouterr().err
    assert (
        main(
            [
                "recommend",
                "--model",
                str(tmp_path / "nomodel"),
                "--data",
                str(tmp_path / "x.csv"),
                "--out",
                str(tmp_path / "r.parquet"),
            ]
        )
        == 1
    )
    assert "manifest.json does not exist" in capsys.readouterr().err


def _string_id_model(tmp_path):
    """A model trained through the Python API on string item ids (as Parquet gives them)."""
    import personae

    d = personae.synthetic(n_users=200, n_items=80, n_tastes=4, seed=1).interactions
    u, i, _ = d.to_arrays()
    x = personae.Interactions.from_arrays(u, pd.Series(i).astype(str).to_numpy())
    est = personae.MultVAE(hidden=16, latent=4, epochs=2, device="cpu", seed=0)
    path = est.fit(x, show_progress=False).save(tmp_path / "model")
    return x, path


def test_numeric_csv_ids_match_a_string_vocabulary(tmp_path, capsys):
    x, path = _string_id_model(tmp_path)
    u, i, _ = x.to_arrays()
    pd.DataFrame({"user": u[:300], "item": i[:300].astype(int)}).to_csv(
        tmp_path / "h.csv", index=False
    )
    out = tmp_path / "r.csv"
    args = ["recommend", "--model", str(path), "--data", str(tmp_path / "h.csv")]
    assert main([*args, "--out", str(out), "--n", "5", "--quiet"]) == 0
    recs = pd.read_csv(out, dtype={"item": str})
    lists = recs.groupby("user")["item"].apply(tuple)
    assert lists.nunique() > 1  # not the same list for everyone
    seen = set(zip(u[:300].tolist(), i[:300].tolist(), strict=True))
    assert not any((a, b) in seen for a, b in zip(recs["user"], recs["item"], strict=True))


def test_ids_that_do_not_match_fail_clearly(tmp_path, capsys):
    x, path = _string_id_model(tmp_path)
    u, i, _ = x.to_arrays()
    padded = [f"00{v}" for v in i[:100]]  # written differently: "007" is not "7"
    pd.DataFrame({"user": u[:100], "item": padded}).to_csv(tmp_path / "h.csv", index=False)
    args = ["recommend", "--model", str(path), "--data", str(tmp_path / "h.csv")]
    args += ["--out", str(tmp_path / "r.csv"), "--quiet"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "h.csv" in err and "column 'item'" in err and "'00" in err
    assert main([*args, "--drop-unknown"]) == 0
    assert "100 of 100 item ids" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ampcf_dir(tmp_path_factory):
    import personae

    d = personae.synthetic(n_users=400, n_items=120, n_tastes=4, seed=2)
    path = tmp_path_factory.mktemp("ampcf") / "model"
    personae.AMPCF(device="cpu").fit(d.interactions, show_progress=False).save(path)
    items = path.parent / "items.csv"
    pd.DataFrame({"item": range(120), "title": [f"Film {i}" for i in range(120)]}).to_csv(
        items, index=False
    )
    return path, items


def test_interview_in_a_terminal(ampcf_dir, tmp_path):
    """Drives `personae interview` through a pseudo-terminal, as a person would."""
    model, items = ampcf_dir
    state = tmp_path / "state.json"
    argv = [sys.executable, "-m", "personae.cli", "interview", "--model", str(model)]
    argv += ["--items", str(items), "--questions", "4", "--n", "5", "--state", str(state)]
    argv += ["--groups", "0"]  # item questions only (group questions: tests/test_interview.py)
    # The prompt ends the input line; the refusal line ("please answer [y/n/?/q]") does not.
    status, text = run_in_terminal(argv, ["maybe", "y", "n", "?", "y"], b"[y/n/?/q] ")
    assert status == 0, text
    assert "please answer [y/n/?/q]" in text  # "maybe" is refused, the question repeats
    assert text.count("Have you seen and liked 'Film") == 5  # the default question
    assert "Top 5 after 4 answers" in text and "[taste " in text and "Film" in text
    # Every answer was saved as it was given; the state resumes.
    import json

    saved = json.loads(state.read_text())
    assert [a for _, a in saved["answers"]] == [True, False, None, True]


def test_interview_asks_liked_before_by_default(ampcf_dir, tmp_path, capsys):
    """By default an item question asks "have you seen and liked it?", saves that meaning with
    the answers and lists items answered "no" (maybe unseen); --asks would-like asks "would
    you watch it?" and keeps the "no" items off the list; a state saved before the setting
    existed resumes as it was made, with "would-like"."""
    import json

    model, items = ampcf_dir
    answers = tmp_path / "answers.txt"
    answers.write_text("n\ny\nn\n")
    state = tmp_path / "s.json"
    argv = ["interview", "--model", str(model), "--items", str(items), "--answers", str(answers)]
    argv += ["--groups", "0", "--questions", "3", "--n", "120"]
    assert main(argv + ["--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert out.count("Have you seen and liked 'Film") == 3 and "Would you watch" not in out
    saved = json.loads(state.read_text())
    assert saved["asks"] == "liked-before"
    no = [q[0] for q, a in saved["answers"] if a is False]
    listed = out.split("Top 120 after 3 answers")[1]
    assert len(no) == 2 and all(f". Film {i}  [" in listed for i in no)
    would = tmp_path / "w.json"
    assert main(argv + ["--state", str(would), "--asks", "would-like"]) == 0
    out = capsys.readouterr().out
    assert out.count("Would you watch / buy / visit: Film") == 3 and "Have you" not in out
    saved = json.loads(would.read_text())
    assert saved["asks"] == "would-like"
    listed = out.split("Top 120 after 3 answers")[1]
    assert not any(f". Film {q[0]}  [" in listed for q, _ in saved["answers"])
    # A state saved before "asks" existed: its answers meant "would you watch it?".
    del saved["asks"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(saved))
    answers.write_text("y\n")
    argv[argv.index("3")] = "4"
    assert main(argv + ["--state", str(old)]) == 0
    out = capsys.readouterr().out
    assert "resumed 3 answers" in out and out.count("Would you watch / buy / visit: Film") == 1
    assert json.loads(old.read_text())["asks"] == "would-like"


def test_interview_scripted_and_resumed(ampcf_dir, tmp_path, capsys):
    model, items = ampcf_dir
    answers = tmp_path / "answers.txt"
    answers.write_text("y\nn\nq\n")
    state = tmp_path / "s.json"
    base = ["interview", "--model", str(model), "--answers", str(answers), "--state", str(state)]
    base += ["--groups", "0"]
    assert main(base + ["--questions", "5"]) == 0
    out = capsys.readouterr().out
    assert "Top 10 after 2 answers" in out
    answers.write_text("?\n")
    assert main(base + ["--questions", "3"]) == 0
    out = capsys.readouterr().out
    assert "resumed 2 answers" in out and "Top 10 after 3 answers" in out
    assert main(base + ["--kind", "pair", "--questions", "1", "--state", str(tmp_path / "p")]) == 0
    assert "Which do you prefer: 1)" in capsys.readouterr().out
    mv = tmp_path / "mv"
    import personae

    personae.Popularity().fit(personae.synthetic(50, 20, 2).interactions.matrix).save(mv)
    assert main(["interview", "--model", str(mv)]) == 1
    assert "interviews need AMP-CF" in capsys.readouterr().err
