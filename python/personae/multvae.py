"""Mult-VAE (Liang et al., WWW 2018): trained in PyTorch, served from the Rust core."""

from __future__ import annotations

import math
import os

from personae import _core
from personae._validate import integer
from personae.models import Model, fit_inputs, validation_pair

__all__ = ["MultVAE"]


def training_params(
    epochs, batch_size, lr, weight_decay, patience, eval_k, device, seed, max_seconds
) -> dict:
    """The :class:`personae.train.loop.TrainConfig` fields every trained family takes, checked
    here (without torch) so a bad value fails at construction, not inside the training."""
    out = dict(
        epochs=integer("epochs", epochs),
        batch_size=integer("batch_size", batch_size),
        lr=float(lr),
        weight_decay=float(weight_decay),
        patience=integer("patience", patience),
        eval_k=integer("eval_k", eval_k),
        device=str(device),
        seed=integer("seed", seed),
        max_seconds=None if max_seconds is None else float(max_seconds),
    )
    for name in ("epochs", "batch_size", "eval_k"):
        if out[name] < 1:
            raise ValueError(f"{name} must be >= 1, got {out[name]}")
    if out["seed"] < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if out["patience"] < 0:
        raise ValueError(f"patience must be >= 0 (0 disables early stopping), got {patience}")
    if not (math.isfinite(out["lr"]) and out["lr"] > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    if not (math.isfinite(out["weight_decay"]) and out["weight_decay"] >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    if out["max_seconds"] is not None and not out["max_seconds"] > 0:
        raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds}")
    return out


def train_and_build(
    model: Model, user_items, item_ids, train, config: dict, checkpoint_dir, callback
):
    """Runs ``train(on_improve, on_epoch)`` (saving each new best model to `checkpoint_dir`, so
    a crash loses nothing), then builds the Rust model of the final network with its training
    summary. Returns the training result."""

    # Training interactions per item: similar_items skips items nobody interacted with.
    counts = _core.Popularity.count(user_items)

    def build(net, training: dict) -> None:
        tensors = {**net.export(), "item_count": counts}
        model._build(tensors, item_ids, config=config, training=training)

    on_improve = None
    if checkpoint_dir is not None:

        def on_improve(net, epoch, ndcg):
            build(net, {"best_epoch": epoch, "val_ndcg": ndcg})
            model.save(checkpoint_dir)

    on_epoch = None
    if callback is not None:

        def on_epoch(rec: dict, seconds: float) -> None:
            callback(rec["epoch"], seconds, rec.get("loss"))

    res = train(on_improve, on_epoch)
    model.history = res.history
    build(
        res.net,
        {
            "best_epoch": res.best_epoch,
            "val_ndcg": res.best_ndcg,
            "val_k": config["train"]["eval_k"],
            "seconds": res.seconds,
            "device": res.device,
            "epochs_run": len(res.history),
        },
    )
    return res


class MultVAE(Model, kind="multvae"):
    """Mult-VAE (Liang et al., WWW 2018): train in PyTorch, serve from the Rust core.

    A user's history (L2-normalised, with dropout in training) goes through the encoder
    [I-hidden-latent] to the mean latent; the decoder [latent-hidden-I] gives a logit per item.
    The multinomial likelihood makes items compete for a user's probability mass. Serving uses
    the mean latent (no sampling), fused with seen-item masking and top-N in Rust.

    Defaults: [I-600-200-600-I], tanh, dropout 0.5, Adam 1e-3, batches of 500 users (the
    paper's), and a KL weight beta = 0.5 from the first update (``total_anneal_steps=1``): the
    best validated setting of personae's accuracy harness on MovieLens-100K and
    ML-latest-small (and of the Gowalla sweep), where the paper's slow annealing to 0.2 over
    200,000 updates overfits (BENCHMARKS.md). ``anneal_cap=0.2, total_anneal_steps=200_000``
    restores the paper's schedule.
    """

    def __init__(
        self,
        hidden: int = 600,
        latent: int = 200,
        dropout: float = 0.5,
        anneal_cap: float = 0.5,
        total_anneal_steps: int = 1,
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
        if not (math.isfinite(anneal_cap) and anneal_cap >= 0):
            raise ValueError(f"anneal_cap must be a finite number >= 0, got {anneal_cap}")
        for name, value in (("hidden", hidden), ("latent", latent)):
            if integer(name, value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if integer("total_anneal_steps", total_anneal_steps) < 0:
            raise ValueError(f"total_anneal_steps must be >= 0, got {total_anneal_steps}")
        super().__init__(
            hidden=integer("hidden", hidden),
            latent=integer("latent", latent),
            dropout=float(dropout),
            anneal_cap=float(anneal_cap),
            total_anneal_steps=integer("total_anneal_steps", total_anneal_steps),
            **training_params(
                epochs, batch_size, lr, weight_decay, patience, eval_k, device, seed, max_seconds
            ),
        )

    def fit(
        self,
        user_items,
        *,
        validation=None,
        show_progress: bool = True,
        callback=None,
        item_ids=None,
        checkpoint_dir: str | os.PathLike | None = None,
    ) -> MultVAE:
        """Trains on `user_items` (scipy sparse users x items, or `Interactions`).

        Args:
            validation: the users for early stopping on NDCG@eval_k: a (fold-in, held-out)
                pair of sparse matrices with the same items; None (the default) carves them
                from `user_items` itself (up to 5,000 users lose 20% of their items, which the
                network then never trains on: :func:`personae.data.carve_validation`); False
                trains every epoch on all of `user_items`, without validation.
            item_ids: external ids of the columns (taken from `Interactions` when given one).
            checkpoint_dir: if set, every new best model is saved there atomically during
                training, so an interrupted run keeps its best model.
            callback: ``callback(epoch, seconds, loss)`` after every epoch (``implicit``'s
                convention).
        """
        from personae.data import carve_validation
        from personae.train.loop import TrainConfig, config_dict
        from personae.train.multvae import MultVAEConfig, train_multvae

        user_items, ids = fit_inputs(user_items, item_ids)
        if validation is None:
            fit, held, users = carve_validation(user_items, 5000, 0.2, self.params["seed"])
            user_items, validation = fit, (fit[users], held[users])
        elif validation is False:
            validation = None
        else:
            validation = validation_pair(validation, user_items, ids)
        p = self.params
        mc = MultVAEConfig(
            p["hidden"], p["latent"], p["dropout"], p["anneal_cap"], p["total_anneal_steps"]
        )
        tc = TrainConfig(**{k: p[k] for k in TrainConfig.__dataclass_fields__})
        train_and_build(
            self,
            user_items,
            ids,
            lambda improve, epoch: train_multvae(
                user_items, mc, tc, validation, show_progress, improve, epoch
            ),
            config_dict(mc, tc),
            checkpoint_dir,
            callback,
        )
        return self

    @classmethod
    def _n_items_of(cls, tensors) -> int:
        return len(tensors["dec_item_b"])
