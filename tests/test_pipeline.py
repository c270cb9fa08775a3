"""Issue 19 (ready for a pipeline): silent wrong answers on hostile inputs, files other
processes must read, and the new-user paths of the Python API."""

import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp

import personae
from personae.data import Interactions, as_ids


# -- ids ------------------------------------------------------------------------------------
def test_float_ids_beyond_exact_integers_are_errors():
    with pytest.raises(ValueError, match="exact"):
        Interactions.from_arrays(np.array([1e20, 2e20]), [1, 2])
    with pytest.raises(ValueError, match="exact"):
        as_ids(np.array([2.0**63]))
    # Integral floats that hold exact integers are still integers (nullable integer columns).
    np.testing.assert_array_equal(as_ids(np.array([3.0, 2.0**52])), [3, 2**52])


def test_uint64_ids_beyond_int64_are_kept_as_text():
    big = np.array([2**64 - 1, 5], dtype=np.uint64)
    ids = as_ids(big)
    assert ids.dtype.kind == "U" and list(ids) == ["18446744073709551615", "5"]
    x = Interactions.from_arrays(big, [1, 2])
    assert x.n_users == 2 and "18446744073709551615" in set(x.user_ids.tolist())
    # Python ints beyond int64 in an object column: text as well, never an overflow.
    ids = as_ids(np.array([2**70, 1], dtype=object))
    assert list(ids) == [str(2**70), "1"]
    # uint64 within range stays integer, so 7 and "7" remain one id.
    assert as_ids(np.array([7], dtype=np.uint64)).dtype == np.int64


# -- weights --------------------------------------------------------------------------------
def test_weights_that_overflow_float32_are_refused():
    with pytest.raises(ValueError, match="float32"):
        Interactions.from_arrays([1, 2], [1, 2], weights=[1.0, 1e39])


def test_duplicate_pairs_summing_to_inf_are_refused_naming_the_pair():
    with pytest.raises(ValueError, match=r"user 'u1'.*item 'i9'"):
        Interactions.from_arrays(["u1", "u1", "u2"], ["i9", "i9", "i1"], weights=[3e38, 3e38, 1])


def test_multvae_refuses_negative_weights():
    x = sp.random(30, 20, density=0.3, format="csr", random_state=0, dtype=np.float32)
    with pytest.raises(ValueError, match="negative"):
        personae.MultVAE(epochs=1, device="cpu").fit(-x, show_progress=False)
    with pytest.raises(ValueError, match="negative"):
        personae.AMPCF(device="cpu").fit(-x, show_progress=False)


# -- serving inputs -------------------------------------------------------------------------
def test_recommend_compares_item_ids_of_interactions(tiny_model, tiny_data):
    data = tiny_data.interactions
    ids, _ = tiny_model.recommend(data, 5)  # the same vocabulary: fine
    assert ids.shape == (data.n_users, 5)
    shuffled = Interactions(data.matrix, data.user_ids, data.item_ids[::-1].copy())
    with pytest.raises(ValueError, match="item ids"):
        tiny_model.recommend(shuffled, 5)
    with pytest.raises(ValueError, match="item ids"):
        tiny_model.recommend(0, shuffled.users([0]), N=5)
    with pytest.raises(ValueError, match="item ids"):
        tiny_model.score(shuffled.users([0]))
    # The same ids written as text are the same ids (the id rule).
    as_text = Interactions(data.matrix, data.user_ids, data.item_ids.astype(str))
    np.testing.assert_array_equal(tiny_model.recommend(as_text, 5)[0], ids)
    # A bare CSR carries only its column count, which is still checked by the core.
    np.testing.assert_array_equal(tiny_model.recommend(data.matrix, 5)[0], ids)


@pytest.fixture(scope="module")
def ampcf_model(tiny_data):
    return personae.AMPCF(device="cpu", seed=0).fit(tiny_data.interactions, show_progress=False)


@pytest.mark.parametrize("bad", [np.nan, -1.0, np.inf])
def test_persona_summary_refuses_bad_categories(ampcf_model, tiny_data, bad):
    n = tiny_data.interactions.n_items
    cat = np.zeros((n, 3))
    cat[np.arange(n), np.arange(n) % 3] = 1.0
    cat[4, 1] = bad
    with pytest.raises(ValueError, match="item_categories"):
        ampcf_model.persona_summary(tiny_data.interactions, item_categories=cat)


def test_persona_summary_refuses_non_positive_top(ampcf_model, tiny_data):
    n = tiny_data.interactions.n_items
    cat = sp.csr_matrix((np.ones(n), (np.arange(n), np.arange(n) % 3)), shape=(n, 3))
    for top in (-1, 0):
        with pytest.raises(ValueError, match="top"):
            ampcf_model.persona_summary(tiny_data.interactions, item_categories=cat, top=top)
    out = ampcf_model.persona_summary(tiny_data.interactions, item_categories=cat, top=2)
    assert out["top_categories"].shape[2] == 2


# -- metrics --------------------------------------------------------------------------------
def test_evaluate_gives_minority_taste_means(tiny_model, tiny_data):
    from personae.metrics import evaluate, minority_taste_recall, miscalibration

    train, test = personae.holdout_split(tiny_data.interactions, 0.2, seed=0)
    n = train.n_items
    cats = sp.csr_matrix((np.ones(n), (np.arange(n), tiny_data.item_taste)))
    ids, _ = tiny_model.recommend(train, 10)
    plain = evaluate(ids, test.matrix, 10)
    assert "minority_taste_recall@10" not in plain
    m = evaluate(ids, test.matrix, 10, item_categories=cats, history=train)
    per_user = minority_taste_recall(ids, test.matrix, cats, history=train, k=10)
    assert np.isnan(per_user).any()  # why means are needed
    assert m["minority_taste_recall@10"] == pytest.approx(np.nanmean(per_user))
    assert m["c_kl@10"] == pytest.approx(miscalibration(ids[:, :10], cats, history=train).mean())
    assert m["ndcg@10"] == plain["ndcg@10"]
    with pytest.raises(ValueError, match="history"):
        evaluate(ids, test.matrix, 10, item_categories=cats)


# -- files ----------------------------------------------------------------------------------
def test_read_headerless_tab_file(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t1\n")
    names = ["user", "item", "rating", "ts"]
    x = Interactions.read(path, sep="\t", names=names, weight_col="rating")
    assert x.n_users == 2 and x.n_items == 2 and x.matrix.sum() == 11
    # `columns=` (what the new user tried) names the file's columns too.
    y = Interactions.read(path, sep="\t", columns=names, weight_col="rating")
    assert (y.matrix != x.matrix).nnz == 0
    # Without names, the error says the file may lack a header.
    with pytest.raises(ValueError, match="names="):
        Interactions.read(path, sep="\t")


def test_written_files_honour_the_umask(tiny_model, tmp_path):
    import pandas as pd

    from personae.data import write_table

    mode = lambda p: os.stat(p).st_mode & 0o777  # noqa: E731
    old = os.umask(0o022)
    try:
        d = tiny_model.save(tmp_path / "m")
        assert all(mode(f) == 0o644 for f in d.iterdir() if not f.name.startswith(".personae"))
        out = write_table(pd.DataFrame({"a": [1]}), tmp_path / "r.csv")
        assert mode(out) == 0o644
        os.umask(0o077)
        out2 = write_table(pd.DataFrame({"a": [1]}), tmp_path / "s.csv")
        assert mode(out2) == 0o600
        os.umask(0o002)
        assert all(mode(f) == 0o664 for f in tiny_model.save(tmp_path / "m2").glob("*.json"))
    finally:
        os.umask(old)
    assert os.umask(old) == old  # reading it left the process umask as it was


def test_save_waits_for_a_held_lock_then_names_it(tiny_model, tmp_path):
    from personae import modelfile

    d = tmp_path / "m"
    d.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(d / modelfile.LOCK)!r}, 'a+b')\n"
            "fcntl.flock(f.fileno(), fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        t = time.perf_counter()
        with pytest.raises(TimeoutError, match=r"\.personae\.lock"):
            tiny_model.save(d, lock_timeout=0.5)
        assert 0.4 < time.perf_counter() - t < 5
    finally:
        holder.kill()
        holder.wait()
    assert personae.load(tiny_model.save(d, lock_timeout=5)).n_items == tiny_model.n_items


# -- implicit compatibility: every family -----------------------------------------------------
def _families():
    return {
        "multvae": lambda: personae.MultVAE(
            hidden=16, latent=4, epochs=12, batch_size=10, lr=1e-2, device="cpu", seed=0
        ),
        "ampcf": lambda: personae.AMPCF(device="cpu", seed=0),
        "popularity": personae.Popularity,
    }


def _checkerboard(n: int = 50) -> sp.csr_matrix:
    """implicit's test data: even users like even items, odd users odd items; diagonal held
    out."""
    ret = np.zeros((n, n))
    for i in range(n):
        ret[i, i % 2 :: 2] = 1.0
    return sp.csr_matrix(ret - np.eye(n))


@pytest.fixture(scope="module", params=sorted(_families()))
def fitted(request):
    return request.param, _families()[request.param]().fit(_checkerboard(), show_progress=False)


def test_save_and_load_through_a_file_object(fitted, tmp_path):
    family, model = fitted
    x = _checkerboard()
    want = model.recommend(x, 5)
    buf = io.BytesIO()
    model.save(buf)
    buf.seek(0)
    back = type(model).load(buf)
    assert type(back) is type(model)
    np.testing.assert_array_equal(back.recommend(x, 5)[0], want[0])
    # implicit's tests save to a named temporary file, then load by its name.
    path = tmp_path / "model.personae"
    with open(path, "wb") as f:
        model.save(f)
    for loaded in (personae.load(path), personae.load(str(path))):
        np.testing.assert_array_equal(loaded.recommend(x, 5)[1], want[1])
    # The archive is a zip of the two model files: no pickle inside.
    import zipfile

    names = zipfile.ZipFile(path).namelist()
    assert names[0] == "manifest.json" and names[1].endswith(".safetensors")
    assert len(names) == 2


def test_corrupt_archive_is_a_model_format_error(fitted, tmp_path):
    _, model = fitted
    buf = io.BytesIO()
    model.save(buf)
    raw = bytearray(buf.getvalue())
    for junk in (b"not a zip", bytes(raw[: len(raw) // 2])):
        with pytest.raises(personae.ModelFormatError):
            personae.load(io.BytesIO(junk))


def test_saving_an_unfitted_model_is_a_clear_error(tmp_path):
    for family, make in _families().items():
        with pytest.raises(RuntimeError, match="not fitted"):
            make().save(io.BytesIO())
        with pytest.raises(RuntimeError, match="not fitted"):
            make().save(tmp_path / family)
        assert not (tmp_path / family).exists()


def test_checkerboard_behaviours_of_implicits_tests(fitted):
    """What implicit's ``recommender_base_test.py`` checks, for each family."""
    family, model = fitted
    x = _checkerboard()
    if family != "popularity":
        for u in range(50):
            ids, _ = model.recommend(u, x[u], N=1)
            assert ids[0] == u  # the withheld diagonal item
        items, _ = model.similar_items(np.arange(50), N=10)
        assert (items % 2 == np.arange(50)[:, None] % 2).all()
    ids, _ = model.recommend(0, x[0], N=10000)  # more than the catalogue: what remains
    left = 50 - x[0].nnz  # then padding -1 (a documented difference from implicit)
    assert (ids[:left] >= 0).all() and (ids[left:] == -1).all()
    assert set(ids[:left].tolist()) == set(range(50)) - set(x[0].indices.tolist())
    ids, _ = model.recommend(0, x[0], N=5, filter_items=[0])
    assert 0 not in ids.tolist()
    ids, _ = model.recommend(np.arange(50), x, N=3)
    assert ids.shape == (50, 3) and ids.dtype == np.int32
    ids, scores = model.recommend(0, x[0], N=3, items=[1, 3, 5])
    assert set(ids.tolist()) <= {1, 3, 5}
    # implicit raises IndexError for items outside the catalogue (needs the lead's Rust
    # mapping of InvalidInputError to also be an IndexError).
    with pytest.raises(IndexError):
        model.recommend(0, x[0], N=3, items=[10**6])


def test_ampcf_fit_calls_the_callback_once_per_search_step(tiny_data):
    seen = []
    m = personae.AMPCF(device="cpu", seed=0).fit(
        tiny_data.interactions, show_progress=False, callback=lambda *a: seen.append(a)
    )
    steps = len(m.manifest["training"]["search"])
    assert steps > 1 and [s for s, _, _ in seen] == list(range(steps))
    assert all(t >= 0 for _, t, _ in seen)
    ndcg = [r["ndcg@20"] for r in m.manifest["training"]["search"]]
    assert [v for _, _, v in seen] == pytest.approx(ndcg)


def test_every_family_calls_the_callback_at_least_once():
    """implicit's ``test_fit_callback``: a 5 x 5 checkerboard, the callback called >= 1 time."""
    for family, make in _families().items():
        calls = []
        make().fit(_checkerboard(5), show_progress=False, callback=lambda *a, c=calls: c.append(a))
        assert len(calls) >= 1, family
    seen = []
    personae.AMPCF(device="cpu", lam=10.0, user_weight=0.5, rank=4, low_weight=0.1).fit(
        _checkerboard(), show_progress=False, callback=lambda *a: seen.append(a)
    )
    assert len(seen) == 1 and seen[0][0] == 0 and seen[0][2] is None  # nothing searched


def test_archives_with_compressed_entries_are_refused(tiny_model):
    import zipfile

    buf = io.BytesIO()
    tiny_model.save(buf)
    manifest, weights = personae.modelfile.read_archive(io.BytesIO(buf.getvalue()))
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", manifest)
        z.writestr(zipfile.ZipInfo("x"), b"")
    packed.seek(0)
    with pytest.raises(personae.ModelFormatError, match="compressed"):
        personae.load(packed)
