"""Reliability: crash-safe and concurrency-safe saves, interruptible calls, thread safety,
streaming, no pickle anywhere."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import personae

ROOT = Path(__file__).resolve().parent.parent

# Two distinguishable models for the concurrency tests: item ids "a..." with counts 1, 2, 3...
# and item ids "b..." with the counts reversed. A load that mixes files shows it at once.
TWO_MODELS = """
import numpy as np, personae
N = 20_000
def model(tag):
    counts = np.arange(1, N + 1, dtype=np.float32)
    if tag == "b":
        counts = counts[::-1].copy()
    ids = [f"{tag}{i}" for i in range(N)]
    return personae.Popularity.from_tensors({"item_count": counts}, item_ids=ids)
def check(m):
    tag = m.item_ids[0][0]
    want = 1.0 if tag == "a" else float(N)
    return m.counts[0] == want and all(str(x)[0] == tag for x in m.item_ids[:: N // 10])
"""


def _script(body: str) -> str:
    return TWO_MODELS + textwrap.dedent(body)


def _run_for(seconds: float, script: str, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, str(seconds), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


WRITER = """
import sys, time
d, tag0 = sys.argv[2], sys.argv[3]
models = [model(tag0), model("b" if tag0 == "a" else "a")]
end = time.time() + float(sys.argv[1])
i = 0
while time.time() < end:
    models[i % 2].save(d)
    i += 1
print(i)
"""

READER = """
import sys, time
d = sys.argv[2]
end = time.time() + float(sys.argv[1])
loads = mixes = failures = 0
# A count of loads, not a duration: on a loaded machine a fixed time gives too few races.
while time.time() < end and loads + failures < int(sys.argv[3]):
    try:
        m = personae.load(d)
    except Exception as e:
        failures += 1
        print("failure:", repr(e), file=sys.stderr)
        continue
    loads += 1
    mixes += not check(m)
print(loads, mixes, failures)
"""


def test_loads_during_saves_never_mix_two_models(tmp_path):
    d = tmp_path / "m"
    subprocess.run([sys.executable, "-c", _script(f"model('a').save({str(d)!r})")], check=True)
    writer = _run_for(90, _script(WRITER), d, "a")
    reader = _run_for(90, _script(READER), d, 150)
    out, err = reader.communicate(timeout=120)
    writer.kill()  # mid-save is fine: the directory is consistent at every instant
    writer.communicate(timeout=120)
    loads, mixes, failures = map(int, out.split())
    assert loads + failures >= 150, (out, err)
    assert (mixes, failures) == (0, 0), err


def test_two_writers_never_break_the_directory(tmp_path):
    d = tmp_path / "m"
    subprocess.run([sys.executable, "-c", _script(f"model('a').save({str(d)!r})")], check=True)
    writers = [_run_for(5, _script(WRITER), d, tag) for tag in ("a", "b")]
    reader = _run_for(5, _script(READER), d, 10**9)
    out, err = reader.communicate(timeout=120)
    saves = [int(w.communicate(timeout=120)[0]) for w in writers]
    assert min(saves) > 3
    loads, mixes, failures = map(int, out.split())
    assert loads > 10 and (mixes, failures) == (0, 0), err
    final = subprocess.run(
        [sys.executable, "-c", _script(f"print(check(personae.load({str(d)!r})))")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert final.stdout.strip() == "True"
    # At most the current and the previous weights remain.
    assert len(list(d.glob("weights-*.safetensors"))) <= 2


def test_sigkill_during_save_leaves_a_loadable_model_and_no_temp_files(tmp_path):
    """A process saving model after model is killed at random moments; every time, the
    directory still loads one of the models, and the next save removes the crash's leftovers."""
    d = tmp_path / "m"
    script = _script(
        f"""
        import itertools
        ms = [model("a"), model("b")]
        for i in itertools.count():
            ms[i % 2].save({str(d)!r})
            if i == 0:
                print("first", flush=True)
        """
    )
    rng = np.random.default_rng(1)
    for _ in range(8):
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "first"
        time.sleep(float(rng.uniform(0.0, 0.3)))
        p.send_signal(signal.SIGKILL)
        p.wait()
        loaded = personae.load(d)
        assert loaded.counts[0] in (1.0, 20_000.0)
    leftovers = list(d.glob(".*.tmp"))
    personae.load(d).save(d)
    assert not list(d.glob(".*.tmp")), leftovers


def test_real_model_survives_sigkill_mid_save(tiny_model, tmp_path):
    d = tiny_model.save(tmp_path / "m")
    x = sp.csr_matrix((2, tiny_model.n_items))
    before = personae.load(d).recommend(x, 5)
    # The child's first fsync (of the new weights' temporary file) stalls like a slow disk, so
    # the kill always lands mid-save, after the bytes are written and before any rename.
    script = textwrap.dedent(f"""
        import json, os, time
        from personae import modelfile
        m = open({str(d / "manifest.json")!r}, "rb").read()
        w = b"x" * 50_000_000
        mm = json.loads(m); mm["weights_file"] = "weights-deadbeefdeadbeef.safetensors"
        real_fsync = os.fsync
        def slow_fsync(fd):
            real_fsync(fd)
            print("go", flush=True)
            time.sleep(60)
        os.fsync = slow_fsync
        modelfile.save({str(d)!r}, json.dumps(mm).encode(), w)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "go"
    p.send_signal(signal.SIGKILL)
    p.wait()
    after = personae.load(d).recommend(x, 5)
    np.testing.assert_array_equal(before[0], after[0])


LONG_CALL = """
import sys, time
import numpy as np, scipy.sparse as sp, personae
rng = np.random.default_rng(0)
items, h = 20_000, 1_000
t = {
    "enc_item": rng.standard_normal((items, h), dtype=np.float32) * 0.01,
    "enc_b": np.zeros(h, np.float32),
    "mu_w": rng.standard_normal((h, 50), dtype=np.float32) * 0.01,
    "mu_b": np.zeros(50, np.float32),
    "dec_w": rng.standard_normal((50, h), dtype=np.float32) * 0.01,
    "dec_b": np.zeros(h, np.float32),
    "dec_item": rng.standard_normal((items, h), dtype=np.float32) * 0.01,
    "dec_item_b": np.zeros(items, np.float32),
}
model = personae.MultVAE.from_tensors(t)
rows = np.repeat(np.arange(60_000), 2)
x = sp.csr_matrix(
    (np.ones(len(rows), np.float32), (rows, rng.integers(0, items, len(rows)))),
    shape=(60_000, items),
)
x.sum_duplicates()
print("start", flush=True)
t0 = time.perf_counter()
try:
    model.recommend(x, 10)
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
"""


LONG_RERANK = """
import sys
import numpy as np, scipy.sparse as sp, personae
rng = np.random.default_rng(0)
users, items, width = 400_000, 5_000, 100
cats = sp.csr_matrix((rng.random((items, 20)) < 0.15).astype(np.float32) + np.eye(items, 20))
rr = personae.CalibratedReranker(cats, lam=0.5)
cand = np.argsort(rng.random((users, items // 25)), axis=1)[:, :width].astype(np.int64) * 25
scores = rng.random((users, width), dtype=np.float32)
rows = np.repeat(np.arange(users), 5)
history = sp.csr_matrix(
    (np.ones(len(rows), np.float32), (rows, rng.integers(0, items, len(rows)))),
    shape=(users, items),
)
history.sum_duplicates()
print("start", flush=True)
try:
    rr.rerank(cand, scores, history=history, n=10)
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize("script", [LONG_CALL, LONG_RERANK], ids=["recommend", "rerank"])
def test_ctrl_c_interrupts_a_long_call(script):
    p = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "start"
    time.sleep(1.0)  # well inside a call that takes several seconds
    sent = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    waited = time.perf_counter() - sent
    assert p.returncode == 3 and out.strip() == "interrupted", (out, err)
    # The issue asks for "within a second"; slack for a loaded CI machine.
    assert waited < 2.0, waited


def test_eight_threads_equal_sequential(tiny_model, tiny_data):
    m = tiny_data.interactions.matrix
    chunks = [m[i::8] for i in range(8)]
    want = [tiny_model.recommend(c, 10) for c in chunks]
    got = [None] * 8

    def work(i):
        for _ in range(5):
            got[i] = tiny_model.recommend(chunks[i], 10, num_threads=1 + i % 3)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (a, b), (c, e) in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, e)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts OS threads via /proc")
def test_thread_pools_stay_bounded(tiny_model, tiny_data):
    """Every num_threads value used to keep its own pool alive forever (1..64 left 2,083 OS
    threads); requests are now capped at the CPUs this process may use, one idle pool each.
    Only the core's own workers (named ``personae-<i>``) are counted: other native threads of
    the process (a freshly spawned one is still called ``python``) come and go on their own."""
    import personae._core as core

    def workers() -> int:
        names = []
        for t in os.listdir("/proc/self/task"):
            try:
                names.append(Path(f"/proc/self/task/{t}/comm").read_text())
            except OSError:  # the thread exited between the listing and the read
                pass
        return sum(n.startswith("personae-") for n in names)

    x = tiny_data.interactions.matrix[:50]
    for t in range(1, core.MAX_THREADS + 1):  # every pool size that can exist, once
        tiny_model.recommend(x, 5, num_threads=t)
    before = workers()
    assert before >= core.MAX_THREADS  # the pools are there and counted
    for t in range(1, 65):
        tiny_model.recommend(x, 5, num_threads=t)
    assert workers() <= before


def test_stream_equals_one_shot(tiny_model, tiny_data):
    m = tiny_data.interactions.matrix
    whole = tiny_model.recommend(m, 7)
    parts = list(tiny_model.recommend_stream((m[s : s + 64] for s in range(0, m.shape[0], 64)), 7))
    np.testing.assert_array_equal(np.vstack([p[0] for p in parts]), whole[0])
    np.testing.assert_array_equal(np.vstack([p[1] for p in parts]), whole[1])


def test_no_pickle_anywhere():
    """Model files and training checkpoints never go through pickle or torch.save/load."""
    pattern = re.compile(
        r"^\s*(import|from) (c?pickle|dill|joblib)\b|pickle\.(loads?|dumps?)\(|"
        r"torch\.(save|load)\(|allow_pickle=True",
        re.MULTILINE,
    )
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "python").rglob("*.py")
        if pattern.search(p.read_text())
    ]
    assert offenders == []


def test_interpreter_survives_hostile_arrays(tiny_model):
    """Non-contiguous, wrongly typed and oversized inputs raise instead of crashing."""
    core = tiny_model._core
    n = core.n_items
    x = sp.csr_matrix((1, n), dtype=np.float32)
    x.indptr = np.arange(0, 4, dtype=np.int64)[::2]  # non-contiguous view
    with pytest.raises(ValueError, match="C-contiguous"):
        core.recommend(x, 3)
    with pytest.raises(TypeError):
        core.recommend([0, 1], 3)
    with pytest.raises(TypeError, match="float32"):
        core.recommend(sp.csr_matrix((1, n), dtype=np.float64), 3)
    with pytest.raises(personae.InvalidInputError):
        core.recommend(sp.csr_matrix((1, n), dtype=np.float32), -1)


def test_a_fit_hands_its_tensors_over_and_from_tensors_copies():
    """A fit's build takes the arrays out of its dict and frees each (the fit never holds its
    model twice over); ``from_tensors`` leaves the caller's dict as it was; the built model is
    the one the file path gives."""
    import weakref

    from personae import _core
    from personae.train.multvae import MultVAENet

    net = MultVAENet(30, 8, 4, dropout=0.0)
    user = {k: np.array(v) for k, v in net.export().items()}
    before = {k: v.copy() for k, v in user.items()}
    model = personae.MultVAE.from_tensors(user)
    assert user.keys() == before.keys()
    assert all(np.array_equal(user[k], before[k]) for k in user)

    owned = {k: v.copy() for k, v in user.items()}
    refs = [weakref.ref(v) for v in owned.values()]
    manifest = '{"kind": "multvae", "n_items": 30}'
    built = _core.build(manifest, owned)
    assert owned == {}
    assert all(r() is None for r in refs)  # every array freed, not kept alive by the core
    t = built.tensors()
    assert all(np.array_equal(t[k], before[k]) for k in before)
    # The same manifest (its hash included) and weights as encoding and decoding a file.
    text, weights = built.to_bytes()
    again = _core.from_bytes(text.encode(), weights)
    assert (
        json.loads(again.manifest)["weights_sha256"] == json.loads(built.manifest)["weights_sha256"]
    )
    assert model.to_bytes()[1] == weights


AVX2_PATHS = """
import hashlib, sys
import numpy as np, scipy.sparse as sp, personae
from personae import _core
rng = np.random.default_rng(0)
items, h, z = 3_000, 64, 16
t = {
    "enc_item": rng.standard_normal((items, h), dtype=np.float32) * 0.3,
    "enc_b": np.zeros(h, np.float32),
    "mu_w": rng.standard_normal((h, z), dtype=np.float32) * 0.3,
    "mu_b": np.zeros(z, np.float32),
    "dec_w": rng.standard_normal((z, h), dtype=np.float32) * 0.3,
    "dec_b": np.zeros(h, np.float32),
    "dec_item": rng.standard_normal((items, h), dtype=np.float32) * 0.3,
    "dec_item_b": rng.standard_normal(items, dtype=np.float32) * 0.1,
}
x = sp.random(700, items, density=0.01, format="csr", random_state=rng, dtype=np.float32)
x.data[:] = 1
ids, scores = personae.MultVAE.from_tensors(t).recommend(x, 50)
cats = sp.csr_matrix((rng.random((items, 12)) < 0.2).astype(np.float32) + np.eye(items, 12))
rr = personae.CalibratedReranker(cats, lam=0.5)
out = rr.rerank(ids, scores, history=x, n=10)
digest = hashlib.sha256()
for a in (ids, scores, out.ids, out.scores):
    digest.update(np.ascontiguousarray(a).tobytes())
print(_core.gemm_kernel(), _core.first_pass(), digest.hexdigest(), _core.rerank_first_pass())
"""


def test_avx2_paths_give_the_same_lists():
    # PERSONAE_ISA=avx2 holds every path to AVX2 (our AVX2 GEMM kernel and its int16 first
    # pass, the reranker's AVX2 first pass), as an AVX2-only CPU runs them: the same lists and
    # scores, bit for bit, as the default paths (on an AVX-512 CPU, other kernels entirely).
    def run(env: dict) -> list[str]:
        p = subprocess.run(
            [sys.executable, "-c", AVX2_PATHS],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr
        return p.stdout.split()

    capped = run({"PERSONAE_ISA": "avx2"})
    default = run({"PERSONAE_ISA": ""})
    assert capped[2] == default[2]
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx2" in flags and " fma" in flags:
        assert capped[:2] == ["avx2", "avx2int16"]
        assert capped[3] == "avx2"  # the reranker's steps, as the core reports them
        assert default[3] == ("avx512" if " avx512f" in flags else "avx2")
    else:
        assert capped[3] == default[3] == "f64"


def test_column_major_arrays_are_refused_at_the_seam_and_converted_by_the_api():
    """numpy hands out a Fortran-ordered array's memory as a slice too; read as rows it is the
    transpose. The core's entry points refuse it by name (a fit once passed a column-major item
    space to ``split_personas`` and got other personas, silently); the public functions
    convert it and answer as for the C-ordered array."""
    from personae import _core

    rng = np.random.default_rng(0)
    scores = rng.random((6, 9)).astype(np.float32)
    ids = np.argsort(-scores, axis=1)[:, :4].astype(np.int64)
    truth = sp.csr_matrix((scores > 0.7).astype(np.float32))
    f_scores, f_ids = np.asfortranarray(scores), np.asfortranarray(ids)
    assert not f_scores.flags.c_contiguous and not f_ids.flags.c_contiguous
    with pytest.raises(ValueError, match="scores must be a C-contiguous"):
        _core.top_n(f_scores, 3)
    with pytest.raises(ValueError, match="ids must be a C-contiguous"):
        _core.ranking_metrics(f_ids, 4, truth)
    z = rng.standard_normal((9, 3)).astype(np.float32)
    labels = np.arange(9, dtype=np.int32) % 2
    centroids = np.eye(2, 3, dtype=np.float32)
    _core.AMPCF.split_personas(2, z, labels, centroids, truth)  # C-ordered: accepted
    with pytest.raises(ValueError, match="item_space must be a C-contiguous"):
        _core.AMPCF.split_personas(2, np.asfortranarray(z), labels, centroids, truth)
    manifest = json.dumps({"kind": "popularity", "n_items": 9})
    with pytest.raises(ValueError, match='tensor "scores" must be C-contiguous'):
        _core.build(manifest, {"scores": np.asfortranarray(np.ones((9, 2), np.float32))})

    np.testing.assert_array_equal(personae.top_n(f_scores, 3)[0], personae.top_n(scores, 3)[0])
    m = personae.metrics
    assert m.mean_ndcg(f_ids, truth, 4) == m.mean_ndcg(ids, truth, 4)
    np.testing.assert_array_equal(
        m.ranking_metrics(f_ids, truth, 4)["ndcg"], m.ranking_metrics(ids, truth, 4)["ndcg"]
    )


def test_big_endian_arrays_answer_as_native_ones():
    """Arrays read from big-endian files (HDF5, FITS, ``np.dtype('>i4')``) keep their byte
    order; a scipy matrix with such index arrays failed inside the binding with an unreadable
    extraction error, and a big-endian dense category matrix inside scipy."""
    rng = np.random.default_rng(1)
    x = sp.random(12, 30, density=0.2, format="csr", random_state=2, dtype=np.float32)
    x.data[:] = 1
    swapped = x.copy()
    swapped.data = swapped.data.astype(">f4")
    swapped.indices = swapped.indices.astype(">i4")
    swapped.indptr = swapped.indptr.astype(">i4")
    assert not swapped.indices.dtype.isnative
    model = personae.Popularity().fit(x)
    np.testing.assert_array_equal(model.recommend(swapped, 5)[0], model.recommend(x, 5)[0])
    scores = rng.random((12, 30)).astype(np.float32)
    np.testing.assert_array_equal(
        personae.top_n(scores.astype(">f4"), 4, seen=swapped)[0],
        personae.top_n(scores, 4, seen=x)[0],
    )
    genres = (rng.random((30, 4)) < 0.4).astype(np.float32)
    genres[:, 0] = 1
    cand = np.argsort(-scores, axis=1)[:, :12].astype(np.int64)
    top = np.take_along_axis(scores, cand, axis=1)
    want = personae.CalibratedReranker(genres).rerank(cand, top, x, n=5).ids
    swapped_genres = sp.csr_matrix(genres)
    swapped_genres.indices = swapped_genres.indices.astype(">i4")
    swapped_genres.indptr = swapped_genres.indptr.astype(">i4")
    for g in (genres.astype(">f4"), swapped_genres):
        got = personae.CalibratedReranker(g).rerank(cand, top.astype(">f4"), swapped, n=5).ids
        np.testing.assert_array_equal(got, want)


def test_implicit_items_with_stored_zeros_and_cold_similar_items():
    """Found by a review. implicit's ``items=`` path appended the already-liked requested items
    by non-zero weight, while the core filters every stored entry: liked items stored with
    weight 0 were dropped and their slots left as -1. And similar_items of an item without
    training interactions returned items 0..N-1 at cosine 0 (EASE) or an untrained
    embedding's neighbours (Mult-VAE): now a row of padding."""
    d = personae.synthetic(n_users=200, n_items=60, seed=0)
    m = personae.Popularity().fit(d.interactions)
    row = d.interactions.matrix[:1].copy()
    row.data[:2] = 0
    allowed = np.r_[row.indices[:3], 0, 1, 2]
    ids, scores = m.recommend(0, row, N=10, items=allowed)
    assert sorted(ids.tolist()) == sorted(np.unique(allowed).tolist())
    assert (ids >= 0).all() and np.isneginf(scores[-3:]).all()
    x = sp.hstack([d.interactions.matrix, sp.csr_matrix((200, 1), dtype=np.float32)]).tocsr()
    ease = personae.EASE(lam=10.0).fit(x, show_progress=False)
    cold_ids, cold_scores = ease.similar_items(60, 5)
    assert (cold_ids == -1).all() and np.isneginf(cold_scores).all()
    warm_ids, _ = ease.similar_items(np.array([60, 0]), 3)
    assert (warm_ids[0] == -1).all() and warm_ids[1, 0] == 0


def test_users_takes_a_boolean_mask_as_a_mask():
    """A boolean mask was cast to row numbers 0 / 1: users([True, False, True]) gave rows
    1, 0, 1."""
    data = personae.Interactions.from_arrays(["a", "b", "c"], [1, 2, 3])
    picked = data.users(np.array([True, False, True]))
    assert picked.user_ids.tolist() == ["a", "c"]
    assert data.users([2, 0]).user_ids.tolist() == ["c", "a"]
    with pytest.raises(ValueError, match="3 entries"):
        data.users(np.array([True, False]))
    with pytest.raises(TypeError, match="row indices or a boolean mask"):
        data.users(np.array([0.5]))


def test_damaged_manifests_and_archives_raise_model_format_error():
    """Found by a review: the manifest's params (not covered by the weights' hash) and a
    damaged zip directory escaped the loader's ModelFormatError contract."""
    import io
    import struct

    d = personae.synthetic(n_users=100, n_items=40, seed=0)
    m = personae.Popularity().fit(d.interactions)
    manifest, weights = m.to_bytes()
    for bad in ([], None, "x"):
        j = json.loads(manifest)
        j["params"] = bad
        with pytest.raises(personae.ModelFormatError, match="params must be an object"):
            personae.Model.from_bytes(json.dumps(j), weights)
    ease = personae.EASE(lam=5.0).fit(d.interactions, show_progress=False)
    e_manifest, e_weights = ease.to_bytes()
    j = json.loads(e_manifest)
    j["params"]["rank"] = -1
    with pytest.raises(personae.ModelFormatError, match="params: rank"):
        personae.Model.from_bytes(json.dumps(j), e_weights)
    buf = io.BytesIO()
    m.save(buf)
    v = buf.getvalue()
    second = v.find(b"PK\x01\x02", v.find(b"PK\x01\x02") + 4)  # the weights' directory entry
    for offset, fmt, value in ((8, "<H", 1), (6, "<H", 99), (42, "<I", 0xFFFFFF00)):
        x = bytearray(v)
        struct.pack_into(fmt, x, second + offset, value)
        with pytest.raises(personae.ModelFormatError):
            personae.load(io.BytesIO(bytes(x)))


def test_validation_of_other_items_is_refused_at_fit():
    """Serving refuses an Interactions over other items; the fit's validation pair compared
    only the column count, so other items of the same count steered the search silently."""
    d = personae.synthetic(n_users=150, n_items=40, seed=1)
    users, items, _ = d.interactions.to_arrays()
    other = personae.Interactions.from_arrays(users, np.asarray(items) + 1000)
    assert other.matrix.shape[1] == 40
    for model in (personae.EASE(), personae.AMPCF(device="cpu")):
        with pytest.raises(personae.InvalidInputError, match="validation fold-in has other"):
            model.fit(d.interactions, validation=(other, other), show_progress=False)


def test_batch_scorer_reads_a_null_list_as_an_empty_history(tmp_path):
    pa = pytest.importorskip("pyarrow")
    from personae.distributed import BatchScorer

    d = personae.synthetic(n_users=100, n_items=40, seed=2)
    personae.Popularity().fit(d.interactions).save(tmp_path / "m")
    # Arrow lets a null entry span values (here 2 and 3): they are not the user's history.
    la = pa.ListArray.from_arrays(
        pa.array([0, 2, 4, 6], pa.int32()),
        pa.array([0, 1, 2, 3, 4, 5], pa.int64()),
        mask=pa.array([False, True, False]),
    )
    scorer = BatchScorer(str(tmp_path / "m"), 5)
    rows = scorer._rows(la).toarray()
    np.testing.assert_array_equal(np.flatnonzero(rows[0]), [0, 1])
    assert not rows[1].any()
    np.testing.assert_array_equal(np.flatnonzero(rows[2]), [4, 5])
    out = scorer(pa.table({"user": [1, 2, 3], "items": la}))
    assert len(out["item"]) == 15


def test_repeated_item_ids_and_missing_tensors_are_named_up_front():
    """A fit with a repeated item id ran to the end and then failed in the model file; a
    family's from_tensors without its catalogue tensor raised a bare KeyError."""
    d = personae.synthetic(n_users=100, n_items=30, seed=0)
    ids = [0, 0, *range(2, 30)]
    with pytest.raises(ValueError, match="item id '0' appears more than once"):
        personae.EASE().fit(d.interactions.matrix, item_ids=ids, show_progress=False)
    with pytest.raises(personae.ModelFormatError, match="tensor 'dec_item_b' is missing"):
        personae.MultVAE.from_tensors({})


def test_no_candidate_items_gives_empty_lists():
    """implicit answers ``items=[]`` with empty arrays; personae gave one padding slot."""
    d = personae.synthetic(n_users=50, n_items=20, seed=3)
    m = personae.Popularity().fit(d.interactions)
    row = d.interactions.matrix[:1]
    ids, scores = m.recommend(0, row, N=5, items=[])
    assert ids.shape == scores.shape == (0,) and ids.dtype == np.int32
    ids, scores = m.recommend(np.array([0, 1]), d.interactions.matrix[:2], N=5, items=[])
    assert ids.shape == (2, 0)
    assert m.recommend(0, row, N=5, items=[3])[0].shape == (1,)
