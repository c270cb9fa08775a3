"""AMP-CF: the Rust path against torch and numpy on the same weights; explanations; fold-in;
save -> load -> recommend; errors."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import personae
from personae.train.ampcf import AMPCFConfig, AMPCFNet, fold_in, net_from_tensors

from conftest import random_csr
from reference import ampcf_scores


def build(net: AMPCFNet) -> personae.AMPCF:
    return personae.AMPCF.from_tensors(net.export(), tau=net.tau)


def random_net(seed, n_users, n_items, k, d, a=None, tau=0.3) -> AMPCFNet:
    torch.manual_seed(seed)
    net = AMPCFNet(n_users, n_items, k, d, a, tau).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return net


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 12),
    st.integers(1, 60),
    st.integers(1, 4),
    st.integers(1, 12),
    st.integers(1, 12),
    st.sampled_from([0.1, 0.3, 1.0]),
    st.integers(1, 70),
)
def test_rust_equals_torch_and_numpy(seed, n_users, n_items, k, d, a, tau, n):
    net = random_net(seed, n_users, n_items, k, d, a, tau)
    model = build(net)
    users = np.arange(n_users)
    got = model.score(users=users)
    with torch.no_grad():
        want = net.score_all(net.personas).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    ref, att_ref = ampcf_scores(net.export(), net.export()["personas"], tau)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    # The same users given as persona values score identically.
    np.testing.assert_array_equal(model.score(personas=net.export()["personas"]), got)
    # Top-n with seen masking equals masking then sorting the dense scores.
    rng = np.random.default_rng(seed)
    x = random_csr(rng, n_users, n_items, 0.2)
    ids, scores = model.recommend(x, n, users=users)
    assert ids.shape == scores.shape == (n_users, n)
    for u in range(n_users):
        seen = set(x[u].indices.tolist())
        kk = min(n, n_items - len(seen))
        assert (ids[u, kk:] == -1).all() and np.isneginf(scores[u, kk:]).all()
        assert not seen & set(ids[u, :kk].tolist())
        masked = got[u].astype(np.float64).copy()
        masked[list(seen)] = -np.inf
        order = np.lexsort((np.arange(n_items), -masked))[:kk]
        np.testing.assert_allclose(scores[u, :kk], masked[order], rtol=1e-6, atol=1e-6)
    # Attention of arbitrary pairs matches the definition and sums to 1.
    items = rng.integers(0, n_items, size=(n_users, 5))
    ex = model.explain(items, users=users)
    assert ex["attention"].shape == (n_users, 5, k)
    np.testing.assert_allclose(ex["attention"].sum(-1), 1.0, rtol=1e-5)
    want_att = np.take_along_axis(att_ref, items[:, :, None], axis=1)
    np.testing.assert_allclose(ex["attention"], want_att, atol=1e-5)


def test_k1_is_a_biased_dot_product():
    net = random_net(3, 7, 40, 1, 8)
    model = build(net)
    t = net.export()
    want = t["personas"][:, 0] @ t["item_emb"].T + t["item_bias"]
    np.testing.assert_allclose(model.score(users=np.arange(7)), want, rtol=1e-4, atol=1e-5)
    ex = model.explain(np.arange(40), users=np.arange(7))
    assert (ex["attention"] == 1.0).all() and (ex["dominant"] == 0).all()


def test_large_catalogue_crosses_tiles_and_chunks():
    # More than one item tile (2048) and more than one user chunk (256).
    net = random_net(5, 300, 2100, 3, 6)
    model = build(net)
    users = np.arange(300)
    dense = model.score(users=users)
    with torch.no_grad():
        want = net.score_all(net.personas).numpy()
    np.testing.assert_allclose(dense, want, rtol=1e-4, atol=1e-5)
    x = random_csr(np.random.default_rng(0), 300, 2100, 0.01)
    ids, scores, dom = model.recommend(x, 25, users=users, explain=True)
    masked = np.where(x.toarray() > 0, -np.inf, dense)
    np.testing.assert_allclose(scores, -np.sort(-masked, axis=1)[:, :25], rtol=1e-5, atol=1e-5)
    att = model.explain(ids, users=users)["attention"]
    np.testing.assert_array_equal(dom, att.argmax(-1))


def test_explain_history_and_summary():
    net = random_net(9, 4, 30, 3, 5)
    model = build(net)
    x = random_csr(np.random.default_rng(1), 4, 30, 0.3)
    x = sp.csr_matrix(sp.diags([1.0, 1.0, 1.0, 0.0]) @ x)
    x.eliminate_zeros()
    x.sort_indices()
    users = np.arange(4)
    ids, _, dom = model.recommend(x, 5, users=users, explain=True)
    ex = model.explain(ids, users=users, user_items=x, n_history=2)
    np.testing.assert_array_equal(ex["dominant"], dom)
    hist, hw = ex["history"], ex["history_weight"]
    assert hist.shape == (4, 3, 2)
    assert (hist[3] == -1).all()
    full = model.explain(np.arange(30), users=users)["attention"]
    for u in range(3):
        own = x[u].indices
        for k in range(3):
            best = own[np.argsort(-full[u, own, k], kind="stable")[:2]]
            np.testing.assert_array_equal(hist[u, k, : len(best)], best)
            assert set(hist[u, k, : len(best)]) <= set(own)
            np.testing.assert_allclose(hw[u, k, : len(best)], full[u, best, k], rtol=1e-6)
    cats = sp.csr_matrix(np.eye(3)[np.arange(30) % 3])
    s = model.persona_summary(x, users=users, item_categories=cats, top=2)
    np.testing.assert_allclose(s["share"][:3].sum(1), 1.0)
    assert np.isnan(s["share"][3]).all()
    assert s["top_categories"].shape == (4, 3, 2)
    # A persona's top category is one of its history items' categories.
    for u in range(3):
        own = x[u].indices
        d = full[u, own].argmax(1)
        for k in range(3):
            c = s["top_categories"][u, k, 0]
            if (d == k).any():
                assert c in set(own[d == k] % 3)
            else:
                assert c == -1


def test_fold_in_scores_new_users_and_improves_their_loss(tiny_data):
    model = personae.AMPCF(n_personas=2, dim=16, epochs=2, device="cpu", seed=0)
    model.fit(tiny_data.interactions, show_progress=False)
    new = tiny_data.interactions.matrix[:10]
    trained = model._core.tensors()
    net = net_from_tensors(trained, model.params["tau"])
    p, hist = fold_in(net, new, AMPCFConfig(n_personas=2, dim=16), steps=30, return_history=True)
    assert p.shape == (10, 2, 16)
    assert hist[-1] < hist[0]
    personas = model.fold_in(new, steps=30)
    assert personas.shape == (10, 2, 16) and np.isfinite(personas).all()
    ids, scores = model.recommend(new, 10, personas=personas)
    assert ids.shape == (10, 10) and np.isfinite(scores).all()
    for u in range(10):
        assert not set(new[u].indices) & set(ids[u])
    # Plain recommend folds the personas in from the histories, as every family serves users.
    folded = model.recommend(new, 10, personas=model.fold_in(new))[0]
    np.testing.assert_array_equal(model.recommend(new, 10)[0], folded)
    # Item side is untouched by fold-in.
    np.testing.assert_array_equal(model.item_factors(), trained["item_emb"])


def test_training_learns_and_round_trips(tiny_data, tmp_path):
    tr, te = personae.holdout_split(tiny_data.interactions, 0.2, seed=0)
    est = personae.AMPCF(n_personas=2, dim=16, epochs=3, patience=0, device="cpu", seed=0)
    seen = []
    est.fit(tr, validation=(tr, te), show_progress=False, callback=lambda *a: seen.append(a))
    assert len(est.history) == 3 and [e for e, _, _ in seen] == [0, 1, 2]
    assert est.history[-1]["loss"] < est.history[0]["loss"]
    m = est
    users = np.arange(tr.n_users)
    ids, scores = m.recommend(tr.matrix, 20, users=users)
    est.save(tmp_path / "m")
    loaded = personae.load(tmp_path / "m")
    assert loaded.kind == "ampcf" and loaded.n_personas == 2
    ids2, scores2 = loaded.recommend(tr.matrix, 20, users=users)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_array_equal(scores, scores2)
    # implicit-style API on training user ids.
    i1, _ = est.recommend(5, tr.matrix[5], N=7)
    np.testing.assert_array_equal(i1, ids[5, :7])


def test_bad_inputs_raise_clear_errors():
    net = random_net(1, 3, 10, 2, 4)
    model = build(net)
    x = sp.csr_matrix((3, 10), dtype=np.float32)
    with pytest.raises(ValueError, match="exactly one of users"):
        model.recommend(x, 5, users=[0, 1, 2], personas=np.zeros((3, 2, 4)))
    with pytest.raises(personae.InvalidInputError, match="not a training user"):
        model.recommend(x, 5, users=[0, 1, 3])
    with pytest.raises(personae.InvalidInputError, match="rows"):
        model.recommend(x, 5, users=[0, 1])
    with pytest.raises(personae.InvalidInputError, match="not a whole number of users"):
        model.recommend(x, 5, personas=np.zeros((3, 3, 4)))
    with pytest.raises(personae.InvalidInputError, match="non-finite"):
        model.recommend(x, 5, personas=np.full((3, 2, 4), np.nan))
    with pytest.raises(personae.InvalidInputError, match="columns"):
        model.recommend(sp.csr_matrix((3, 9)), 5, users=[0, 1, 2])
    with pytest.raises(TypeError, match="integer"):
        model.explain([0.5], users=[0])
    with pytest.raises(personae.InvalidInputError, match="outside 0..10"):
        model.explain([10], users=[0])
    with pytest.raises(personae.InvalidInputError, match="outside"):
        model._core.attention(np.array([0]), np.array([5]), np.array([0]))
    # AMP-CF-only methods exist only on AMP-CF models.
    mv = personae.MultVAE.from_tensors(multvae_tensors())
    assert not hasattr(mv, "explain") and not hasattr(mv, "fold_in")
    with pytest.raises(TypeError, match="unexpected arguments"):
        mv.recommend(x, 5, users=[0, 1, 2])
    with pytest.raises(personae.ModelFormatError, match="tau"):
        personae.Model.from_bytes(*_without(model, "tau"))
    with pytest.raises(personae.ModelFormatError, match="proj_item"):
        t = net.export()
        t["proj_item"] = t["proj_item"][:2]
        personae.AMPCF.from_tensors(t, tau=0.3)


def _without(model, field: str):
    import json

    m, w = model.to_bytes()
    d = json.loads(m)
    del d[field]
    return json.dumps(d).encode(), w


def multvae_tensors():
    from personae.train.multvae import MultVAENet

    return MultVAENet(10, 4, 2).export()


def test_loss_terms_match_their_definitions():
    """The training loss, written out: alpha * CE over (positive, negatives) with the optional
    logQ correction, the attention-entropy terms, and the per-batch L2 penalty."""
    net = random_net(4, 6, 20, 3, 5)
    torch.manual_seed(0)
    items = torch.randint(0, 20, (6, 5))
    p = net.personas.detach()
    log_q = torch.log(torch.rand(20) + 0.1)
    cfg = AMPCFConfig(n_personas=3, dim=5, alpha=0.7, lambda_p=0.1, lambda_n=0.2, l2=0.01)
    s, att = net.forward_personas(p, items)
    logits = (s - log_q[items]).double()
    ce = -(logits[:, 0] - torch.logsumexp(logits, dim=1))
    ent = -(att * att.log()).sum(-1).double()
    reg = 0.1 * ent[:, 0] - 0.2 * ent[:, 1:].mean(1)
    sq = (p**2).sum((1, 2)) + (net.item_emb[items] ** 2).sum((1, 2))
    want = ((0.7 * ce + 0.3 * reg).mean() + 0.01 * sq.double().mean()).detach()
    got = net.loss_personas(p, items, cfg, log_q).detach()
    assert abs(float(got) - float(want)) < 1e-5 * max(1.0, abs(float(want)))
    # Without the correction and the penalty, the loss is the plain one.
    cfg0 = AMPCFConfig(n_personas=3, dim=5, alpha=0.7, lambda_p=0.1, lambda_n=0.2)
    plain = -(s.double()[:, 0] - torch.logsumexp(s.double(), dim=1))
    want0 = (0.7 * plain + 0.3 * reg).mean()
    assert abs(float(net.loss_personas(p, items, cfg0).detach()) - float(want0.detach())) < 1e-5


def test_logq_and_l2_train_and_fold_in(tiny_data):
    est = personae.AMPCF(
        n_personas=2, dim=8, epochs=2, n_neg=8, logq=True, l2=1e-3, device="cpu", seed=0
    )
    est.fit(tiny_data.interactions, show_progress=False)
    assert est.history[-1]["loss"] < est.history[0]["loss"]
    cfg = est.manifest["config"]["model"]
    assert cfg["logq"] is True and cfg["l2"] == 1e-3
    p = est.fold_in(tiny_data.interactions.matrix[:3], steps=5)
    assert p.shape == (3, 2, 8) and np.isfinite(p).all()
    with pytest.raises(ValueError, match="l2"):
        personae.AMPCF(l2=-1.0)


def test_seeded_cpu_training_is_reproducible(tiny_data):
    def fit():
        est = personae.AMPCF(n_personas=2, dim=8, epochs=2, n_neg=4, device="cpu", seed=3)
        return est.fit(tiny_data.interactions, show_progress=False)._core.tensors()

    a, b = fit(), fit()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_batch_scorer_folds_in_ampcf_users(tiny_data, tmp_path):
    """The Ray Data scoring actor (used without Ray here) serves AMP-CF models from histories."""
    import pyarrow as pa

    from personae.distributed import BatchScorer

    est = personae.AMPCF(n_personas=2, dim=8, epochs=1, device="cpu", seed=0)
    est.fit(tiny_data.interactions, show_progress=False)
    path = est.save(tmp_path / "m")
    inter = tiny_data.interactions
    m = inter.matrix[:6]
    batch = pa.table(
        {"user": np.arange(6), "items": [inter.item_ids[m[r].indices].tolist() for r in range(6)]}
    )
    out = BatchScorer(str(path), n=4)(batch)
    personas = personae.load(path).fold_in(m)
    ids, _ = personae.load(path).recommend(m, 4, personas=personas)
    np.testing.assert_array_equal(np.reshape(out["item"], (6, 4)), inter.item_ids[ids])
    np.testing.assert_array_equal(np.reshape(out["rank"], (6, 4))[0], [1, 2, 3, 4])


def test_tensor_accessors_and_cached_fold_in_net():
    net = random_net(2, 5, 12, 3, 4)
    model = build(net)
    t = net.export()
    np.testing.assert_array_equal(model.personas([4, 0]), t["personas"][[4, 0]])
    got = model._core.tensors()
    assert set(got) == {"personas", "item_emb", "item_bias", "proj_user", "proj_item"}
    np.testing.assert_array_equal(got["proj_item"], t["proj_item"])
    np.testing.assert_array_equal(model.item_factors(), t["item_emb"])
    with pytest.raises(personae.InvalidInputError, match="not a training user"):
        model.personas([5])
    x = random_csr(np.random.default_rng(3), 4, 12, 0.3)
    a = model.fold_in(x, steps=5)
    b = model.fold_in(x, steps=5)  # the frozen net is built once and reused
    np.testing.assert_array_equal(a, b)
    assert len(model._fold_in_nets) == 1
    assert not any(p.requires_grad for p in model._fold_in_nets["cpu"].parameters())
