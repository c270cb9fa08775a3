"""The feedback-loop simulator (personae.simulate) and AMPCF.taste_categories."""

import numpy as np
import pytest
import scipy.sparse as sp

import personae
from personae import simulate

CHEAP = ["oracle", "random", "popularity", "dominant"]
_FIELDS = ("item_taste", "quality", "mixture", "history", "beta", "kappa", "noise", "drift")
TIMING = ["fit_s", "recommend_s"]


@pytest.fixture(scope="module")
def world():
    return simulate.World.make(600, 300, 6, mean_items=15, seed=1)


@pytest.fixture(scope="module")
def table(world):
    return simulate.run(world, CHEAP, rounds=5, n=10, pairs=3000, seed=0)


def test_same_seed_same_table_and_another_seed_differs(world, table):
    again = simulate.run(world, CHEAP, rounds=5, n=10, pairs=3000, seed=0)
    a, b = table.drop(columns=TIMING), again.drop(columns=TIMING)
    assert a.equals(b)
    other = simulate.run(world, CHEAP, rounds=5, n=10, pairs=3000, seed=1).drop(columns=TIMING)
    assert not a.equals(other)
    assert list(table.columns[:3]) == ["policy", "round", "utility_share"]
    assert len(table) == 5 * len(CHEAP)
    # the world is not modified by a run
    assert world.history.nnz == simulate.World.make(600, 300, 6, mean_items=15, seed=1).history.nnz


def test_oracle_utility_is_the_highest_every_round(world, table):
    def best_quality(history, n, state):
        # knows quality but not tastes: a strong non-oracle competitor
        w = state.world
        s = np.broadcast_to(w.weight.astype(np.float32), history.shape)
        return personae.top_n(np.ascontiguousarray(s), n, seen=history)[0]

    t = simulate.run(
        world,
        {"oracle": "oracle", "quality": best_quality, "dominant": "dominant"},
        rounds=4,
        pairs=1000,
    )
    for frame in (table, t):
        wide = frame.pivot(index="round", columns="policy", values="utility")
        others = wide.drop(columns="oracle")
        assert (wide["oracle"].to_numpy()[:, None] >= others.to_numpy() - 1e-12).all()
        assert (frame.loc[frame.policy == "oracle", "utility_share"] == 1.0).all()
        assert (frame.loc[frame.policy != "oracle", "utility_share"] < 1.0).all()


def test_dominant_only_policy_loses_the_minority_tastes(table):
    dom = table[table.policy == "dominant"].sort_values("round")
    # nothing but the dominant taste is shown, so nothing else is consumed ...
    assert (dom["retention"] == 0).all()
    # ... and the record the models learn from loses its minority tastes round after round
    cum = dom["retention_cumulative"].to_numpy()
    assert (np.diff(cum) < 0).all(), cum
    # the random policy keeps them (its cumulative retention does not fall like that)
    rnd = table[table.policy == "random"].sort_values("round")["retention_cumulative"].to_numpy()
    assert rnd[-1] > cum[-1] + 0.1


def test_random_homogenisation_matches_its_expected_value():
    # an empty starting history makes every random list a uniform 10-subset of all m items
    n_users, m, n, pairs = 1000, 200, 10, 20000
    mix = np.zeros((n_users, 4))
    mix[:, 0] = 1.0
    w = simulate.World(
        item_taste=np.arange(m) % 4,
        quality=np.zeros(m),
        mixture=mix,
        history=sp.csr_matrix((n_users, m), dtype=np.float32),
    )
    t = simulate.run(w, ["random"], rounds=1, n=n, pairs=pairs, seed=3)
    row = t[t.policy == "random"].iloc[0]
    want = simulate.expected_random_jaccard(n, m)
    # the sampled mean's standard error, from the hypergeometric law of the overlap
    from scipy.stats import hypergeom

    x = np.arange(n + 1)
    pmf = hypergeom.pmf(x, m, n, n)
    sd = np.sqrt((pmf * (x / (2 * n - x)) ** 2).sum() - want**2)
    assert abs(row["jaccard"] - want) < 5 * sd / np.sqrt(pairs)
    # every item is on a list with probability 1 - (1 - n/m)^users (~1 here); exposure is
    # near-uniform: the Gini of binomial(users, n/m) counts is about sd / (mean sqrt(pi))
    assert row["coverage"] == pytest.approx(1 - (1 - n / m) ** n_users, abs=1e-9)
    mean = n_users * n / m
    assert row["gini"] == pytest.approx(
        np.sqrt(mean * (1 - n / m)) / (mean * np.sqrt(np.pi)), rel=0.15
    )


def test_metric_helpers():
    assert simulate.gini(np.array([3, 3, 3])) == 0.0
    assert simulate.gini(np.array([0, 0, 6])) == pytest.approx(2 / 3)
    ids = np.array([[0, 1, 2], [1, 2, 3], [5, 6, -1]])
    assert simulate.pair_jaccard(ids, np.array([0, 0]), np.array([1, 2])) == pytest.approx(0.25)
    assert simulate.expected_random_jaccard(3, 3) == pytest.approx(1.0)


def test_user_policy_and_bad_inputs(world):
    def first_items(history, n, state):
        return np.tile(np.arange(n), (history.shape[0], 1))

    t = simulate.run(world, {"fixed": first_items}, rounds=2, pairs=500)
    assert set(t.policy) == {"oracle", "fixed"}  # the oracle joins every run
    fixed = t[t.policy == "fixed"]
    assert (fixed["jaccard"] == 1.0).all() and (fixed["coverage"] == 10 / world.n_items).all()
    with pytest.raises(ValueError, match="returned shape"):
        simulate.run(world, {"bad": lambda h, n, s: np.zeros((3, n), np.int64)}, rounds=1)
    with pytest.raises(ValueError, match="outside"):
        simulate.run(world, {"bad": lambda h, n, s: np.full((h.shape[0], n), 10**6)}, rounds=1)
    with pytest.raises(ValueError, match="unknown policy"):
        simulate.run(world, ["nope"], rounds=1)
    with pytest.raises(ValueError, match="rounds"):
        simulate.run(world, ["random"], rounds=0)
    with pytest.raises(TypeError, match="World"):
        simulate.run("world", ["random"])
    with pytest.raises(ValueError, match="noise"):
        simulate.World.make(50, 40, 4, noise=1.5)
    # Found by a review: these failed mid-round under internal names, or after a first fit.
    for bad, match in (("lam", "lam must be"), ("pool", "pool must be"), ("seed", "seed must be")):
        value = {"lam": 2.0, "pool": -5, "seed": -1}[bad]
        with pytest.raises(ValueError, match=match):
            simulate.run(world, ["calibrated"] if bad == "lam" else ["random"], **{bad: value})
    small = simulate.World.make(50, 40, 4, seed=3)
    for field, value, match in (
        ("mixture", small.mixture * 2, "mixture rows"),
        ("item_taste", small.item_taste + 4, "item_taste"),
        ("quality", np.full(40, np.nan), "quality must be finite"),
        ("drift", 1e6, "drift must be at most"),
    ):
        with pytest.raises(ValueError, match=match):
            simulate.World(**{**{k: getattr(small, k) for k in _FIELDS}, field: value})


def test_custom_policies_are_checked_and_kept_apart(world):
    """Found by a review: a policy showing an item twice had its clicks and exposure counted
    twice; two policies of one name collapsed into one, silently; and at reconsume 0 a user
    still clicked their own history items (by the noise term)."""
    best = np.argsort(-world.weight)

    def repeat(h, n, s):
        return np.tile(best[:1], (h.shape[0], n))

    with pytest.raises(ValueError, match="twice"):
        simulate.run(world, {"dup": repeat}, rounds=1)
    f1 = lambda h, n, s: np.tile(best[:n], (h.shape[0], 1))  # noqa: E731
    f2 = lambda h, n, s: np.tile(best[n : 2 * n], (h.shape[0], 1))  # noqa: E731
    with pytest.raises(ValueError, match="two policies are named '<lambda>'"):
        simulate.run(world, [f1, f2], rounds=1)
    with pytest.raises(ValueError, match="named 'random'"):
        simulate.run(world, ["random", "random"], rounds=1)

    def replay(h, n, s):
        out = np.full((h.shape[0], n), -1, np.int64)
        for u in range(h.shape[0]):
            items = h[u].indices[:n]
            out[u, : len(items)] = items
        return out

    assert world.reconsume == 0 and world.noise > 0
    t = simulate.run(world, {"replay": replay}, rounds=1, pairs=100)
    assert (t[t.policy == "replay"]["clicks"] == 0).all()


def test_drift_keeps_each_users_tastes_and_is_seeded(world):
    w = simulate.World.make(600, 300, 6, mean_items=15, seed=1, drift=0.3)
    a = simulate.run(w, ["dominant"], rounds=3, pairs=500).drop(columns=TIMING)
    b = simulate.run(w, ["dominant"], rounds=3, pairs=500).drop(columns=TIMING)
    assert a.equals(b)
    still = simulate.run(world, ["dominant"], rounds=3, pairs=500).drop(columns=TIMING)
    assert not a.equals(still)


def test_persona_slots_follow_the_shares():
    # 2 users, candidates ranked 0..9; item i is in cluster i % 2
    cats = sp.csr_matrix((np.ones(10), (np.arange(10), np.arange(10) % 2)), shape=(10, 2))
    ids = np.tile(np.arange(10), (2, 1))
    taste = np.array([[0, 1], [1, -1]])
    share = np.array([[0.7, 0.3], [1.0, 0.0]])
    out = simulate.persona_slots(ids, cats, taste, share, n=4, min_slots=1)
    # user 0: 4 slots by 0.7 / 0.3 -> 2.8 / 1.2 -> 3 / 1 (largest remainder)
    assert sorted(np.asarray(out[0]) % 2).count(0) == 3
    assert (out[1] % 2 == 1).all()  # one persona: all slots its own
    assert list(out[0]) == sorted(out[0])  # the model's rank order is kept


def test_ampcf_policies_and_taste_categories():
    w = simulate.World.make(400, 150, 5, mean_items=15, seed=3)
    slots = simulate.PersonaSlots(pool=40)
    t = simulate.run(
        w,
        {"ampcf": "ampcf", "ampcf+cal-own": "ampcf+cal-own", "slots": slots},
        rounds=2,
        refit_every=2,
        pairs=500,
        pool=40,
    )
    assert set(t.policy) == {"oracle", "ampcf", "ampcf+cal-own", "slots"}
    r0 = t[t["round"] == 0].set_index("policy")
    # round 0: every AMP-CF policy starts from the same data and shares one fit
    assert (r0.loc[["ampcf+cal-own", "slots"], "fit_s"] < r0.loc["ampcf", "fit_s"]).all()
    assert ((t.utility_share > 0) & (t.utility_share <= 1)).all()

    # AMPCF.taste_categories: the fitted clustering as an items x tastes category matrix
    m = slots.model
    cats = m.taste_categories()
    labels = np.asarray(m.item_tastes())
    assert sp.issparse(cats) and cats.shape == (m.n_items, m.n_tastes)
    rows = np.diff(cats.tocsr().indptr)
    assert (rows == (labels >= 0)).all()  # one category per clustered item, none for -1
    assert (cats.tocsr().indices == labels[labels >= 0]).all()
    assert personae.CalibratedReranker(cats).n_categories == m.n_tastes


def test_cli_and_picture(tmp_path):
    from personae.cli import main

    out = tmp_path / "sim"
    rc = main(
        [
            "simulate",
            "--users",
            "300",
            "--items",
            "120",
            "--tastes",
            "4",
            "--rounds",
            "2",
            "--policies",
            "random,dominant",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    import pandas as pd

    t = pd.read_csv(out / "simulation.csv")
    assert set(t.policy) == {"oracle", "random", "dominant"} and len(t) == 6
    assert (out / "simulation.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="no column"):
        personae.plot.simulation(t.drop(columns="retention"), tmp_path / "x.png")
    # Counts are checked by argparse: a usage error, exit code 2, before anything runs.
    with pytest.raises(SystemExit) as bad:
        main(["simulate", "--users", "50", "--items", "40", "--rounds", "0", "--out", str(out)])
    assert bad.value.code == 2


def test_persona_slots_give_a_weak_persona_its_minimum():
    cats = sp.csr_matrix((np.ones(10), (np.arange(10), np.arange(10) % 2)), shape=(10, 2))
    ids = np.arange(10)[None, :]
    taste, share = np.array([[0, 1]]), np.array([[0.95, 0.05]])
    plain = simulate.persona_slots(ids, cats, taste, share, n=4, min_slots=0)
    assert (plain % 2 == 0).all()  # 3.8 / 0.2 -> 4 / 0
    explore = simulate.persona_slots(ids, cats, taste, share, n=4, min_slots=1)
    assert list(explore[0] % 2).count(1) == 1


def test_als_policy_runs_with_refolded_users(world):
    pol = simulate.make_policy("als")
    t = simulate.run(world, {"als": pol}, rounds=2, refit_every=2, pairs=500)
    als = t[t.policy == "als"]
    assert ((als.utility_share > 0) & (als.utility_share < 1)).all()
    assert als.fit_s.iloc[1] == pytest.approx(0.0, abs=1e-3)  # no refit in round 1 ...
    # ... yet round 1's lists come from factors refolded on the grown history
    assert pol.model.user_factors.shape == (world.n_users, 64)


def test_make_policy_model_settings_and_frozen_refits():
    import warnings

    w = simulate.World.make(300, 120, 4, mean_items=12, seed=5)
    plain = simulate.make_policy("ampcf")
    weighted = simulate.make_policy("ampcf", model={"mix": 0.75, "gamma": 0.5})
    cal = simulate.make_policy("ampcf+cal-own", model={"mix": 0.75, "gamma": 0.5})
    # refits reuse the first fit's filter as filter=, not the deprecated flat arguments
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        t = simulate.run(
            w, {"plain": plain, "weighted": weighted, "cal": cal}, rounds=2, pairs=300, pool=30
        )
    assert set(t.policy) == {"oracle", "plain", "weighted", "cal"}
    assert plain.model.params["mix"] == 0.25
    assert weighted.model.params["mix"] == 0.75 and weighted.model.params["gamma"] == 0.5
    # the frozen filter is the one the first fit chose, passed back as a filter
    chosen = plain.fixed
    assert chosen["kind"] == "ease"
    assert chosen["lam"] == plain.model.manifest["training"]["settings"]["lam"]
    assert plain.model.params["filter"]["kind"] == "ease"
    assert "search" not in plain.model.manifest["training"]  # round 1 skipped the search
    # other settings never share a fit; the same settings do (round 0, identical histories)
    one = [simulate.make_policy("ampcf", model={"mix": 0.75, "gamma": 0.5}) for _ in range(2)]
    one.append(simulate.make_policy("ampcf"))
    simulate.run(w, dict(zip("abc", one, strict=True)), rounds=1, pairs=300)
    assert one[0].model is one[1].model and one[2].model is not one[0].model

    with pytest.raises(ValueError, match="popularity.*no model settings"):
        simulate.make_policy("popularity", model={"mix": 0.5})
    with pytest.raises(ValueError, match="unknown policy"):
        simulate.make_policy("ampcf+typo", model={"mix": 0.5})
    with pytest.raises(ValueError, match="'seed'"):
        simulate.make_policy("ampcf", model={"seed": 3})
    with pytest.raises(TypeError, match="unexpected keyword"):
        simulate.make_policy("ampcf+slots-own", model={"mixx": 0.5})
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        simulate.make_policy("multvae", model={"epochs": -1})


def test_frozen_graph_filter_refits_the_chosen_filter():
    # above 20,000 items AMP-CF's filter is a GraphFilter: a frozen refit must rebuild that
    # filter (ChebyCF's response, its settings), not the flat arguments' GF-CF response
    w = simulate.World.make(200, 90, 3, mean_items=12, seed=2)

    def make(**frozen):  # beta left to the first fit's search
        return personae.AMPCF(**{"filter": personae.GraphFilter(rank=16, beta=None), **frozen})

    policy = simulate._Model(make, freeze=True)  # no key: no fit cache, so no state needed
    policy.fit(w.history, None)
    first, chosen = policy.model, policy.fixed
    assert chosen["kind"] == "graph_filter" and "neighbours" not in chosen
    policy.fit(w.history, None)  # the frozen refit
    again = policy.model
    assert again is not first and "search" in first.manifest["training"]
    assert again.params["filter"]["flatness"] == 2.0 and again.params["filter"]["rank"] == 16
    # the refit got the chosen filter (its dict, beta fixed), so it searched nothing
    assert again.params["filter"]["beta"] == chosen["beta"] and "neighbours" not in chosen
    assert "search" not in again.manifest["training"]
    a, b = first.recommend(w.history[:50], 10), again.recommend(w.history[:50], 10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5)
