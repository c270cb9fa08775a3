"""AMP-CF, personae's persona model: several personas per user, each voting on its own through
an item-item filter, and an attention over personas conditioned on the candidate item that
decides which persona speaks for it. Fitted in closed form (:mod:`personae.train.ampcf`),
served from the Rust core."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from personae._core import InvalidInputError
from personae._validate import integer
from personae.categories import Categories
from personae.filters import EASE, GF_CF_RESPONSE, GraphFilter
from personae.models import Model, fit_inputs, validation_pair

__all__ = ["AMPCF"]


class AMPCF(Model, kind="ampcf"):
    """Attentive multi-persona collaborative filtering (after Barkan et al., RecSys 2020).

    A user is their history, split into up to ``n_personas`` personas: the user's heaviest
    taste clusters (groups of items fitted once for the whole catalogue), each history item in
    the persona of its own cluster or of the nearest one. For a candidate item j, persona k's
    vote is ``v_jk = sum_{i in persona k} x_i F_ij`` with F a closed-form item-item filter
    (DAN-normalised EASE plus GF-CF's low-pass filter; on catalogues above 20,000 items GF-CF's
    graph filter, with BSPM's sharpening as an option), and the attention ``a_jk =
    softmax_k(cos(e_k, z_j) / tau + delta ln pi_k)`` compares the persona's direction e_k with
    the item's z_j in a spectral item space (pi_k is the persona's share of the history). The
    score is::

        s_j = (1 - mix) sum_k v_jk + mix sum_k a_jk pi_k^-gamma v_jk

    so a minority taste's items are scored by the persona that holds that taste, and every
    recommended item has a persona behind it: the one with the largest part of its score
    (see :meth:`explain`).

    Why this and not the paper's trained model: AMP-CF as published learns K free vectors per
    user with sampled negatives; in personae's benchmarks it ranked below popularity with its
    defaults and needed a thousand times EASE's training time to match it. The filter gives
    the votes the accuracy of the best closed-form models, personas inferred from the history
    need no per-user training (new users are served at once), and the item-conditioned
    attention over personas is kept. See BENCHMARKS.md for the measured ranking.

    Args:
        filter: the filter the personas vote through: :class:`personae.EASE` or
            :class:`personae.GraphFilter` (its settings are used; settings left as None are
            chosen at fit time on a validation carve of the training data, as the filter's own
            fit would). None, the default, picks ``EASE()`` for catalogues up to 20,000 active
            items and ``GraphFilter()`` above.
        n_personas: K, the most personas per user.
        tau: temperature of the attention over personas.
        mix: weight of the persona-attentive score against the plain filter score.
        delta: weight of ``ln(persona share)`` in the attention logits.
        gamma: persona votes are weighted by ``share^-gamma``.
        att_dim: dimension of the item space the attention compares in.
        n_clusters: the number of taste clusters (None: ``round(sqrt(items) / 2)`` in 8..64).
        search_users: most users in the validation carve.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the dense linear algebra.
        seed: seeds the carve, the SVD and k-means.

    The filter's settings as flat arguments (``lam``, ``user_weight``, ``dropout``, ``rank``,
    ``low_weight``, ``graph_rank``, ``graph_beta``, ``graph_time``, ``graph_eta``) still work
    for one release, with a DeprecationWarning.
    """

    def __init__(
        self,
        filter: EASE | GraphFilter | None = None,
        n_personas: int = 8,
        tau: float = 1.0,
        mix: float = 0.25,
        delta: float = 0.0,
        gamma: float = 0.0,
        *,
        att_dim: int = 64,
        n_clusters: int | None = None,
        search_users: int = 5000,
        device: str = "auto",
        seed: int = 0,
        **deprecated,
    ):
        if deprecated:
            unknown = sorted(set(deprecated) - set(_FLAT))
            if unknown:
                raise TypeError(f"AMPCF() got unexpected keyword arguments {unknown}")
            warnings.warn(
                f"AMPCF({', '.join(sorted(deprecated))}=...) is deprecated and will be removed "
                "in the next release: pass the filter's settings as a filter, e.g. "
                "AMPCF(filter=personae.EASE(lam=10.0)) or "
                "AMPCF(filter=personae.GraphFilter(rank=448))",
                DeprecationWarning,
                stacklevel=2,
            )
        params = dict(
            filter=_filter_params(filter, deprecated),
            n_personas=integer("n_personas", n_personas),
            tau=float(tau),
            mix=float(mix),
            delta=float(delta),
            gamma=float(gamma),
            att_dim=integer("att_dim", att_dim),
            n_clusters=None if n_clusters is None else integer("n_clusters", n_clusters),
            search_users=integer("search_users", search_users),
            device=str(device),
            seed=integer("seed", seed),
        )
        super().__init__(**params)
        self._config()  # checks every value now, not at fit time

    def _config(self):
        from personae.train.ampcf import AMPCFConfig

        p = dict(self.params)
        return AMPCFConfig(**{**p, "filter": _filter_config(p["filter"])})

    @classmethod
    def _known_params(cls, params: dict) -> dict:
        # Files written before the filter argument hold its settings as flat names: read them
        # quietly into the filter they meant.
        flat = {k: params[k] for k in _FLAT if k in params}
        out = super()._known_params(params)
        if flat and "filter" not in params:
            out["filter"] = _filter_params(None, flat)
        return out

    def fit(
        self,
        user_items,
        *,
        validation=None,
        show_progress: bool = True,
        callback=None,
        item_ids=None,
        checkpoint_dir=None,
    ) -> AMPCF:
        """Fits on `user_items` (users x items, non-negative weights; an `Interactions` or a
        scipy sparse matrix), in closed form: seconds on MovieLens, minutes on Gowalla. The
        filter's settings left as None are chosen by NDCG@20 on `validation`, a (fold-in,
        held-out) pair of matrices with the same items, or, by default, on a validation carve
        of `user_items` itself (training data only). ``callback(step, seconds, ndcg)``
        (``implicit``'s ``fit`` argument) is called once per setting tried; a fit with nothing
        to search calls it once when done, ``(0, seconds, None)``. `checkpoint_dir`, when
        given, receives the fitted model. Needs the ``train`` extra (torch runs the dense
        linear algebra, on CUDA when present)."""
        from personae.train.ampcf import fit
        from personae.train.loop import config_dict

        x, ids = fit_inputs(user_items, item_ids)
        cfg = self._config()
        tensors, summary = fit(x, cfg, show_progress, callback, validation_pair(validation, x, ids))
        self._build(tensors, ids, config=config_dict(cfg), training=summary)
        self.history = []
        if checkpoint_dir is not None:
            self.save(checkpoint_dir)
        return self

    def _build(self, tensors, item_ids, **fields) -> None:
        # The scoring settings the core reads from the manifest.
        scoring = {k: self.params[k] for k in ("n_personas", "tau", "mix", "delta", "gamma")}
        super()._build(tensors, item_ids, **scoring, **fields)

    @classmethod
    def _n_items_of(cls, tensors) -> int:
        return len(tensors["item_space"])

    # -- serving -------------------------------------------------------------------------
    def _top_n(self, user_items, n, exclude_seen, exclude, num_threads, explain=False):
        return self._fitted().recommend(
            user_items, n, exclude_seen, exclude, num_threads, bool(explain)
        )

    def _recommend_batch(self, user_items, n: int = 20, **kw):
        """The batch form (see :meth:`Model.recommend`), plus ``explain=True``, which adds a
        third array: the dominant persona of each listed item (-1 for padding), computed in
        the same call."""
        return super()._recommend_batch(user_items, n, **kw)

    @property
    def n_personas(self) -> int:
        """K, the most personas a user has."""
        return self._fitted().n_personas

    @property
    def n_tastes(self) -> int:
        """The number of global taste clusters personas are drawn from."""
        return self._fitted().n_clusters

    def personas(self, user_items) -> dict:
        """Each user's personas, from their rows of `user_items`.

        Returns a dict: ``taste`` ``(rows, K)`` int64, the taste cluster of each persona (-1
        padded; persona 0 is the heaviest); ``share`` ``(rows, K)`` float32, its share of the
        history weight (0 padded; rows sum to 1 for non-empty histories); ``entry`` (one per
        stored entry of `user_items`, in CSR order) the persona each history item belongs to.
        """
        taste, share, entry = self._fitted().personas(self._rows(user_items))
        return {"taste": taste, "share": share, "entry": entry}

    def item_tastes(self) -> np.ndarray:
        """``(n_items,)`` int32: the taste cluster of every item (-1 for items without one,
        e.g. items with no training interaction)."""
        return np.asarray(self._fitted().item_cluster())

    def taste_items(self, n: int = 10) -> np.ndarray:
        """``(n_tastes, n)`` int64: each taste cluster's most popular items (-1 padded), to
        name the tastes."""
        n = integer("n", n)
        core = self._fitted()
        labels, count = core.item_cluster(), core.item_count()
        count = np.zeros(len(labels)) if count is None else count
        out = np.full((self.n_tastes, n), -1, dtype=np.int64)
        order = np.lexsort((np.arange(len(labels)), -count, labels))
        order = order[labels[order] >= 0]
        lab = labels[order]
        start = np.searchsorted(lab, np.arange(self.n_tastes))
        rank = np.arange(len(order)) - start[lab]
        keep = rank < n
        out[lab[keep], rank[keep]] = order[keep]
        return out

    def base_tastes(self, names=None):
        """The base tastes an :class:`personae.Interview` places a new user in: the taste
        clusters, with each taste's log-lift of every item, the items' log-odds and the
        distribution of the training users' taste shares as the prior (see
        :func:`personae.train.ampcf.taste_tensors` for the construction). `names`: one label
        per taste (default: the ids of the taste's three most distinctive items,
        :meth:`distinctive_items`)."""
        from personae.interview import Tastes

        core = self._fitted()
        t = core.tastes()
        if t is None:
            raise ValueError(
                "this AMP-CF file has no base tastes (built with from_tensors?): fit the model"
            )
        phi, offset, mean, cov = t
        if names is None:
            top = self.distinctive_items(3)
            names = [
                "taste " + str(c) + ": " + ", ".join(str(self.item_ids[i]) for i in row if i >= 0)
                for c, row in enumerate(top)
            ]
        if len(names) != core.n_clusters:
            raise ValueError(f"names must have one entry per taste ({core.n_clusters})")
        count = core.item_count()
        return Tastes(
            phi=phi,
            offset=offset,
            popularity=np.zeros(core.n_items) if count is None else count,
            names=list(names),
            prior_mean=mean,
            prior_cov=cov,
        )

    # -- explanations --------------------------------------------------------------------
    def explain(self, items, user_items, n_history: int = 3) -> dict:
        """Why each of `items` would be recommended to each user (the rows of `user_items`).

        Args:
            items: ``(rows, m)`` item indices per user (e.g. the ids from ``recommend``; -1
                entries are ignored), or a 1-D array used for every user.
            user_items: the users' histories.
            n_history: history items listed per item.

        Returns a dict:
            ``attention`` ``(rows, m, K)`` float32: the attention over the user's personas
            (rows sum to 1; 0 for personas the user lacks; NaN for -1 items);
            ``contribution`` ``(rows, m, K)`` float32: each persona's part of the item's
            score, ``(1 - mix) v_jk + mix a_jk pi_k^-gamma v_jk`` (sums to the score; 0 for
            personas the user lacks; NaN for -1 items);
            ``dominant`` ``(rows, m)`` int64: the persona behind the item, the one with the
            largest part of its score (-1 for -1 items);
            ``taste`` ``(rows, m)`` int64: that persona's taste cluster;
            ``because`` ``(rows, m, n_history)`` int64: the dominant persona's history items
            that vote most for the item, best first (-1 padded);
            ``because_vote`` the matching votes ``x_i F_ij`` (NaN padded).

        Histories are scored divided by their largest weight (lists and explanations do not
        depend on the weights' scale), so ``x_i`` is the weight relative to that maximum.
        """
        core = self._fitted()
        x = self._rows(user_items)
        rows = x.shape[0]
        it = np.asarray(items)
        if it.size and it.dtype.kind not in "iu":
            raise TypeError(f"items must hold integer item indices, got dtype {it.dtype}")
        if it.ndim == 1:
            it = np.broadcast_to(it, (rows, it.shape[0]))
        if it.ndim != 2 or it.shape[0] != rows:
            raise ValueError(f"items must be 1-D or have shape ({rows}, m), got {np.shape(items)}")
        it = it.astype(np.int64)
        h = integer("n_history", n_history)
        # Only -1 is padding: any other index goes to the core, which refuses it.
        pu, pj = np.nonzero(it != -1)
        pair_u, pair_i = pu.astype(np.int64), it[pu, pj]
        k = core.n_personas
        parts = core.explain(x, pair_u, pair_i, h)
        # Per pair -> per (row, item), with the documented padding for -1 items.
        out = {}
        for name, v, trail, fill in zip(
            ("attention", "contribution", "dominant", "taste", "because", "because_vote"),
            parts,
            ((k,), (k,), (), (), (h,), (h,)),
            (np.nan, np.nan, -1, -1, -1, np.nan),
            strict=True,
        ):
            out[name] = np.full(it.shape + trail, fill, dtype=v.dtype)
            out[name][pu, pj] = v
        return out

    def persona_summary(self, user_items, *, item_categories=None, top: int = 3) -> dict:
        """Each persona's share of each user's history and, given ``item_categories`` (a
        :class:`personae.Categories`, checked against the model's item ids, or a sparse or dense
        ``n_items x n_categories`` matrix in the model's item order, e.g. MovieLens genres),
        its top categories.

        Returns a dict: ``taste`` and ``share`` ``(rows, K)`` as in :meth:`personas`; with
        categories, ``top_categories`` ``(rows, K, top)`` int64 (-1 padded) and
        ``category_share`` ``(rows, K, n_categories)``: the category mix of each persona's
        history items (NaN for personas the user lacks).
        """
        core = self._fitted()
        x = self._rows(user_items)
        p = self.personas(x)
        out = {"taste": p["taste"], "share": p["share"]}
        if item_categories is not None:
            top = integer("top", top)
            if top < 1:
                raise InvalidInputError(f"top must be >= 1 (categories per persona), got {top}")
            if isinstance(item_categories, Categories):
                item_categories.check_items(self, "the model")
                item_categories = item_categories.matrix
            cat = sp.csr_matrix(item_categories, dtype=np.float64)
            if cat.ndim != 2 or cat.shape[0] != core.n_items:
                raise InvalidInputError(
                    f"item_categories must have {core.n_items} rows (items), got {cat.shape[0]}"
                )
            if not np.isfinite(cat.data).all() or (cat.data < 0).any():
                bad = np.flatnonzero(~(np.isfinite(cat.data) & (cat.data >= 0)))[0]
                row = int(np.searchsorted(cat.indptr, bad, side="right") - 1)
                raise InvalidInputError(
                    f"item_categories must be finite and non-negative (category weights); "
                    f"item {row}, category {cat.indices[bad]} holds {cat.data[bad]}"
                )
            rows, k = x.shape[0], core.n_personas
            hu = np.repeat(np.arange(rows), np.diff(x.indptr))
            assign = sp.csr_matrix(
                (x.data.astype(np.float64), (hu * k + p["entry"], x.indices)),
                shape=(rows * k, core.n_items),
            )
            mix = np.asarray((assign @ cat).todense()).reshape(rows, k, cat.shape[1])
            with np.errstate(invalid="ignore", divide="ignore"):
                share = mix / mix.sum(2, keepdims=True)
            order = np.argsort(-mix, axis=2, kind="stable")[:, :, :top]
            topc = np.where(np.take_along_axis(mix, order, 2) > 0, order, -1)
            out["top_categories"], out["category_share"] = topc.astype(np.int64), share
        return out

    def distinctive_items(self, n: int = 3) -> np.ndarray:
        """``(n_tastes, n)`` int64: the items most distinctive of each taste (-1 padded), to
        name tastes so that a person recognises them.

        An item's lift for taste c is ``P(j | c) / P(j)`` (the base tastes' ``phi`` is its
        log); alone it favours obscure items seen by a handful of the taste's users, and
        popularity alone names every taste after the same blockbusters. The score weighs the
        log-lift by the item's frequency within the taste, ``P(j | c) ln(P(j | c) / P(j))``
        (the item's term in the taste's KL divergence from the catalogue), and only items the
        taste likes more than anyone (positive lift) are listed."""
        n = integer("n", n)
        core = self._fitted()
        t = core.tastes()
        if t is None:
            raise ValueError(
                "this AMP-CF file has no base tastes (built with from_tensors?): fit the model"
            )
        phi = np.asarray(t[0], dtype=np.float64)  # items x tastes
        count = core.item_count()
        p = np.ones(len(phi)) if count is None else np.asarray(count, dtype=np.float64)
        p = p / max(p.sum(), 1e-300)
        score = (p[:, None] * np.exp(phi)) * phi
        score[phi <= 0] = -np.inf
        k = min(n, len(phi))
        order = np.argsort(-score, axis=0, kind="stable")[:k].T  # tastes x k
        ok = np.isfinite(np.take_along_axis(score.T, order, 1))
        out = np.full((phi.shape[1], n), -1, dtype=np.int64)
        out[:, :k] = np.where(ok, order, -1)
        return out

    def taste_categories(self) -> sp.csr_matrix:
        """The model's own taste clusters as an ``n_items x n_tastes`` category matrix (scipy
        CSR, float32): row i holds a 1 in the column of item i's cluster; items without a
        cluster (label -1, e.g. items with no training interaction) have an empty row, i.e.
        no category. Use it as :class:`personae.CalibratedReranker`'s categories to calibrate
        lists to the user's own persona proportions without any external genre data."""
        labels = np.asarray(self._fitted().item_cluster(), dtype=np.int64)
        rows = np.flatnonzero(labels >= 0)
        return sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, labels[rows])),
            shape=(len(labels), self.n_tastes),
        )


#: The filter settings AMP-CF took as flat arguments before ``filter=``: (family, its name).
_FLAT = {
    "lam": ("ease", "lam"),
    "user_weight": ("ease", "user_weight"),
    "dropout": ("ease", "dropout"),
    "rank": ("ease", "rank"),
    "low_weight": ("ease", "low_weight"),
    "graph_rank": ("graph_filter", "rank"),
    "graph_beta": ("graph_filter", "beta"),
    "graph_time": ("graph_filter", "time"),
    "graph_eta": ("graph_filter", "eta"),
}
#: GraphFilter's defaults when the flat arguments were current: GF-CF's filter.
GF_CF = {"beta": 0.2, **GF_CF_RESPONSE}
#: Settings of a filter family that are AMP-CF's own concern, not the filter's.
_RUN = ("search_users", "device", "seed")


def _filter_params(filter, flat: dict) -> dict | None:
    """The manifest form of AMP-CF's filter: None (automatic), a family's settings
    ``{"kind": ..., **settings}``, or, from the deprecated flat arguments, the automatic choice
    with overrides for each family ``{"kind": "auto", "ease": {...}, "graph_filter": {...}}``."""
    if isinstance(filter, dict):  # as stored in a manifest
        return dict(filter)
    if filter is not None and not isinstance(filter, (EASE, GraphFilter)):
        raise TypeError(
            f"filter must be a personae.EASE or personae.GraphFilter, got {type(filter).__name__}"
        )
    if filter is not None and flat:
        raise TypeError(f"give the filter's settings in filter=, not also as {sorted(flat)}")
    if filter is not None:
        return {"kind": filter.kind, **{k: v for k, v in filter.params.items() if k not in _RUN}}
    if not flat:
        return None
    # The flat arguments keep the meaning they had: GF-CF's graph filter (its defaults then),
    # not ChebyCF's, today's default.
    out: dict = {"kind": "auto", "ease": {}, "graph_filter": dict(GF_CF)}
    for name, value in flat.items():
        family, key = _FLAT[name]
        out[family][key] = value
    EASE(**out["ease"])  # checks the values now
    GraphFilter(**out["graph_filter"])
    return out


def _filter_config(stored: dict | None):
    """The fit's filter config from its manifest form (see :func:`_filter_params`): an
    ``EASEConfig``, a ``GraphConfig``, a pair of both (the automatic choice with overrides),
    or None (automatic)."""
    if stored is None:
        return None
    families = {"ease": EASE, "graph_filter": GraphFilter}
    if stored.get("kind") == "auto":
        return tuple(families[k](**stored.get(k, {}))._config() for k in families)
    kind = stored.get("kind")
    if kind not in families:
        raise ValueError(f"filter kind must be 'ease' or 'graph_filter', got {kind!r}")
    family = families[kind]
    return family(
        **family._known_params({k: v for k, v in stored.items() if k != "kind"})
    )._config()
