"""Tests of the installed release wheel (run by .ci/run from a fresh virtualenv, outside the
source tree). PERSONAE_WHEEL and PERSONAE_SDIST name the built artifacts."""

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

WHEEL = Path(os.environ["PERSONAE_WHEEL"])
SDIST = Path(os.environ["PERSONAE_SDIST"])
# What a model file, a dataset or a test could look like inside a package: none may ship.
DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".txt", ".data", ".item", ".genre", ".json", ".bin")


def test_imports_from_the_wheel_not_the_source_tree():
    import personae

    assert Path(personae.__file__).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert shutil.which("cargo") is None and shutil.which("rustc") is None


def test_wheel_is_abi3_manylinux_and_holds_only_the_package():
    assert "-cp310-abi3-" in WHEEL.name and "manylinux" in WHEEL.name, WHEEL.name
    names = zipfile.ZipFile(WHEEL).namelist()
    package = [n for n in names if not n.startswith("personae-")]
    assert all(n.startswith("personae/") for n in package), package
    assert {"personae/_core.abi3.so", "personae/__init__.py", "personae/py.typed"} <= set(names)
    assert "personae/_core.pyi" in names
    data = [n for n in package if n.endswith(DATA_SUFFIXES)]
    assert data == [], data
    assert not any(x in n for n in names for x in ("shared/", "tests/", "ml-100k", "gowalla"))


def test_sdist_has_sources_and_no_datasets():
    names = tarfile.open(SDIST).getnames()
    assert any(n.endswith("rust/core/src/fused.rs") for n in names)
    assert any(n.endswith("python/personae/models.py") for n in names)
    assert not any(x in n for n in names for x in ("ml-100k", "gowalla", "u.data", "ratings.csv"))


SCRIPT = textwrap.dedent("""
    import numpy as np, scipy.sparse as sp, personae
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s, dtype=np.float32)
    mv = personae.MultVAE.from_tensors({
        "enc_item": f(300, 16), "enc_b": f(16), "mu_w": f(16, 4), "mu_b": f(4),
        "dec_w": f(4, 16), "dec_b": f(16), "dec_item": f(300, 16), "dec_item_b": f(300)})
    z = f(300, 8)
    amp = personae.AMPCF.from_tensors({
        "votes": f(300, 300), "low_left": f(300, 4), "low_right": f(300, 4),
        "item_space": z / np.linalg.norm(z, axis=1, keepdims=True),
        "item_cluster": np.arange(300, dtype=np.int32) % 7, "centroids": f(7, 8)},
        n_personas=3, mix=0.5)
    x = sp.random(50, 300, density=0.05, format="csr", random_state=0, dtype=np.float32)
    rr = personae.CalibratedReranker(np.eye(300, 7) + np.eye(300, 7, -7), lam=0.5)
    a = mv.recommend(x, 20)
    b = amp.recommend(x, 20)
    c = rr.rerank(a[0], a[1], history=x, n=5)
    np.savez(__import__("sys").argv[1], a0=a[0], a1=a[1], b0=b[0], b1=b[1], c0=c.ids)
""")


def test_runs_on_a_cpu_without_avx2(tmp_path):
    """The same calls natively and on an emulated CPU without AVX, AVX2 or FMA (Westmere: the
    baseline fp32 paths, chosen at run time) give the same lists."""
    import numpy as np

    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    native, old = tmp_path / "native.npz", tmp_path / "westmere.npz"
    subprocess.run([sys.executable, str(script), str(native)], check=True, timeout=120)
    python = os.path.realpath(sys.executable)
    subprocess.run(
        ["qemu-x86_64", "-cpu", "Westmere", python, str(script), str(old)],
        check=True,
        timeout=600,
    )
    a, b = np.load(native), np.load(old)
    for key in ("a0", "b0", "c0"):
        np.testing.assert_array_equal(a[key], b[key])
    for key in ("a1", "b1"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)
