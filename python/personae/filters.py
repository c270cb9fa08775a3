"""Closed-form item-item filters as models of their own: :class:`EASE` and
:class:`GraphFilter`, fitted in closed form (:mod:`personae.train.filters`) and served by the
Rust filter scorer (``rust/core/src/filter.rs``), the same one every AMP-CF persona votes
through. What a practitioner reaches for first, with personae's serving, files and API."""

from __future__ import annotations

from personae._validate import integer, optional_integer
from personae.models import Model, fit_inputs, validation_pair

__all__ = ["EASE", "GraphFilter"]

#: GraphFilter's settings for GF-CF's response (its default until ChebyCF's became it).
GF_CF_RESPONSE = {"flatness": 0.0, "item_power": 0.0}


class _Filter(Model):
    """What the filter families share: the fit, and how their settings reach AMP-CF."""

    def _config(self):  # pragma: no cover - each family defines it
        raise NotImplementedError

    def _run(self):
        """The fit's run settings (search users, device, seed), checked."""
        from personae.train.filters import RunConfig

        p = self.params
        return RunConfig(p["search_users"], 64, p["device"], p["seed"])

    def fit(
        self,
        user_items,
        *,
        validation=None,
        show_progress: bool = True,
        callback=None,
        item_ids=None,
        checkpoint_dir=None,
    ):
        """Fits on `user_items` (users x items, non-negative weights; an `Interactions` or a
        scipy sparse matrix), in closed form. Settings left as None are chosen by NDCG@20 on
        `validation`, a (fold-in, held-out) pair of matrices with the same items, or, by
        default, on a validation carve of `user_items` itself (training data only).
        ``callback(step, seconds, ndcg)`` (``implicit``'s ``fit`` argument) after each setting
        tried, or once when done, ``(0, seconds, None)``, when nothing is searched. Needs the
        ``train`` extra (torch runs the dense linear algebra, on CUDA when present).
        `checkpoint_dir`, when given, receives the fitted model."""
        from personae.train.filters import fit_filter
        from personae.train.loop import check_train, config_dict

        x, ids = fit_inputs(user_items, item_ids)
        tensors, summary, spec, counts = fit_filter(
            check_train(x),
            self._config(),
            self._run(),
            show_progress,
            callback,
            validation_pair(validation, x, ids),
        )
        tensors.update(item_space=spec.item_space(64), item_count=counts)
        del spec  # the spectrum (items x rank, float64) need not outlive the fit into the build
        self._build(tensors, ids, config=config_dict(self._config()), training=summary)
        self.history = []
        if checkpoint_dir is not None:
            self.save(checkpoint_dir)
        return self


class EASE(_Filter, kind="ease"):
    """EASE (Steck, WWW 2019), with the normalisations of DAN (Park et al., SIGIR 2025) and,
    optionally, GF-CF's low-pass filter added (Shen et al., CIKM 2021): the filter AMP-CF's
    personas vote through on catalogues up to 20,000 items, as a model of its own.

    A history x (divided by its largest weight) scores ``x (B + c L)``, with::

        G = X^T diag(|H_u|^-user_weight) X
        P = (G + lam mean(diag G) I + dropout / (1 - dropout) diag(G))^-1
        B = I - P diag(1 / diag P)                       (diag B = 0)
        L = D^-1/2 V_r^T V_r D^1/2                       (rank r, weight c = low_weight x scale)

    ``EASE(lam=..., user_weight=0, dropout=0, rank=0)`` is Steck's EASE, with `lam` relative
    to the mean item degree (Steck's absolute lambda is ``lam * mean(diag(X^T X))``). Settings
    left as None (the default: ``lam``, ``user_weight``, ``rank``, ``low_weight``) are chosen
    on a validation carve at fit time. Holds an items x items matrix: 6.7 GB at 41,000
    items; :class:`GraphFilter` needs no inverse.

    Args:
        lam, user_weight, dropout, rank, low_weight: see above.
        search_users: most users in the validation carve.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the dense linear algebra.
        seed: seeds the carve and the SVD.
    """

    def __init__(
        self,
        lam: float | None = None,
        user_weight: float | None = None,
        dropout: float = 0.3,
        rank: int | None = None,
        low_weight: float | None = None,
        *,
        search_users: int = 5000,
        device: str = "auto",
        seed: int = 0,
    ):
        super().__init__(
            lam=None if lam is None else float(lam),
            user_weight=None if user_weight is None else float(user_weight),
            dropout=float(dropout),
            rank=None if rank is None else integer("rank", rank),
            low_weight=None if low_weight is None else float(low_weight),
            search_users=integer("search_users", search_users),
            device=str(device),
            seed=integer("seed", seed),
        )
        self._config()  # checks every value now, not at fit time
        self._run()

    def _config(self):
        from personae.train.filters import EASEConfig

        p = self.params
        return EASEConfig(p["lam"], p["user_weight"], p["dropout"], p["rank"], p["low_weight"])

    @classmethod
    def _n_items_of(cls, tensors) -> int:
        v = tensors.get("votes")
        return len(v) if v is not None else len(tensors["votes_indptr"]) - 1


class GraphFilter(_Filter, kind="graph_filter"):
    """The training-free graph filters: ChebyCF's by default (Kim et al., SIGIR 2025, below),
    GF-CF's (Shen et al., CIKM 2021) with ``flatness=0, item_power=0``, and there BSPM's
    sharpening as an option (Choi et al., SIGIR 2023): no items x items inverse, for catalogues
    of any size (the filter AMP-CF's personas vote through above 20,000 items).

    With ``R~ = D_u^-1/2 X D_i^-1/2``, ``P~ = R~^T R~`` (sparse) and ``V`` its top-`rank` right
    singular vectors, a history x scores ``d^-eta (x P + beta x D^-1/2 V^T V D^1/2)`` with
    ``P = D_i^-1/2 X^T D_u^-user_weight X D_i^-1/2`` (GF-CF at ``user_weight=1, eta=0``:
    ``P = P~``; ``time=0``); with ``time=T > 0`` that start is sharpened by one step of BSPM's
    ODE ``dy/dt = -y P~`` over [0, T] (``solver`` ``rk4`` or ``euler``): exactly BSPM's scores
    when the users or the items number at most 5,000 (the whole spectrum is computed), the
    higher powers of P~ taken on the top-`rank` spectrum above.
    With ``flatness=phi > 0`` the filter is ChebyCF's (Kim et al., SIGIR 2025): P~'s response
    is a smooth plateau (1 at the top of the spectrum, 0 at the bottom, flatter for a larger
    phi) interpolated by a Chebyshev polynomial of order 8, applied to the history weighted
    ``d^-item_power`` and multiplied back by ``d^item_power``, plus ``beta`` times the ideal
    low pass ``V^T V``. It is served in the same form as GF-CF's: the top-`rank` directions
    carry the exact response, the rest ``b P~`` with b the response's chord over the tail (on
    a whole spectrum the scores of unseen items are the authors' filter's exactly).
    Settings given as None (``beta``, ``time``, ``eta``, ``user_weight``) are chosen on a
    validation carve at fit time. The degree exponents default to GF-CF's: lighter ones
    validate higher on Gowalla's carve but scored lower on its test split (BENCHMARKS.md).

    **Large catalogues.** P~ links every item to every item any user shares with it, so it
    grows with the square of the catalogue (popular items co-occur with almost everything).
    ``neighbours=k`` keeps each item's row of ``P~ d^-eta`` to its k largest votes (ties to
    the lower item index), computed by the Rust core a row at a time from the interactions,
    so P~ is never held whole: the fit's working memory for the votes is a transposed copy of
    the interactions (8 bytes each) plus the kept ``items x k`` votes, and the model stores
    those and the low-rank part. ``neighbours=None`` (the default) keeps all of P~ up to
    50,000 active items (``personae.train.filters.EXACT_MAX_ITEMS``; ML-100K, ML-latest-small
    and Gowalla are exact) and 200 neighbours above (``AUTO_NEIGHBOURS``); a `neighbours` at
    least the catalogue's size is the exact filter at any size. The spectrum (the low-rank
    part) is a sparse truncated SVD of R~ (ARPACK) that never densifies X or P~.

    Args:
        rank: spectrum rank.
        beta: weight of the ideal low pass.
        time: BSPM's diffusion time (0: GF-CF).
        eta: exponent of the item-degree post-scaling (GF-CF's 0; None: chosen).
        user_weight: exponent of the user degrees in P (GF-CF's 1; None: chosen), as
            :class:`EASE`'s ``user_weight``.
        solver: ``rk4`` or ``euler``, the step of BSPM's ODE.
        neighbours: votes kept per item (>= 1), None for the size rule above.
        flatness: ChebyCF's plateau flatness (0: GF-CF's response; needs ``time=0``).
        item_power: ChebyCF's degree normalisation exponent (0: none).
        search_users, device, seed: as :class:`EASE`'s.
    """

    def __init__(
        self,
        rank: int = 448,
        beta: float | None = 0.1,
        time: float | None = 0.0,
        eta: float | None = 0.0,
        solver: str = "rk4",
        neighbours: int | None = None,
        user_weight: float | None = 1.0,
        flatness: float = 2.0,
        item_power: float = 0.3,
        *,
        search_users: int = 5000,
        device: str = "auto",
        seed: int = 0,
    ):
        super().__init__(
            rank=integer("rank", rank),
            beta=None if beta is None else float(beta),
            time=None if time is None else float(time),
            eta=None if eta is None else float(eta),
            solver=str(solver),
            neighbours=optional_integer("neighbours", neighbours),
            user_weight=None if user_weight is None else float(user_weight),
            flatness=float(flatness),
            item_power=float(item_power),
            search_users=integer("search_users", search_users),
            device=str(device),
            seed=integer("seed", seed),
        )
        self._config()
        self._run()

    def _config(self):
        from personae.train.filters import GraphConfig

        p = self.params
        return GraphConfig(
            rank=p["rank"],
            beta=p["beta"],
            time=p["time"],
            eta=p["eta"],
            solver=p.get("solver", "rk4"),
            neighbours=p.get("neighbours"),
            user_weight=p.get("user_weight"),
            flatness=p["flatness"],
            item_power=p["item_power"],
        )

    @classmethod
    def _known_params(cls, params: dict) -> dict:
        # A file written before ChebyCF's settings existed holds GF-CF's filter.
        return {**GF_CF_RESPONSE, **super()._known_params(params)}

    @classmethod
    def _n_items_of(cls, tensors) -> int:
        return len(tensors["votes_indptr"]) - 1
