"""Inference over the Rust core, and the estimators that train models in PyTorch.

- :class:`Model`: a trained model loaded for inference (from a directory or from memory).
- :func:`load`: ``personae.load(path)`` -> :class:`Model`.
- :class:`MultVAE`: the estimator: ``fit`` in torch, then recommend/save through the Rust core.
- :class:`Popularity`: the most-popular baseline, for comparisons.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from personae import _core, modelfile
from personae._validate import csr_parts, item_mask, optional_threads, positive_int
from personae.estimator import Estimator

__all__ = ["Model", "MultVAE", "Popularity", "load"]

_KINDS = {"multvae": _core.MultVae}


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
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` items for every row of `user_items`, in one fused Rust call (GIL released).

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

    def score(self, user_items, num_threads: int | None = None) -> np.ndarray:
        """Dense scores (users x n_items, float32): for small batches and inspection; use
        :meth:`recommend` for top-N, which never builds this matrix."""
        indptr, indices, data, _ = csr_parts("user_items", user_items, self.n_items)
        return self._core.score(indptr, indices, data, self.n_items, optional_threads(num_threads))

    def item_factors(self) -> np.ndarray:
        """Output-layer item embeddings (n_items x hidden)."""
        return self._core.item_factors()


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

        if isinstance(user_items, Interactions):
            item_ids = user_items.item_ids if item_ids is None else item_ids
            user_items = user_items.matrix
        if not sp.issparse(user_items):
            raise TypeError(
                f"user_items must be a scipy sparse matrix, got {type(user_items).__name__}"
            )
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
        ids = np.arange(n_items) if item_ids is None else np.asarray(item_ids)
        if len(ids) != n_items:
            raise ValueError(f"item_ids has {len(ids)} entries for {n_items} items")
        config = config_dict(mc, tc)

        def encode(net, extra):
            return modelfile.encode(
                "multvae", net.export(), n_items=n_items, item_ids=ids, config=config, extra=extra
            )

        on_improve = None
        if checkpoint_dir is not None:

            def on_improve(net, epoch, ndcg):
                modelfile.save(
                    checkpoint_dir,
                    *encode(net, {"training": {"best_epoch": epoch, "val_ndcg": ndcg}}),
                )

        res = train_multvae(user_items, mc, tc, validation, show_progress, on_improve)
        self.history = res.history
        extra = {
            "training": {
                "best_epoch": res.best_epoch,
                "val_ndcg": res.best_ndcg,
                "seconds": res.seconds,
                "device": res.device,
                "epochs_run": len(res.history),
            }
        }
        self._files = encode(res.net, extra)
        self.model = Model.from_bytes(*self._files)
        return self


class Popularity:
    """Recommends the items with the most interactions (the baseline every model must beat)."""

    def __init__(self):
        self.counts: np.ndarray | None = None

    def fit(self, user_items) -> Popularity:
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
