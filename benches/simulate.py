"""Feedback-loop simulation at scale: do lists erase minority tastes over rounds?

Runs :func:`personae.simulate.run` on a synthetic world (default 10,000 users x 5,000 items x
12 tastes, 20 rounds of top-10 lists) with every policy but Mult-VAE, prints the last round per
policy, the rounds each policy's list similarity takes to double, and the wall time, and writes
the table (CSV), a JSON record and the picture to runs/.

    python benches/simulate.py                                   # the issue's scale
    python benches/simulate.py --users 2000 --items 1000 --rounds 5   # a quick look
    python benches/simulate.py --policies oracle,ampcf,ampcf+cal-own --refit-every 1
"""

from __future__ import annotations

import argparse
import json
import time

from personae import simulate

from _common import RUNS, cpu


def findings(table) -> dict:
    """The numbers the findings quote: the last round per policy, the non-oracle policies
    within 95% of the best non-oracle utility, and how fast each list set homogenises."""
    last = simulate.summary(table)
    knows = {"oracle", "dominant"}  # policies that read the users' true mixes
    fair = last[~last.policy.isin(knows)]
    best = fair.utility_share.max()
    within = fair[fair.utility_share >= 0.95 * best]
    speed = {}
    for name, part in table.groupby("policy"):
        j = part.sort_values("round")["jaccard"].to_numpy()
        speed[name] = {
            "jaccard_first": float(j[0]),
            "jaccard_last": float(j[-1]),
            "jaccard_ratio": float(j[-1] / j[0]) if j[0] > 0 else float("nan"),
        }
    return {
        "best_non_oracle_utility_share": float(best),
        "within_95": within.policy.tolist(),
        "highest_retention_within_95": within.sort_values("retention").policy.iloc[-1],
        "closest_retention_to_1_within_95": within.assign(d=(within.retention - 1).abs())
        .sort_values("d")
        .policy.iloc[0],
        "homogenisation": speed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--tastes", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--refit-every", type=int, default=5)
    ap.add_argument("--policies", default=",".join(simulate.DEFAULT_POLICIES))
    ap.add_argument("--lam", type=float, default=0.8)
    ap.add_argument("--drift", type=float, default=0.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument(
        "--ablation",
        action="store_true",
        help="add the persona policy's ablations: slots without the weak-persona minimum, "
        "and calibration on its own clusters at lambda 0.5 (0.8 when --lam is 0.5)",
    )
    ap.add_argument(
        "--persona-weights",
        action="append",
        default=[],
        metavar="MIX,GAMMA",
        help="also AMPCF(mix=MIX, gamma=GAMMA), no reranker: the persona-attentive share of "
        "the score and the weight share^-gamma of minority personas' votes (repeatable)",
    )
    a = ap.parse_args()

    t0 = time.perf_counter()
    world = simulate.World.make(a.users, a.items, a.tastes, drift=a.drift, seed=a.seed)
    policies = {p: p for p in a.policies.split(",")}
    if a.ablation:
        from personae import AMPCF

        def ampcf(**kw):
            return AMPCF(device=a.device, seed=a.seed, **kw)

        policies["ampcf+slots-own(min 0)"] = simulate.PersonaSlots(min_slots=0, make=ampcf)
        other = 0.8 if a.lam == 0.5 else 0.5
        policies[f"ampcf+cal-own(lam {other})"] = simulate.make_policy(
            "ampcf+cal-own", seed=a.seed, lam=other, device=a.device
        )
    for setting in a.persona_weights:
        mix, gamma = (float(v) for v in setting.split(","))
        policies[f"ampcf(mix {mix:g}, gamma {gamma:g})"] = simulate.make_policy(
            "ampcf", seed=a.seed, device=a.device, model={"mix": mix, "gamma": gamma}
        )
    table = simulate.run(
        world,
        policies,
        a.rounds,
        a.n,
        a.refit_every,
        seed=a.seed,
        lam=a.lam,
        device=a.device,
        progress=lambda line: print(f"[{time.perf_counter() - t0:6.0f} s] {line}", flush=True),
    )
    wall = time.perf_counter() - t0
    cols = list(simulate.REPORT_COLUMNS)
    cols.insert(3, "retention_cumulative")
    print(
        f"\nafter round {a.rounds - 1} ({a.users} users x {a.items} items, {a.tastes} tastes, "
        f"top-{a.n}, refit every {a.refit_every}):"
    )
    print(simulate.report(table, cols))
    per = table.groupby("policy")[["fit_s", "recommend_s"]].sum()
    print("\nseconds per policy (fit, recommend):")
    print(per.to_string(float_format=lambda v: f"{v:.1f}"))
    f = findings(table)
    print(json.dumps({k: v for k, v in f.items() if k != "homogenisation"}, indent=1))
    print(f"\nwall {wall:.0f} s on {cpu()}")
    RUNS.mkdir(exist_ok=True)
    stem = f"simulate_{a.users}x{a.items}_r{a.rounds}{a.tag}"
    table.to_csv(RUNS / f"{stem}.csv", index=False)
    rec = {
        "args": vars(a),
        "wall_s": wall,
        "cpu": cpu(),
        "findings": f,
        "seconds": per.to_dict(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (RUNS / f"{stem}.json").write_text(json.dumps(rec, indent=1, default=float))
    try:
        from personae.plot import simulation

        simulation(table, RUNS / f"{stem}.png", title=stem)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
