"""Issue 22: integer ids read as text (CSV) are ordered by value, not as text ('1', '10', '100');
other text ids keep their text order; equality stays the id-as-text rule."""

import numpy as np
import pandas as pd
import pytest

import personae
from personae import Interactions, Vocabulary


def test_csv_item_ids_1_to_12_come_in_numeric_order(tmp_path):
    users = np.repeat(["u1", "u2", "u3"], 12)
    items = np.tile(np.arange(1, 13), 3)
    pd.DataFrame({"user": users, "item": items}).to_csv(tmp_path / "a.csv", index=False)
    x = Interactions.read(tmp_path / "a.csv")
    # CSV ids are read as text and stay text: only their order is numeric.
    assert x.item_ids.dtype.kind == "U"
    assert x.item_ids.tolist() == [str(i) for i in range(1, 13)]
    assert x.matrix.toarray().sum(0).tolist() == [3.0] * 12


def test_a_saved_model_maps_its_lists_back_to_the_right_ids(tmp_path):
    # Item "k" is liked by k users, so the most popular items are "12", "11", "10", ...
    rows = [(f"u{u}", k) for k in range(1, 13) for u in range(k)]
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(tmp_path / "a.csv", index=False)
    x = Interactions.read(tmp_path / "a.csv")
    personae.Popularity().fit(x).save(tmp_path / "model")
    model = personae.load(tmp_path / "model")
    assert model.item_ids.tolist() == [str(i) for i in range(1, 13)]
    # A new user who has seen item "12" (written as a number in a second file).
    pd.DataFrame({"user": ["new"], "item": [12]}).to_csv(tmp_path / "h.csv", index=False)
    h = Interactions.read(tmp_path / "h.csv", item_ids=model.item_ids)
    ids, _ = model.recommend(h, 4)
    assert model.item_ids[ids[0]].tolist() == ["11", "10", "9", "8"]
    # The command line writes the same external ids.
    from personae.cli import main

    out = tmp_path / "r.csv"
    argv = ["recommend", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "h.csv")]
    assert main([*argv, "--out", str(out), "--n", "4", "--quiet"]) == 0
    assert pd.read_csv(out)["item"].tolist() == [11, 10, 9, 8]


def test_vocabulary_order_rules():
    # Plain integers in text, of any sign and length (beyond int64 too), by value.
    big = str(2**64 - 1)
    v, codes = Vocabulary.fit(["10", "2", "-3", "-10", "0", big, "99999999999999999999", "1"])
    assert v.ids.tolist() == ["-10", "-3", "0", "1", "2", "10", big, "99999999999999999999"]
    assert v.ids[codes].tolist() == ["10", "2", "-3", "-10", "0", big, "99999999999999999999", "1"]
    # Any id that is not a plain integer ("007", "+5", "a", "1e3", "-0"): text order for all.
    for odd in ("007", "+5", "a", "1e3", "-0", " 5", "\u0661"):
        v, codes = Vocabulary.fit(["10", "2", odd])
        assert v.ids.tolist() == sorted(["10", "2", odd]), odd
        assert v.ids[codes].tolist() == ["10", "2", odd]
    # Integer ids were already by value; the order never changes which ids are equal.
    assert Vocabulary.fit([10, 2, 1])[0].ids.tolist() == [1, 2, 10]
    ints = Interactions.from_arrays([1, 1], [10, 2])
    text = Interactions.from_arrays(["a"], ["10"], item_ids=ints.item_ids)
    assert text.matrix.toarray().tolist() == [[0, 1]]
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        Interactions.from_arrays(["a"], ["010"], item_ids=ints.item_ids)


def test_user_ids_of_a_csv_are_numeric_too(tmp_path):
    pd.DataFrame({"user": [10, 9, 100, 1], "item": ["x", "y", "x", "y"]}).to_csv(
        tmp_path / "a.csv", index=False
    )
    x = Interactions.read(tmp_path / "a.csv")
    assert x.user_ids.tolist() == ["1", "9", "10", "100"]
    assert x.matrix.toarray().tolist() == [[0, 1], [0, 1], [1, 0], [1, 0]]
