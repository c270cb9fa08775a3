"""The quickstart, ``personae quickstart``: the persona model end to end on synthetic users whose
true tastes are known, written as a user's script on personae's public API (nothing here reaches
into a model's internals), so it can be read, copied and changed.

It generates users who mix 1-4 known tastes, fits ``personae.AMPCF()`` with its defaults and
its single-taste version (the same filter, one persona per user), writes the model and the
plain and calibrated top-N lists, shows one multi-taste user's personas beside their true taste
mix, and prints NDCG, minority-taste recall and C_KL for the three. Run it with
``personae quickstart`` or ``python -c "import personae.quickstart as q; q.run()"``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import personae
from personae.data import long_format, write_table
from personae.metrics import evaluate, minority_taste_recall, miscalibration, nanmean

__all__ = ["run"]


def run(
    out: str | Path = "personae-quickstart",
    users: int = 6000,
    items: int = 3000,
    tastes: int = 12,
    n: int = 20,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
) -> dict:
    """Runs the quickstart and prints what it does, step by step.

    Args:
        out: output folder: ``model/``, ``recommendations.csv`` (the plain top-`n` with the
            persona behind each item, that persona's taste cluster and the item's true taste),
            ``recommendations_calibrated.csv`` and ``calibration.png`` (with matplotlib).
        users, items, tastes: the synthetic data's size (:func:`personae.synthetic`).
        n: the list length, also the metrics' cut-off.
        seed: the data's, the split's and the fit's seed.
        device: where the fit runs: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``.
        quiet: no progress bar during the fit.

    Returns the printed table, ``{row name: {"ndcg": ..., "minority_recall": ..., "ckl":
    ...}}`` for "one taste per user (K = 1)", "personas (AMP-CF)" and "personas +
    calibration"."""
    t0 = time.perf_counter()
    out = Path(out)
    print(
        f"[1/5] synthetic users who are mixes of {tastes} tastes: {users} users, "
        f"{items} items (seed {seed}); every user's true taste mix is known"
    )
    data = personae.synthetic(n_users=users, n_items=items, n_tastes=tastes, seed=seed)
    train, test = personae.holdout_split(data.interactions, 0.2, seed=seed)
    # The true tastes as an items x tastes category matrix: what the reranker calibrates to
    # and what the metrics measure against.
    true_tastes = sp.csr_matrix(
        (np.ones(items), (np.arange(items), data.item_taste)), shape=(items, tastes)
    )
    print(f"      {data.interactions}; per-user 80/20 holdout")

    print(f"[2/5] fitting the persona model, personae.AMPCF() with its defaults (device {device})")
    model = personae.AMPCF(device=device, seed=seed).fit(train, show_progress=not quiet)
    fit = model.manifest["training"]
    path = model.save(out / "model")
    print(f"      {fit['seconds']:.1f} s; {model.n_tastes} taste clusters; saved to {path}")
    # The single-taste baseline: the very same filter, each user one average taste (K = 1).
    one = personae.AMPCF.from_tensors(model.tensors(), model.item_ids, n_personas=1)

    print(f"[3/5] top-{n} for {train.n_users} users (Rust core), with the persona behind each item")
    t = time.perf_counter()
    # 100 candidates per user: the plain lists are their first n, the reranker picks from all.
    cand, cand_scores, dominant = model.recommend(train, 100, explain=True)
    ids, scores, persona = cand[:, :n], cand_scores[:, :n], dominant[:, :n]
    rec_s = time.perf_counter() - t
    one_ids = one.recommend(train, n)[0]
    reranker = personae.CalibratedReranker(true_tastes, lam=0.5)
    cal = reranker.rerank(cand, cand_scores, history=train, n=n)
    personas = model.personas(train)
    cluster = np.take_along_axis(personas["taste"], np.maximum(persona, 0), 1)
    recs = write_table(
        long_format(
            train.user_ids,
            model.item_ids,
            ids,
            scores,
            persona=persona,
            model_taste_cluster=cluster,
            true_taste=data.item_taste[np.maximum(ids, 0)],
        ),
        out / "recommendations.csv",
    )
    cal_recs = write_table(
        long_format(
            train.user_ids,
            model.item_ids,
            cal.ids,
            cal.scores,
            true_taste=data.item_taste[np.maximum(cal.ids, 0)],
        ),
        out / "recommendations_calibrated.csv",
    )
    print(
        f"      {rec_s:.2f} s for the top-100 and their personas; lists written to {recs} "
        f"(persona, the model's taste cluster and the item's true taste) and, calibrated, to "
        f"{cal_recs}"
    )

    # One multi-taste user: the one with the most true tastes and a minority held out.
    mix = data.user_mixture
    held = np.diff(test.matrix.indptr)
    u = int(np.lexsort((-held, -(mix > 0).sum(1)))[0])
    print(
        f"[4/5] user {u}: true taste mix "
        + ", ".join(f"taste {g} {mix[u, g]:.0%}" for g in np.argsort(-mix[u]) if mix[u, g] > 0)
    )
    # The model's taste clusters, one column each: which true taste fills each of them.
    clusters = model.taste_categories().tocsc()
    for k in range(model.n_personas):
        c = int(personas["taste"][u, k])
        if c < 0:
            break
        members = data.item_taste[clusters[:, c].indices]
        mostly = np.bincount(members, minlength=tastes).argmax() if len(members) else -1
        print(
            f"      persona {k}: {personas['share'][u, k]:.0%} of the history, cluster {c} "
            f"(mostly true taste {mostly})"
        )
    print(f"      their top-{min(n, 10)}: item (true taste) <- persona")
    line = [
        f"{int(i)} ({data.item_taste[int(i)]}) <- {int(d)}"
        for i, d in zip(ids[u, :10], persona[u, :10], strict=True)
        if i >= 0
    ]
    for s in range(0, len(line), 5):
        print("        " + ",  ".join(line[s : s + 5]))

    print(f"[5/5] accuracy on the held-out 20% (K = {n}), calibration against the true tastes")
    table = {}
    for name, lists in (
        ("one taste per user (K = 1)", one_ids),
        ("personas (AMP-CF)", ids),
        ("personas + calibration", cal.ids),
    ):
        minority = minority_taste_recall(lists, test.matrix, true_tastes, history=train, k=n)
        table[name] = {
            "ndcg": evaluate(lists, test.matrix, n)[f"ndcg@{n}"],
            "minority_recall": float(np.nanmean(minority)),
            "ckl": nanmean(miscalibration(lists, true_tastes, history=train)),
        }
    print(f"      {'model':<28}{'NDCG@' + str(n):>10}{'minority recall':>17}{'C_KL':>8}")
    for name, row in table.items():
        print(
            f"      {name:<28}{row['ndcg']:>10.4f}{row['minority_recall']:>17.4f}{row['ckl']:>8.3f}"
        )
    print(
        "      Minority-taste recall is the share of held-out items from tastes under 10% of the "
        "user's history that reach the list; C_KL (natural log) is how far the list's taste mix "
        "is from the history's (0 = the same proportions)."
    )
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"      (pip install matplotlib for a picture of user {u}'s taste proportions)")
    else:
        pic = personae.plot.calibration(
            reranker,
            train,
            ids,
            cal.ids,
            out / "calibration.png",
            user=u,
            category_names=[f"taste {g}" for g in range(tastes)],
            title="history vs lists: taste proportions",
        )
        print(f"      picture written to {pic}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return table
