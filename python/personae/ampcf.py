"""AMP-CF (Barkan et al., RecSys 2020): users as several personas, trained in PyTorch
(:mod:`personae.train.ampcf`), served from the Rust core."""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from personae._validate import csr, indices, integer, optional_integer
from personae.models import Model
from personae.multvae import fit_inputs, train_and_build, training_params

__all__ = ["AMPCF"]


class AMPCF(Model, kind="ampcf"):
    """AMP-CF (Barkan et al., RecSys 2020): each user is K personas, and the attention over
    personas for a candidate item says which persona the item serves.

    Batch serving scores users by their personas: ``recommend(user_items, n, users=rows)`` for
    training users (their rows of the training matrix), ``recommend(user_items, n,
    personas=...)`` for given personas, and plain ``recommend(user_items, n)`` folds each user's
    personas in from their history first (:meth:`fold_in`); ``user_items`` also supplies the
    items to mask. In the implicit-style ``recommend(userid, user_items, N)``, `userid` are
    training user indices, or, with ``recalculate_user=True``, the users are folded in from
    `user_items`.

    Defaults from the authors' later code: K = 3, d = 64, alpha = 0.5, lambda_p = lambda_n =
    0.005, 4 popularity-sampled negatives, Adam 1e-3, 256 pairs per batch.
    """

    def __init__(
        self,
        n_personas: int = 3,
        dim: int = 64,
        att_dim: int | None = None,
        tau: float = 0.2,
        alpha: float = 0.5,
        lambda_p: float = 0.005,
        lambda_n: float = 0.005,
        n_neg: int = 4,
        neg_power: float = 0.75,
        logq: bool = False,
        l2: float = 0.0,
        epochs: int = 50,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 5,
        eval_k: int = 20,
        device: str = "auto",
        seed: int = 0,
        max_seconds: float | None = None,
    ):
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        super().__init__(
            n_personas=integer("n_personas", n_personas),
            dim=integer("dim", dim),
            att_dim=None if att_dim is None else integer("att_dim", att_dim),
            tau=float(tau),
            alpha=float(alpha),
            lambda_p=float(lambda_p),
            lambda_n=float(lambda_n),
            n_neg=integer("n_neg", n_neg),
            neg_power=float(neg_power),
            logq=bool(logq),
            l2=float(l2),
            **training_params(
                epochs, batch_size, lr, weight_decay, patience, eval_k, device, seed, max_seconds
            ),
        )
        self._fold_in_nets: dict[str, object] = {}  # frozen torch nets, by device

    def fit(
        self,
        user_items,
        validation=None,
        *,
        item_ids=None,
        show_progress: bool = True,
        checkpoint_dir: str | os.PathLike | None = None,
        callback=None,
    ) -> AMPCF:
        """Trains on `user_items` (users x items). `validation`: held-out items of the same
        users (same shape), for early stopping on full-ranking NDCG@eval_k; `callback`:
        ``callback(epoch, seconds, loss)`` after every epoch."""
        from personae.train.ampcf import AMPCFConfig, train_ampcf
        from personae.train.loop import TrainConfig, config_dict

        user_items, ids = fit_inputs(user_items, item_ids)
        if isinstance(validation, (tuple, list)):
            # (fold-in, held-out), as for every family: AMP-CF's fold-in rows are the training
            # rows themselves (its users are the training users).
            if len(validation) != 2:
                raise TypeError("validation must be a (fold-in, held-out) pair of sparse matrices")
            validation = validation[1]
        if validation is not None:
            validation = csr("validation", validation)
        p = self.params
        mc = AMPCFConfig(**{k: p[k] for k in AMPCFConfig.__dataclass_fields__ if k in p})
        tc = TrainConfig(**{k: p[k] for k in TrainConfig.__dataclass_fields__})
        self._fold_in_nets = {}
        train_and_build(
            self,
            user_items,
            ids,
            lambda improve, epoch: train_ampcf(
                user_items, mc, tc, validation, show_progress, improve, epoch
            ),
            config_dict(mc, tc),
            checkpoint_dir,
            callback,
        )
        return self

    def _build(self, tensors, item_ids, **fields) -> None:
        core_fields = {"tau": self.params["tau"], "n_users": int(tensors["personas"].shape[0])}
        super()._build(tensors, item_ids, **core_fields, **fields)

    # -- users ---------------------------------------------------------------------------
    def _who(self, users, personas) -> np.ndarray:
        """The users of a call as the core takes them: int64 indices or float32 personas."""
        if (users is None) == (personas is None):
            raise ValueError(
                "give exactly one of users= (training user indices) or personas= "
                "(array of shape (rows, K, d), e.g. from fold_in)"
            )
        if users is not None:
            return indices("users", users)
        p = np.asarray(personas)
        if p.dtype.kind not in "biuf":
            raise TypeError(f"personas must be numeric, got dtype {p.dtype}")
        return np.ascontiguousarray(p, dtype=np.float32)

    def _rows(self, who: np.ndarray) -> int:
        k, d = self.n_personas, self._core.dim
        return len(who) if who.dtype == np.int64 else who.size // max(k * d, 1)

    def _top_n(
        self,
        user_items,
        n,
        exclude_seen,
        exclude,
        num_threads,
        users=None,
        personas=None,
        explain=False,
    ):
        if users is None and personas is None:
            # Like every family, a user is their history: fold the personas in from it.
            personas = self.fold_in(user_items)
        who = self._who(users, personas)
        seen = user_items if exclude_seen else None
        if not exclude_seen and user_items.shape[0] != self._rows(who):
            raise ValueError(
                f"user_items has {user_items.shape[0]} rows but {self._rows(who)} users were given"
            )
        return self._fitted().recommend(who, n, seen, exclude, num_threads, bool(explain))

    def _recommend_batch(self, user_items=None, n: int = 20, **kw):
        """The batch form (see :meth:`Model.recommend`), plus ``users=`` / ``personas=`` (exactly
        one; `user_items` then only supplies the items to mask and may be None) and
        ``explain=True``, which adds a third array: the dominant persona of each item (-1 for
        padding), computed in the same call."""
        if user_items is None:
            who = self._who(kw.get("users"), kw.get("personas"))
            user_items = sp.csr_matrix((self._rows(who), self.n_items), dtype=np.float32)
        return super()._recommend_batch(user_items, n, **kw)

    def _implicit_users(self, userid, user_items, recalculate_user: bool) -> dict:
        if recalculate_user:
            return {"personas": self.fold_in(user_items)}
        return {"users": userid}

    @property
    def n_personas(self) -> int:
        """K, the number of personas per user."""
        return self._fitted().n_personas

    def score(self, *, users=None, personas=None, num_threads: int | None = None) -> np.ndarray:
        """Dense scores (users x n_items, float32) of training `users` or given `personas`:
        for small batches and inspection."""
        who = self._who(users, personas)
        return self._fitted().score(who, optional_integer("num_threads", num_threads))

    def personas(self, users) -> np.ndarray:
        """Persona vectors ``(len(users), K, d)`` of training users."""
        return self._fitted().personas(indices("users", users))

    @classmethod
    def _n_items_of(cls, tensors) -> int:
        return len(tensors["item_bias"])

    def _item_factors(self) -> np.ndarray:
        return self._fitted().tensors()["item_emb"]

    def fold_in(
        self, user_items, steps: int = 100, lr: float = 0.05, seed: int = 0, device: str = "cpu"
    ) -> np.ndarray:
        """Personas ``(rows, K, d)`` for users not seen in training (or with new items): a short
        optimisation of their personas only, with the item side frozen, on the AMP-CF training
        loss over their rows of `user_items`. Needs torch (the ``train`` extra). Score the result
        with ``recommend(user_items, personas=...)``."""
        from personae.train.ampcf import AMPCFConfig, fold_in, net_from_tensors
        from personae.train.loop import pick_device

        core = self._fitted()
        x = csr("user_items", user_items)
        if x.shape[1] != core.n_items:
            raise ValueError(
                f"user_items has {x.shape[1]} columns but the model has {core.n_items} items"
            )
        cfg = self.manifest.get("config", {}).get("model", {})
        mc = AMPCFConfig(**{k: v for k, v in cfg.items() if k in AMPCFConfig.__dataclass_fields__})
        dev = pick_device(device)
        net = self._fold_in_nets.get(str(dev))
        if net is None:
            # Built once per device, not per batch: the item side, and the mean training
            # persona set that fold-in starts from (the only use of the persona table).
            t = core.tensors()
            t["personas"] = t["personas"].mean(0, keepdims=True)
            net = net_from_tensors(t, core.tau, dev).requires_grad_(False)
            self._fold_in_nets[str(dev)] = net
        return fold_in(net, x, mc, steps=integer("steps", steps), lr=lr, seed=seed)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._fold_in_nets = {}

    # -- explanations --------------------------------------------------------------------
    def explain(
        self, items, *, users=None, personas=None, user_items=None, n_history: int = 3
    ) -> dict:
        """Why each of `items` would be recommended to each user.

        Args:
            items: ``(rows, m)`` item indices per user (e.g. the ids from ``recommend``; -1
                entries are ignored), or a 1-D array used for every user.
            users / personas: the users, as in :meth:`recommend`.
            user_items: the users' histories (``rows`` rows); needed for ``history``.
            n_history: history items listed per persona.

        Returns a dict:
            ``attention`` ``(rows, m, K)`` float32, rows sum to 1 (NaN for -1 items);
            ``dominant`` ``(rows, m)`` int64, the persona with most weight (-1 for -1 items);
            ``history`` ``(rows, K, n_history)`` int64 (only with `user_items`): per persona, the
            user's history items whose own attention puts most weight on it, best first, -1
            padded;
            ``history_weight`` the matching attention weights (NaN padded).
        """
        core = self._fitted()
        who = self._who(users, personas)
        rows = self._rows(who)
        it = np.asarray(items)
        if it.size and it.dtype.kind not in "iu":
            raise TypeError(f"items must hold integer item indices, got dtype {it.dtype}")
        if it.ndim == 1:
            it = np.broadcast_to(it, (rows, it.shape[0]))
        if it.ndim != 2 or it.shape[0] != rows:
            raise ValueError(f"items must be 1-D or have shape ({rows}, m), got {np.shape(items)}")
        it = it.astype(np.int64)
        pu, pj = np.nonzero(it >= 0)
        pair_u, pair_i = pu.astype(np.int64), it[pu, pj]
        x = None
        if user_items is not None:
            n_history = integer("n_history", n_history)
            x = csr("user_items", user_items)
            if x.shape[0] != rows:
                raise ValueError(f"user_items has {x.shape[0]} rows but {rows} users were given")
            hu = np.repeat(np.arange(rows), np.diff(x.indptr)).astype(np.int64)
            pair_u = np.concatenate([pair_u, hu])
            pair_i = np.concatenate([pair_i, x.indices.astype(np.int64)])
        # One call for the listed items and the history items together.
        att_all = core.attention(who, pair_u, pair_i)
        k = core.n_personas
        att = np.full(it.shape + (k,), np.nan, dtype=np.float32)
        att[pu, pj] = att_all[: len(pu)]
        dom = np.full(it.shape, -1, dtype=np.int64)
        dom[pu, pj] = att[pu, pj].argmax(1)
        out = {"attention": att, "dominant": dom}
        if x is not None:
            ha = att_all[len(pu) :]
            hist = np.full((rows, k, n_history), -1, dtype=np.int64)
            hw = np.full((rows, k, n_history), np.nan, dtype=np.float32)
            for kk in range(k):
                # Sort every history entry by (user, weight descending), ties in history order
                # (lexsort is stable), then keep each user's first n_history.
                order = np.lexsort((-ha[:, kk], hu))
                rank = np.arange(len(order)) - x.indptr[hu[order]]
                top = order[rank < n_history]
                r = rank[rank < n_history]
                hist[hu[top], kk, r] = x.indices[top]
                hw[hu[top], kk, r] = ha[top, kk]
            out["history"], out["history_weight"] = hist, hw
        return out

    def persona_summary(
        self, user_items, *, users=None, personas=None, item_categories=None, top: int = 3
    ) -> dict:
        """Each persona's share of each user's history and, given ``item_categories`` (a sparse
        or dense ``n_items x n_categories`` matrix, e.g. MovieLens genres), its top categories.

        Returns a dict: ``share`` ``(rows, K)`` float64, the fraction of the user's history
        items whose dominant persona is k (rows sum to 1, NaN for empty histories); with
        categories, ``top_categories`` ``(rows, K, top)`` int64 (-1 padded) and
        ``category_share`` ``(rows, K, n_categories)``: the category mix of the history items
        whose dominant persona is k.
        """
        core = self._fitted()
        who = self._who(users, personas)
        rows = self._rows(who)
        x = csr("user_items", user_items)
        if x.shape[0] != rows:
            raise ValueError(f"user_items has {x.shape[0]} rows but {rows} users were given")
        k = core.n_personas
        hu = np.repeat(np.arange(rows), np.diff(x.indptr)).astype(np.int64)
        ha = core.attention(who, hu, x.indices.astype(np.int64))
        dom = ha.argmax(1) if len(ha) else np.zeros(0, dtype=np.int64)
        counts = np.zeros((rows, k))
        np.add.at(counts, (hu, dom), 1.0)
        tot = counts.sum(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {"share": counts / tot}
        if item_categories is not None:
            top = integer("top", top)
            cat = sp.csr_matrix(item_categories, dtype=np.float64)
            if cat.shape[0] != core.n_items:
                raise ValueError(
                    f"item_categories must have {core.n_items} rows (items), got {cat.shape[0]}"
                )
            # Hard assignment: each history item counts for its dominant persona.
            assign = sp.csr_matrix(
                (np.ones(len(hu)), (hu * k + dom, x.indices)), shape=(rows * k, core.n_items)
            )
            mix = np.asarray((assign @ cat).todense()).reshape(rows, k, cat.shape[1])
            with np.errstate(invalid="ignore", divide="ignore"):
                share = mix / mix.sum(2, keepdims=True)
            order = np.argsort(-mix, axis=2, kind="stable")[:, :, :top]
            topc = np.where(np.take_along_axis(mix, order, 2) > 0, order, -1)
            out["top_categories"], out["category_share"] = topc.astype(np.int64), share
        return out
