"""The estimator API shared by personae's trainable models, compatible with ``implicit`` >= 0.5.

Code written against ``implicit`` (``model.fit(user_items)``, ``model.recommend(userid,
user_items, N=10, ...)``, ``similar_items``, ``implicit.evaluation.ranking_metrics_at_k``) runs
unchanged on a personae model. One difference is a feature: the user's history *is* the model's
input, so ``recommend`` scores users never seen in training from their ``user_items`` row, with
no refit (``recalculate_user`` is accepted and has nothing left to do).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from personae import _core, modelfile
from personae._validate import item_mask, positive_int

__all__ = ["Estimator"]


def _ids(name: str, x, n_items: int) -> np.ndarray:
    a = np.asarray(x)
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer item indices, got dtype {a.dtype}")
    a = a.astype(np.int64).ravel()
    if a.size and (a.min() < 0 or a.max() >= n_items):
        raise IndexError(f"{name}: some item indices are outside 0..{n_items}")
    return a


class Estimator:
    """Base of the trainable models: ``fit`` is theirs; serving goes through :attr:`model`."""

    model = None  # personae.Model once fitted
    _files: tuple[bytes, bytes] | None = None

    def fit(self, user_items, show_progress: bool = True):  # pragma: no cover - abstract
        """Trains on `user_items` (users x items); implemented by each model."""
        raise NotImplementedError

    def _users_kwargs(self, userid) -> dict:
        """Extra ``Model.recommend`` arguments that identify the users of an implicit-style call
        (none by default: the users are their `user_items` rows)."""
        return {}

    def _fitted(self):
        if self.model is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit() first")
        return self.model

    def recommend(
        self,
        userid,
        user_items,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items=None,
        recalculate_user: bool = False,
        items=None,
    ):
        """Top-`N` items for one user id or an array of user ids (``implicit`` semantics).

        Args:
            userid: an int (returns 1-D arrays) or an array of ints (returns 2-D arrays, one row
                per id). Ids only shape the output: the scores come from `user_items`.
            user_items: CSR with one row per requested user, in the same order: their histories.
            N: list length; capped at ``len(items)`` when `items` is given.
            filter_already_liked_items: leave out each user's own `user_items` entries.
            filter_items: item indices never to return.
            recalculate_user: accepted for compatibility; users are always computed from
                `user_items`, which is what lets unseen users be served without a refit.
            items: restrict the candidates to these item indices.

        Returns:
            ``(ids, scores)`` as int32 / float32 (implicit's types), best first; when fewer
            than `N` items remain after filtering, the tail is padded with id -1 and score -inf.
        """
        del recalculate_user
        model = self._fitted()
        scalar = np.isscalar(userid)
        n_users = 1 if scalar else len(np.asarray(userid).ravel())
        if user_items is None:
            raise ValueError(
                "user_items is required: a personae model scores users from their rows"
            )
        if not sp.issparse(user_items):
            raise TypeError(
                f"user_items must be a scipy sparse matrix, got {type(user_items).__name__}"
            )
        if user_items.shape[0] != n_users:
            raise ValueError(
                f"user_items must contain 1 row for every user in userid: {n_users} user(s), "
                f"{user_items.shape[0]} row(s)"
            )
        N = positive_int("N", N)
        exclude = None
        if items is not None:
            if filter_items is not None:
                raise ValueError("Can't specify both filter_items and items")
            allowed = _ids("items", items, model.n_items)
            exclude = np.ones(model.n_items, dtype=bool)
            exclude[allowed] = False
            N = max(1, min(N, len(np.unique(allowed))))
        elif filter_items is not None:
            exclude = item_mask(
                "filter_items", _ids("filter_items", filter_items, model.n_items), model.n_items
            )
        ids, scores = model.recommend(
            user_items,
            N,
            exclude_seen=filter_already_liked_items,
            exclude_items=exclude,
            **self._users_kwargs(userid),
        )
        ids = ids.astype(np.int32)  # implicit's type: its evaluation code requires int32
        return (ids[0], scores[0]) if scalar else (ids, scores)

    def similar_items(
        self,
        itemid,
        N: int = 10,
        recalculate_item: bool = False,
        item_users=None,
        filter_items=None,
        items=None,
    ):
        """The `N` items most similar to `itemid` (an int, or an array for 2-D results) by cosine
        similarity of the model's item embeddings; the item itself comes first (score 1), as in
        ``implicit``. `recalculate_item` and `item_users` are accepted for compatibility."""
        del recalculate_item, item_users
        model = self._fitted()
        f = model.item_factors().astype(np.float32)
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        scalar = np.isscalar(itemid)
        q = _ids("itemid", [itemid] if scalar else itemid, model.n_items)
        N = positive_int("N", N)
        exclude = None
        if items is not None:
            allowed = _ids("items", items, model.n_items)
            exclude = np.ones(model.n_items, dtype=bool)
            exclude[allowed] = False
            N = min(N, len(np.unique(allowed)))
        elif filter_items is not None:
            exclude = item_mask(
                "filter_items", _ids("filter_items", filter_items, model.n_items), model.n_items
            )
        sims = np.ascontiguousarray(f[q] @ f.T, dtype=np.float32)
        ids, scores = _core.top_n(sims, N, None, None, exclude, None)
        ids = ids.astype(np.int32)
        return (ids[0], scores[0]) if scalar else (ids, scores)

    def save(self, path: str | os.PathLike) -> Path:
        """Writes ``manifest.json`` + weights to directory `path`, atomically (see
        :mod:`personae.modelfile`); read it back with ``personae.load``."""
        self._fitted()
        return modelfile.save(path, *self._files)
