"""Absurd sizes, weight scales and indices: clear errors and scale-exact lists, never an abort.

Each test here failed before its fix (issue 19): n_personas = 2**40 aborted the interpreter,
AMP-CF's lists moved with the weight scale, and out-of-range items were not IndexErrors."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

import personae


@pytest.fixture(scope="module")
def data():
    return personae.synthetic(n_users=300, n_items=120, n_tastes=4, mean_items=12, seed=5)


@pytest.fixture(scope="module")
def ampcf(data):
    return personae.AMPCF(device="cpu", search_users=200).fit(
        data.interactions, show_progress=False
    )


def _scaled(m: sp.csr_matrix, c: float) -> sp.csr_matrix:
    out = m.copy()
    out.data = (out.data.astype(np.float64) * c).astype(np.float32)
    return out


def test_absurd_persona_counts_are_errors_not_aborts(ampcf, tmp_path, data):
    with pytest.raises(ValueError, match="n_personas must be at most"):
        personae.AMPCF(n_personas=2**40)
    personae.AMPCF(n_personas=personae._core.MAX_PERSONAS)  # the bound itself is fine
    # A manifest edited by hand: refused when loaded, before anything is allocated.
    path = ampcf.save(tmp_path / "m")
    man = json.loads((path / "manifest.json").read_text())
    man["n_personas"] = 2**40
    (path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(personae.ModelFormatError, match="n_personas must be at most 1024"):
        personae.load(path)


@pytest.mark.parametrize("scale", [1e18, 2.0**-60, 1e30])
def test_ampcf_lists_do_not_depend_on_the_weight_scale(data, ampcf, scale):
    x = data.interactions.matrix
    ids, scores = ampcf.recommend(x, 10)
    got, got_scores = ampcf.recommend(_scaled(x, scale), 10)
    np.testing.assert_array_equal(got, ids)
    np.testing.assert_allclose(got_scores, scores, rtol=1e-5)
    # Non-binary weights: a row of weights and the same row times a power of two rank alike.
    rng = np.random.default_rng(0)
    w = x.copy()
    w.data = rng.uniform(0.5, 5.0, size=w.nnz).astype(np.float32)
    np.testing.assert_array_equal(
        ampcf.recommend(_scaled(w, 2.0**50), 10)[0], ampcf.recommend(w, 10)[0]
    )


def test_ampcf_weights_near_float32_max_give_finite_scores(data, ampcf):
    x = data.interactions.matrix
    huge = x.copy()
    huge.data[:] = 1e38
    ids, scores = ampcf.recommend(huge, 10)
    assert np.isfinite(scores[ids >= 0]).all()
    np.testing.assert_array_equal(ids, ampcf.recommend(x, 10)[0])
    assert np.isfinite(ampcf.score(huge[:5])).all()
    p = ampcf.personas(huge[:20])
    np.testing.assert_array_equal(p["share"], ampcf.personas(x[:20])["share"])


def test_ampcf_fit_does_not_depend_on_the_weight_scale(data, ampcf):
    x = data.interactions.matrix
    big = personae.AMPCF(device="cpu", search_users=200).fit(_scaled(x, 1e18), show_progress=False)
    np.testing.assert_array_equal(big.recommend(x, 10)[0], ampcf.recommend(x, 10)[0])


def test_out_of_range_items_are_index_errors_for_every_family(data, ampcf, tiny_model):
    x = data.interactions.matrix
    pop = personae.Popularity().fit(data.interactions)
    for model in (ampcf, pop):
        with pytest.raises(IndexError, match="outside"):
            model.recommend(0, x[0], items=[10**6])
        with pytest.raises(personae.InvalidInputError):
            model.recommend(x[:2], 5, exclude_items=[-3])
    with pytest.raises(personae.IndexOutOfRangeError, match="outside"):
        tiny_model.recommend(0, sp.csr_matrix((1, tiny_model.n_items)), items=[10**6])
    with pytest.raises(IndexError):
        ampcf.similar_items(10**6)


def test_explain_pads_only_minus_one(data, ampcf):
    x = data.interactions.matrix[:3]
    ids, _ = ampcf.recommend(x, 4)
    padded = ids.copy()
    padded[:, -1] = -1
    out = ampcf.explain(padded, x)
    assert (out["dominant"][:, -1] == -1).all() and (out["dominant"][:, :-1] >= 0).all()
    bad = ids.copy()
    bad[0, 0] = -2
    with pytest.raises(personae.IndexOutOfRangeError, match="-2"):
        ampcf.explain(bad, x)
