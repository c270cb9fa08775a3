"""Pictures: calibration and interviews (matplotlib, imported only when a picture is drawn)."""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

__all__ = ["calibration", "interview_curves", "simulation"]


def _list_matrix(ids: np.ndarray, n_items: int) -> sp.csr_matrix:
    ids = np.asarray(ids, dtype=np.int64)
    rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    keep = ids.ravel() >= 0
    m = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], ids.ravel()[keep])),
        shape=(ids.shape[0], n_items),
    )
    m.sum_duplicates()
    return m


def _pyplot():
    """matplotlib's pyplot on a backend that needs no display (unless one is already set)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def calibration(
    reranker,
    history,
    plain_ids,
    calibrated_ids,
    path: str | os.PathLike = "calibration.png",
    user: int = 0,
    category_names=None,
    title: str | None = None,
) -> str:
    """Saves a PNG comparing the category distribution of the history, of the plain top-n and
    of the calibrated top-n, for one ``user`` (left) and averaged over all users (right).

    ``reranker`` is the :class:`personae.CalibratedReranker` (its item categories are used);
    ``history`` the users x items matrix; ``plain_ids`` / ``calibrated_ids`` users x n lists
    (-1 padding). Returns the path written."""
    from personae.metrics import nanmean

    plt = _pyplot()
    plain_ids = np.asarray(plain_ids)
    calibrated_ids = np.asarray(calibrated_ids)
    if plain_ids.ndim != 2 or plain_ids.shape[0] != calibrated_ids.shape[0]:
        raise ValueError(
            f"plain_ids and calibrated_ids must be 2-D with one row per user, got "
            f"{plain_ids.shape} and {calibrated_ids.shape}"
        )
    n_users = plain_ids.shape[0]
    if not 0 <= user < n_users:
        raise ValueError(f"user must lie in 0..{n_users}, got {user}")
    n_items, g = reranker.n_items, reranker.n_categories
    names = list(category_names) if category_names is not None else [str(k) for k in range(g)]
    if len(names) != g:
        raise ValueError(f"category_names has {len(names)} names for {g} categories")
    dists = {
        "history": reranker.target(history=history),
        f"plain top-{plain_ids.shape[1]}": reranker.target(
            history=_list_matrix(plain_ids, n_items)
        ),
        f"calibrated top-{calibrated_ids.shape[1]}": reranker.target(
            history=_list_matrix(calibrated_ids, n_items)
        ),
    }
    ckl = {
        "plain": reranker.miscalibration(plain_ids, history=history),
        "calibrated": reranker.miscalibration(calibrated_ids, history=history),
    }
    fig, axes = plt.subplots(1, 2, figsize=(max(10, 0.7 * g + 4), 4.5), sharey=True)
    x = np.arange(g)
    width = 0.27
    for ax, (label, row) in zip(
        axes, ((f"user {user}", lambda d: d[user]), ("all users", lambda d: d.mean(0))), strict=True
    ):
        for k, (name, d) in enumerate(dists.items()):
            ax.bar(x + (k - 1) * width, row(d), width, label=name)
        sel = (lambda v: v[user]) if label.startswith("user") else nanmean
        ax.set_title(
            f"{label}: C_KL {sel(ckl['plain']):.3f} -> {sel(ckl['calibrated']):.3f} "
            f"(ln, smoothing {reranker.smoothing})"
        )
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    axes[0].set_ylabel("share of category mass")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def interview_curves(
    curves: dict,
    path: str | os.PathLike = "interview.png",
    ceiling: float | None = None,
    floor: float | None = None,
    metric: str = "NDCG@10",
    title: str | None = None,
) -> str:
    """Saves a PNG of a metric against the number of interview answers, one line per
    question strategy. ``curves`` maps a strategy name to ``{answers: value}``; ``ceiling``
    (full-history fold-in) and ``floor`` (popularity) are drawn as dashed lines. Returns the
    path written."""
    plt = _pyplot()
    if not curves:
        raise ValueError("curves is empty: give at least one strategy")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, points in curves.items():
        xs = sorted(int(k) for k in points)
        ax.plot(xs, [points[k] if k in points else points[str(k)] for k in xs], "o-", label=name)
    for value, label in ((ceiling, "full-history fold-in"), (floor, "popularity")):
        if value is not None:
            ax.axhline(value, ls="--", lw=1, color="gray")
            ax.annotate(label, (0, value), textcoords="offset points", xytext=(2, 3), fontsize=8)
    ax.set_xlabel("answers")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(plt, fig, path)


def simulation(
    table,
    path: str | os.PathLike = "simulation.png",
    metrics=("retention", "utility_share"),
    title: str | None = None,
) -> str:
    """Saves a PNG of the per-round table of :func:`personae.simulate.run`: one panel per
    metric in `metrics` (default minority-taste retention and utility as a share of the
    oracle's) against the round, one line per policy. Returns the path written."""
    plt = _pyplot()
    cols = set(getattr(table, "columns", ()))
    missing = [c for c in ("policy", "round", *metrics) if c not in cols]
    if missing:
        raise ValueError(f"table has no column(s) {missing}; is it personae.simulate.run's?")
    if not len(table):
        raise ValueError("table is empty")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for name, part in table.groupby("policy", sort=False):
            part = part.sort_values("round")
            ax.plot(part["round"], part[metric], "o-", ms=3, label=str(name))
        if metric == "retention":
            ax.axhline(1.0, ls="--", lw=1, color="gray")
        ax.xaxis.get_major_locator().set_params(integer=True)  # rounds are whole numbers
        ax.set_xlabel("round")
        ax.set_ylabel(metric.replace("_", " "))
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)
