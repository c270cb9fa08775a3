"""Inference over the Rust core, and the estimators that train models in PyTorch.

- :class:`Model`: a trained model loaded for inference (from a directory or from memory).
- :func:`load`: ``personae.load(path)`` -> :class:`Model`.
- :class:`MultVAE`: the estimator: ``fit`` in torch, then recommend/save through the Rust core.
- :class:`AMPCF`: the multi-persona estimator (AMP-CF); its models also ``explain`` and
  ``fold_in``.
- :class:`Popularity`: the most-popular baseline, for comparisons.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from personae import _core, modelfile
from personae._validate import csr_parts, item_mask, optional_threads, positive_int
from personae.estimator import Estimator

__all__ = ["AMPCF", "Model", "MultVAE", "Popularity", "load"]

_KINDS = {"multvae": _core.MultVae, "ampcf": _core.AmpCf}


class Model:
    """A trained model, ready to score. Immutable and safe to share between threads.

    Attributes:
        kind: the model family (``"multvae"``).
        n_items: size of the catalogue; item indices are 0..n_items-1.
        item_ids: external id of each item index (from the training data).
        manifest: the parsed ``manifest.json`` (config, shapes, training metrics).
    """

    def __init__(self, core, manifest: dict):
        self._core = core
        self.manifest = manifest
        self.kind: str = manifest["kind"]
        self.n_items: int = core.n_items
        self.item_ids = np.asarray(manifest.get("item_ids", np.arange(self.n_items)))
        self._fold_in_nets: dict[str, object] = {}  # AMP-CF: frozen torch nets by device

    def __repr__(self) -> str:
        return f"Model(kind={self.kind!r}, n_items={self.n_items})"

    @classmethod
    def from_bytes(cls, manifest: bytes, weights: bytes) -> Model:
        """Builds a model from serialised files held in memory (validated like a load)."""
        import json

        m = json.loads(manifest)
        core_cls = _KINDS.get(m.get("kind"))
        if core_cls is None:
            raise _core.ModelFormatError(f"unknown model kind {m.get('kind')!r}")
        return cls(core_cls.from_bytes(manifest, weights), m)

    def recommend(
        self,
        user_items,
        n: int = 20,
        *,
        exclude_seen: bool = True,
        exclude_items=None,
        num_threads: int | None = None,
        users=None,
        personas=None,
        explain: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` items for every row of `user_items`, in one fused Rust call (GIL released).

        AMP-CF models (``kind == "ampcf"``) score users by their persona vectors, so they also
        need exactly one of ``users=`` (training user indices, one per row of `user_items`) or
        ``personas=`` (a ``(rows, K, d)`` array, e.g. from :meth:`fold_in`); `user_items` then
        only supplies the items to mask. With ``explain=True`` they return a third array
        ``(rows, n)`` int64: the dominant persona of each recommended item (-1 for padding).

        Args:
            user_items: scipy CSR (or any scipy sparse matrix, or `Interactions`) of shape
                (users, n_items): each row is a user's history, the model's input. Users need not
                have been seen in training.
            n: list length.
            exclude_seen: leave each user's own history items out of their list.
            exclude_items: item indices (or a boolean mask over the catalogue) never to return.
            num_threads: worker threads; default: all cores this process may use.

        Returns:
            ``(ids, scores)``: int64 and float32 arrays of shape (users, n), best first. Item
            indices map to external ids via ``model.item_ids``. When fewer than `n` items remain
            after filtering, the rest of the row is padded with id -1 and score -inf.
        """
        n = positive_int("n", n)
        if self.kind == "ampcf":
            return self._ampcf_recommend(
                user_items, n, exclude_seen, exclude_items, num_threads, users, personas, explain
            )
        if users is not None or personas is not None or explain:
            raise TypeError(
                f"users=, personas= and explain= are for AMP-CF models, not {self.kind}"
            )
        indptr, indices, data, _ = csr_parts("user_items", user_items, self.n_items)
        mask = item_mask("exclude_items", exclude_items, self.n_items)
        return self._core.recommend(
            indptr,
            indices,
            data,
            self.n_items,
            n,
            bool(exclude_seen),
            mask,
            optional_threads(num_threads),
        )

    def recommend_stream(self, batches, n: int = 20, **kw):
        """Streams :meth:`recommend` over an iterable of CSR batches (for example rows read
        chunk by chunk from disk), yielding one ``(ids, scores)`` pair per batch.

        Memory stays bounded by one batch and its result, whatever the total number of users:
        nothing is accumulated here. Keyword arguments are those of :meth:`recommend`.
        """
        for batch in batches:
            yield self.recommend(batch, n, **kw)

    def score(
        self, user_items=None, num_threads: int | None = None, *, users=None, personas=None
    ) -> np.ndarray:
        """Dense scores (users x n_items, float32): for small batches and inspection; use
        :meth:`recommend` for top-N, which never builds this matrix. AMP-CF models take
        ``users=`` or ``personas=`` instead of `user_items`."""
        if self.kind == "ampcf":
            return self._core.score(
                **self._who(users, personas), num_threads=optional_threads(num_threads)
            )
        indptr, indices, data, _ = csr_parts("user_items", user_items, self.n_items)
        return self._core.score(indptr, indices, data, self.n_items, optional_threads(num_threads))

    def item_factors(self) -> np.ndarray:
        """Output-layer item embeddings (n_items x hidden; AMP-CF: n_items x d)."""
        if self.kind == "ampcf":
            return self._core.tensors(["item_emb"])["item_emb"]
        return self._core.item_factors()

    # ---- AMP-CF: personas, fold-in, explanations ------------------------------------------

    def _need_ampcf(self, what: str) -> None:
        if self.kind != "ampcf":
            raise TypeError(
                f"{what} needs an AMP-CF model (kind 'ampcf'), this one is {self.kind!r}"
            )

    def _who(self, users, personas) -> dict:
        """Validated ``users=`` / ``personas=`` keyword arguments for the core."""
        if (users is None) == (personas is None):
            raise ValueError(
                "give exactly one of users= (training user indices) or personas= "
                "(array of shape (rows, K, d), e.g. from fold_in)"
            )
        c = self._core
        if users is not None:
            u = np.asarray(users)
            if u.ndim == 0:
                u = u.reshape(1)
            if u.size and u.dtype.kind not in "iu":
                raise TypeError(f"users must hold integer user indices, got dtype {u.dtype}")
            return {"users": np.ascontiguousarray(u.ravel(), dtype=np.int64)}
        p = np.asarray(personas)
        if p.ndim == 2:
            p = p[None]
        if p.ndim != 3 or p.shape[1:] != (c.k, c.dim):
            raise ValueError(
                f"personas must have shape (rows, {c.k}, {c.dim}), got {np.shape(personas)}"
            )
        return {"personas": np.ascontiguousarray(p, dtype=np.float32)}

    def _rows(self, who: dict) -> int:
        return len(who["users"]) if "users" in who else who["personas"].shape[0]

    def _ampcf_recommend(
        self, user_items, n, exclude_seen, exclude_items, num_threads, users, personas, explain
    ):
        who = self._who(users, personas)
        rows = self._rows(who)
        if user_items is None:
            user_items = sp.csr_matrix((rows, self.n_items), dtype=np.float32)
        indptr, indices, _, shape = csr_parts("user_items", user_items, self.n_items)
        if shape[0] != rows:
            raise ValueError(f"user_items has {shape[0]} rows but {rows} users were given")
        mask = item_mask("exclude_items", exclude_items, self.n_items)
        ids, scores = self._core.recommend(
            indptr,
            indices,
            self.n_items,
            n,
            exclude_seen=bool(exclude_seen),
            exclude_items=mask,
            num_threads=optional_threads(num_threads),
            **who,
        )
        if not explain:
            return ids, scores
        pu, pj = np.nonzero(ids >= 0)
        att = self._core.attention(pu.astype(np.int64), ids[pu, pj], **who)
        dom = np.full(ids.shape, -1, dtype=np.int64)
        dom[pu, pj] = att.argmax(1)
        return ids, scores, dom

    @property
    def n_personas(self) -> int:
        """K, the number of personas per user (AMP-CF only)."""
        self._need_ampcf("n_personas")
        return self._core.k

    def personas(self, users) -> np.ndarray:
        """Persona vectors ``(len(users), K, d)`` of training users (AMP-CF only)."""
        self._need_ampcf("personas")
        return self._core.personas(self._who(users, None)["users"])

    def fold_in(
        self, user_items, steps: int = 100, lr: float = 0.05, seed: int = 0, device: str = "cpu"
    ) -> np.ndarray:
        """Personas ``(rows, K, d)`` for users not seen in training (or with new items): a short
        optimisation of their personas only, with the item side frozen, on the AMP-CF training
        loss over their rows of `user_items`. Needs torch (the ``train`` extra). Score the result
        with ``recommend(user_items, personas=...)``."""
        self._need_ampcf("fold_in")
        from personae.train.ampcf import AMPCFConfig, fold_in, net_from_tensors
        from personae.train.loop import pick_device

        csr_parts("user_items", user_items, self.n_items)
        cfg = dict(self.manifest.get("config", {}).get("model", {}))
        mc = AMPCFConfig(**{k: v for k, v in cfg.items() if k in AMPCFConfig.__dataclass_fields__})
        dev = pick_device(device)
        net = self._fold_in_nets.get(str(dev))
        if net is None:
            # Built once per device, not per batch: the item side, and the mean training
            # persona set that fold-in starts from (the only use of the persona table).
            t = self._core.tensors()
            t["personas"] = t["personas"].mean(0, keepdims=True)
            net = net_from_tensors(t, self._core.tau, dev).requires_grad_(False)
            self._fold_in_nets[str(dev)] = net
        m = user_items.matrix if hasattr(user_items, "matrix") else user_items
        return fold_in(
            net, sp.csr_matrix(m), mc, steps=positive_int("steps", steps), lr=lr, seed=seed
        )

    def explain(
        self, items, *, users=None, personas=None, user_items=None, n_history: int = 3
    ) -> dict:
        """Why each of `items` would be recommended to each user (AMP-CF only).

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
        self._need_ampcf("explain")
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
        if it.size and it.max() >= self.n_items:
            raise ValueError(f"items: indices must be < {self.n_items}, got {int(it.max())}")
        k = self._core.k
        pu, pj = np.nonzero(it >= 0)
        att = np.full(it.shape + (k,), np.nan, dtype=np.float32)
        att[pu, pj] = self._core.attention(pu.astype(np.int64), it[pu, pj], **who)
        dom = np.full(it.shape, -1, dtype=np.int64)
        dom[pu, pj] = att[pu, pj].argmax(1)
        out = {"attention": att, "dominant": dom}
        if user_items is not None:
            n_history = positive_int("n_history", n_history)
            indptr, indices, _, shape = csr_parts("user_items", user_items, self.n_items)
            if shape[0] != rows:
                raise ValueError(f"user_items has {shape[0]} rows but {rows} users were given")
            hu = np.repeat(np.arange(rows), np.diff(indptr)).astype(np.int64)
            ha = self._core.attention(hu, indices.astype(np.int64), **who)  # (nnz, K)
            hist = np.full((rows, k, n_history), -1, dtype=np.int64)
            hw = np.full((rows, k, n_history), np.nan, dtype=np.float32)
            for kk in range(k):
                # Sort every history entry by (user, weight descending), ties in history order
                # (lexsort is stable), then keep each user's first n_history.
                order = np.lexsort((-ha[:, kk], hu))
                rank = np.arange(len(order)) - indptr[hu[order]]
                top = order[rank < n_history]
                r = rank[rank < n_history]
                hist[hu[top], kk, r] = indices[top]
                hw[hu[top], kk, r] = ha[top, kk]
            out["history"], out["history_weight"] = hist, hw
        return out

    def persona_summary(
        self, user_items, *, users=None, personas=None, item_categories=None, top: int = 3
    ) -> dict:
        """Each persona's share of each user's history and, given ``item_categories`` (a sparse
        or dense ``n_items x n_categories`` matrix, e.g. MovieLens genres), its top categories
        (AMP-CF only).

        Returns a dict: ``share`` ``(rows, K)`` float64, the fraction of the user's history
        items whose dominant persona is k (rows sum to 1, NaN for empty histories); with
        categories, ``top_categories`` ``(rows, K, top)`` int64 (-1 padded) and
        ``category_share`` ``(rows, K, n_categories)``: the category mix of the history items
        whose dominant persona is k.
        """
        self._need_ampcf("persona_summary")
        who = self._who(users, personas)
        rows = self._rows(who)
        indptr, indices, _, shape = csr_parts("user_items", user_items, self.n_items)
        if shape[0] != rows:
            raise ValueError(f"user_items has {shape[0]} rows but {rows} users were given")
        k = self._core.k
        hu = np.repeat(np.arange(rows), np.diff(indptr)).astype(np.int64)
        ha = self._core.attention(hu, indices.astype(np.int64), **who)
        dom = ha.argmax(1) if len(ha) else np.zeros(0, dtype=np.int64)
        counts = np.zeros((rows, k))
        np.add.at(counts, (hu, dom), 1.0)
        tot = counts.sum(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {"share": counts / tot}
        if item_categories is not None:
            top = positive_int("top", top)
            cat = sp.csr_matrix(item_categories, dtype=np.float64)
            if cat.shape[0] != self.n_items:
                raise ValueError(
                    f"item_categories must have {self.n_items} rows (items), got {cat.shape[0]}"
                )
            # Hard assignment: each history item counts for its dominant persona.
            assign = sp.csr_matrix(
                (np.ones(len(hu)), (hu * k + dom, indices)), shape=(rows * k, self.n_items)
            )
            mix = np.asarray((assign @ cat).todense()).reshape(rows, k, cat.shape[1])
            with np.errstate(invalid="ignore", divide="ignore"):
                share = mix / mix.sum(2, keepdims=True)
            order = np.argsort(-mix, axis=2, kind="stable")[:, :, :top]
            topc = np.where(np.take_along_axis(mix, order, 2) > 0, order, -1)
            out["top_categories"], out["category_share"] = topc.astype(np.int64), share
        return out


def load(path: str | os.PathLike) -> Model:
    """Loads a model directory written by ``save``: validates the format version, the kind,
    every tensor's name, dtype and shape, finiteness, and the weights' sha256. Raises
    :class:`personae.ModelFormatError` naming the problem."""
    manifest = modelfile.read_manifest(path)
    core_cls = _KINDS.get(manifest.get("kind"))
    if core_cls is None:
        raise _core.ModelFormatError(
            f"{path}: unknown model kind {manifest.get('kind')!r} (known: {sorted(_KINDS)})"
        )
    return Model(core_cls.load(str(path)), manifest)


class MultVAE(Estimator):
    """Mult-VAE (Liang et al., WWW 2018): train in PyTorch, serve from the Rust core.

    The ``implicit``-compatible API (``fit``, ``recommend(userid, user_items, N, ...)``,
    ``similar_items``, ``save``) comes from :class:`personae.estimator.Estimator`; the batch API
    is ``est.model.recommend(user_items, n)``.

    Hyper-parameters default to the paper: [I-600-200-600-I], tanh, dropout 0.5, beta annealed to
    0.2 over 200,000 updates, Adam 1e-3, batches of 500 users. See
    :class:`personae.train.loop.TrainConfig` for the optimisation fields.
    """

    def __init__(
        self,
        hidden: int = 600,
        latent: int = 200,
        dropout: float = 0.5,
        anneal_cap: float = 0.2,
        total_anneal_steps: int = 200_000,
        epochs: int = 100,
        batch_size: int = 500,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 10,
        eval_k: int = 100,
        device: str = "auto",
        seed: int = 0,
        max_seconds: float | None = None,
    ):
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if anneal_cap < 0:
            raise ValueError(f"anneal_cap must be >= 0, got {anneal_cap}")
        self.params = dict(
            hidden=positive_int("hidden", hidden),
            latent=positive_int("latent", latent),
            dropout=dropout,
            anneal_cap=anneal_cap,
            total_anneal_steps=int(total_anneal_steps),
            **_training_params(
                epochs, batch_size, lr, weight_decay, patience, eval_k, device, seed, max_seconds
            ),
        )
        self.model: Model | None = None
        self.history: list[dict] = []
        self._files: tuple[bytes, bytes] | None = None

    def fit(
        self,
        user_items,
        validation=None,
        *,
        item_ids=None,
        show_progress: bool = True,
        checkpoint_dir: str | os.PathLike | None = None,
    ) -> MultVAE:
        """Trains on `user_items` (scipy sparse users x items, or `Interactions`).

        Args:
            validation: optional (fold-in, held-out) pair of sparse matrices with the same items,
                for early stopping on NDCG@eval_k.
            item_ids: external ids of the columns (taken from `Interactions` when given one).
            checkpoint_dir: if set, every new best model is saved there atomically during
                training, so an interrupted run keeps its best model.
        """
        from personae.data import Interactions
        from personae.train.loop import TrainConfig
        from personae.train.multvae import MultVAEConfig, config_dict, train_multvae

        user_items, ids = _fit_inputs(user_items, item_ids)
        n_items = user_items.shape[1]
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) != 2:
                raise TypeError("validation must be a (fold-in, held-out) pair of sparse matrices")
            validation = tuple(v.matrix if isinstance(v, Interactions) else v for v in validation)
            for name, v in zip(("fold-in", "held-out"), validation, strict=True):
                if not sp.issparse(v) or v.shape[1] != n_items:
                    raise ValueError(f"validation {name} must be sparse with {n_items} columns")
        p = self.params
        mc = MultVAEConfig(
            p["hidden"], p["latent"], p["dropout"], p["anneal_cap"], p["total_anneal_steps"]
        )
        tc = TrainConfig(**{k: p[k] for k in TrainConfig.__dataclass_fields__})
        _train_and_export(
            self,
            "multvae",
            ids,
            config_dict(mc, tc),
            {},
            lambda cb: train_multvae(user_items, mc, tc, validation, show_progress, cb),
            checkpoint_dir,
        )
        return self


def _training_params(
    epochs, batch_size, lr, weight_decay, patience, eval_k, device, seed, max_seconds
) -> dict:
    """The validated :class:`personae.train.loop.TrainConfig` fields every estimator takes."""
    return dict(
        epochs=positive_int("epochs", epochs),
        batch_size=positive_int("batch_size", batch_size),
        lr=lr,
        weight_decay=weight_decay,
        patience=int(patience),
        eval_k=positive_int("eval_k", eval_k),
        device=device,
        seed=int(seed),
        max_seconds=max_seconds,
    )


def _fit_inputs(user_items, item_ids) -> tuple[sp.spmatrix, np.ndarray]:
    """(training matrix, external item ids) from a sparse matrix or an `Interactions`."""
    from personae.data import Interactions

    if isinstance(user_items, Interactions):
        item_ids = user_items.item_ids if item_ids is None else item_ids
        user_items = user_items.matrix
    if not sp.issparse(user_items):
        raise TypeError(
            f"user_items must be a scipy sparse matrix, got {type(user_items).__name__}"
        )
    n_items = user_items.shape[1]
    ids = np.arange(n_items) if item_ids is None else np.asarray(item_ids)
    if len(ids) != n_items:
        raise ValueError(f"item_ids has {len(ids)} entries for {n_items} items")
    return user_items, ids


def _train_and_export(est, kind, item_ids, config, extra, train, checkpoint_dir):
    """Runs ``train(on_improve)`` (saving each new best model to `checkpoint_dir`, so a crash
    loses nothing), then encodes the final model of `kind` with its training summary into
    ``est._files`` and loads it for inference as ``est.model``. `extra`: manifest fields of the
    kind. Returns the training result."""

    def encode(net, training):
        return modelfile.encode(
            kind,
            net.export(),
            n_items=len(item_ids),
            item_ids=item_ids,
            config=config,
            extra={**extra, "training": training},
        )

    on_improve = None
    if checkpoint_dir is not None:

        def on_improve(net, epoch, ndcg):
            modelfile.save(checkpoint_dir, *encode(net, {"best_epoch": epoch, "val_ndcg": ndcg}))

    res = train(on_improve)
    est.history = res.history
    summary = {
        "best_epoch": res.best_epoch,
        "val_ndcg": res.best_ndcg,
        "seconds": res.seconds,
        "device": res.device,
        "epochs_run": len(res.history),
    }
    est._files = encode(res.net, summary)
    est.model = Model.from_bytes(*est._files)
    return res


class AMPCF(Estimator):
    """AMP-CF (Barkan et al., RecSys 2020): each user is K personas, and the attention over
    personas for a candidate item says which persona the item serves. Trained in PyTorch
    (:mod:`personae.train.ampcf`), served from the Rust core.

    ``est.model.recommend(user_items, n, users=rows)`` scores training users (their rows of the
    training matrix); new users go through ``personas = est.model.fold_in(their_items)`` then
    ``est.model.recommend(their_items, n, personas=personas)``. In the implicit-style
    ``est.recommend(userid, user_items, N)``, `userid` are training user indices.

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
        self.params = dict(
            n_personas=positive_int("n_personas", n_personas),
            dim=positive_int("dim", dim),
            att_dim=None if att_dim is None else positive_int("att_dim", att_dim),
            tau=float(tau),
            alpha=float(alpha),
            lambda_p=float(lambda_p),
            lambda_n=float(lambda_n),
            n_neg=positive_int("n_neg", n_neg),
            neg_power=float(neg_power),
            logq=bool(logq),
            l2=float(l2),
            **_training_params(
                epochs, batch_size, lr, weight_decay, patience, eval_k, device, seed, max_seconds
            ),
        )
        self.model: Model | None = None
        self.history: list[dict] = []
        self._files: tuple[bytes, bytes] | None = None

    def fit(
        self,
        user_items,
        validation=None,
        *,
        item_ids=None,
        show_progress: bool = True,
        checkpoint_dir: str | os.PathLike | None = None,
    ) -> AMPCF:
        """Trains on `user_items` (users x items). `validation`: held-out items of the same
        users (same shape), for early stopping on full-ranking NDCG@eval_k."""
        from personae.data import Interactions
        from personae.train.ampcf import AMPCFConfig, config_dict, train_ampcf
        from personae.train.loop import TrainConfig

        user_items, ids = _fit_inputs(user_items, item_ids)
        if isinstance(validation, Interactions):
            validation = validation.matrix
        p = self.params
        mc = AMPCFConfig(**{k: p[k] for k in AMPCFConfig.__dataclass_fields__ if k in p})
        tc = TrainConfig(**{k: p[k] for k in TrainConfig.__dataclass_fields__})
        res = _train_and_export(
            self,
            "ampcf",
            ids,
            config_dict(mc, tc),
            {"tau": mc.tau, "n_users": int(user_items.shape[0])},
            lambda cb: train_ampcf(user_items, mc, tc, validation, show_progress, cb),
            checkpoint_dir,
        )
        self.net_ = res.net
        return self

    def _users_kwargs(self, userid) -> dict:
        # In the implicit-style recommend, AMP-CF scores users by their persona rows: `userid`
        # are training user indices, and `user_items` only supplies the items to filter.
        return {"users": np.asarray(userid, dtype=np.int64).reshape(-1)}


class Popularity:
    """Recommends the items with the most interactions (the baseline every model must beat)."""

    def __init__(self):
        self.counts: np.ndarray | None = None

    def fit(self, user_items) -> Popularity:
        """Counts each item's interactions in `user_items` (users x items)."""
        indptr, indices, data, shape = csr_parts("user_items", user_items)
        self.counts = np.bincount(indices, minlength=shape[1]).astype(np.float32)
        return self

    def recommend(
        self,
        user_items,
        n: int = 20,
        *,
        exclude_seen: bool = True,
        num_threads: int | None = None,
        batch: int = 4096,
    ):
        """Top-`n` most popular items per row of `user_items` (the row's own items masked when
        `exclude_seen`), as ``(ids int64, scores float32)`` of shape (users, n), padded like
        :meth:`Model.recommend`; `batch` rows are ranked per Rust call."""
        if self.counts is None:
            raise RuntimeError("Popularity is not fitted yet: call fit() first")
        n = positive_int("n", n)
        indptr, indices, _, shape = csr_parts("user_items", user_items, len(self.counts))
        ids = np.empty((shape[0], n), dtype=np.int64)
        scores = np.empty((shape[0], n), dtype=np.float32)
        # Tiny ties are broken by item index in the Rust top-N, so results are deterministic.
        for s in range(0, shape[0], batch):
            e = min(s + batch, shape[0])
            dense = np.ascontiguousarray(np.broadcast_to(self.counts, (e - s, len(self.counts))))
            p = indptr[s : e + 1] - indptr[s]
            seen = (p, indices[indptr[s] : indptr[e]]) if exclude_seen else (None, None)
            ids[s:e], scores[s:e] = _core.top_n(
                dense, n, *seen, None, optional_threads(num_threads)
            )
        return ids, scores
