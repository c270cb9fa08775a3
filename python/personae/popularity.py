"""The most-popular baseline, served through the same fused Rust loop as the models."""

from __future__ import annotations

import time

import numpy as np

from personae import _core
from personae.models import Model, fit_inputs

__all__ = ["Popularity"]


class Popularity(Model, kind="popularity"):
    """Recommends the items with the most training interactions (the baseline every model must
    beat). Each user's own items are masked as for any model; ties go to the lower item index.
    Saved, loaded and served like every personae model."""

    def __init__(self):
        super().__init__()

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
        """Counts each item's interactions in `user_items` (users x items, or `Interactions`).
        `validation` and `show_progress` are accepted for the common fit protocol (there is
        nothing to validate); ``callback(0, seconds, None)`` is called once, when the counting
        is done (its one "epoch"); `checkpoint_dir`, when given, receives the model."""
        del validation, show_progress
        t0 = time.perf_counter()
        m, ids = fit_inputs(user_items, item_ids)
        self._build({"item_count": _core.Popularity.count(m)}, ids)
        if callback is not None:
            callback(0, time.perf_counter() - t0, None)
        if checkpoint_dir is not None:
            self.save(checkpoint_dir)
        return self

    @property
    def counts(self) -> np.ndarray:
        """Training interactions per item (float32)."""
        return self._fitted().item_count()
