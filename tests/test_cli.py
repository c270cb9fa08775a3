"""The `personae` command."""

import subprocess
import sys

import pandas as pd

from personae.cli import main


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
        "--epochs",
        "--device",
        "--seed",
        "--n",
    ):
        assert opt in out


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
            "--epochs",
            "2",
            "--quiet",
            "--n",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "Recall@10" in r.stdout and "popularity" in r.stdout
    recs = pd.read_csv(out / "recommendations.csv")
    assert list(recs.columns) == ["user", "rank", "item", "score"]
    assert recs.groupby("user").size().max() == 10
    assert (out / "model" / "manifest.json").exists()


def test_bad_arguments_exit_nonzero(tmp_path, capsys):
    assert main(["quickstart", "--out", str(tmp_path), "--users", "0", "--quiet"]) == 1
    assert "error" in capsys.readouterr().err
