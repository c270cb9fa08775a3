"""The model base class and :func:`load`.

One Python class per model family (:class:`personae.MultVAE`, :class:`personae.AMPCF`,
:class:`personae.EASE`, :class:`personae.GraphFilter`, :class:`personae.Popularity`) is both
the estimator (``fit``) and the served model: after ``fit`` or ``load`` it owns one Rust model,
built once, and every serving call is one call into it with the GIL released. The family is
chosen from the model file's manifest.

Serving speaks two dialects of ``recommend``:

- batch: ``recommend(user_items, n=20, *, exclude_seen=True, exclude_items=None,
  num_threads=None)`` -> int64 ids and float32 scores of shape (rows, n), padded with -1 / -inf;
- ``implicit`` (>= 0.5): ``recommend(userid, user_items, N=10, filter_already_liked_items=True,
  filter_items=None, recalculate_user=False, items=None)`` -> int32 ids and float32 scores,
  1-D for a scalar `userid`.

The first argument decides: a scipy sparse matrix (or `Interactions`) is the batch form,
anything else (an int or an array of ints) is the implicit form.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from personae import _core, modelfile
from personae._validate import csr, indices, integer, item_set, optional_integer

__all__ = ["Model", "load", "top_n"]


def fit_inputs(user_items, item_ids) -> tuple[sp.csr_matrix, np.ndarray]:
    """(training matrix, external item ids) from a sparse matrix or an `Interactions`."""
    if item_ids is None:
        item_ids = getattr(user_items, "item_ids", None)
    m = csr("user_items", user_items)
    ids = np.arange(m.shape[1]) if item_ids is None else np.asarray(item_ids)
    if len(ids) != m.shape[1]:
        raise ValueError(f"item_ids has {len(ids)} entries for {m.shape[1]} items")
    if item_ids is not None:
        # Checked before the fit: the model file refuses repeated ids only once it is built.
        text = ids.astype(str)  # the id rule: 7 and "7" are one id
        uniq, counts = np.unique(text, return_counts=True)
        if (counts > 1).any():
            twice = str(uniq[counts > 1][0])
            raise ValueError(f"item_ids: item id {twice!r} appears more than once")
    return m, ids


def validation_pair(validation, x: sp.csr_matrix, ids: np.ndarray):
    """`validation` as a checked (fold-in, held-out) pair of CSR matrices with the training
    matrix `x`'s items, or None. An `Interactions` must carry the training items in their
    order (``ids``): a matrix of other items with the same count would steer the search
    silently, as serving refuses it."""
    if validation is None:
        return None
    if not isinstance(validation, (tuple, list)) or len(validation) != 2:
        raise TypeError("validation must be a (fold-in, held-out) pair of sparse matrices")
    for name, v in zip(("fold-in", "held-out"), validation, strict=True):
        given = getattr(v, "item_ids", None)
        if given is not None and not sp.issparse(v):
            _same_items(ids, np.asarray(given), f"validation {name}")
    pair = tuple(csr("validation", v) for v in validation)
    for name, v in zip(("fold-in", "held-out"), pair, strict=True):
        if v.shape[1] != x.shape[1]:
            raise ValueError(f"validation {name} must have {x.shape[1]} columns")
    if pair[0].shape[0] != pair[1].shape[0]:
        raise ValueError("validation fold-in and held-out must have the same rows (users)")
    return pair


class Model:
    """Base class of personae's models: fitting, serving, files, pickling.

    Attributes:
        params: the constructor arguments (restored from the manifest on load).
        manifest: the parsed ``manifest.json`` (config, shapes, training summary) once fitted.
        item_ids: external id of each item index.
        history: per-epoch training records of the last ``fit`` (empty for loaded models).
    """

    kind: ClassVar[str] = ""
    _families: ClassVar[dict[str, type[Model]]] = {}
    _core: Any = None

    def __init_subclass__(cls, kind: str = "", **kw):
        super().__init_subclass__(**kw)
        if kind:
            cls.kind = kind
            Model._families[kind] = cls

    def __init__(self, **params):
        self.params = params
        self.manifest: dict = {}
        self.item_ids = np.zeros(0, dtype=np.int64)
        self.history: list[dict] = []

    def __repr__(self) -> str:
        state = f"{self.n_items} items" if self._core is not None else "not fitted"
        return f"{type(self).__name__}({state})"

    # -- the Rust model ------------------------------------------------------------------
    def _attach(self, core) -> None:
        self._core = core
        self.manifest = json.loads(core.manifest)
        ids = self.manifest.get("item_ids")
        self.item_ids = np.asarray(ids) if ids is not None else np.arange(core.n_items)

    def _fitted(self):
        if self._core is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit() first")
        return self._core

    def _build(self, tensors: dict[str, np.ndarray], item_ids, **fields) -> None:
        """Builds the Rust model from freshly fitted tensors (validated like a file), taking
        them out of `tensors`: the core copies each array and drops it before the next, so a
        fit does not hold its model twice over (callers with a dict of their own pass a
        copy)."""
        from personae.data import as_ids

        ids = as_ids(item_ids, "item_ids")
        manifest = {
            "kind": self.kind,
            "n_items": len(ids),
            "item_ids": ids.tolist(),
            "params": _jsonable(self.params),
            **_jsonable(fields),
        }
        arrays = {k: _tensor(tensors.pop(k)) for k in list(tensors)}
        self._attach(_core.build(json.dumps(manifest, allow_nan=False), arrays))

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], item_ids=None, **params) -> Model:
        """A model of this family from weights trained elsewhere (float32 arrays in the layout
        its model file uses; see the family's docs), validated like a file. `params` are the
        constructor arguments to record."""
        if not cls.kind:
            raise TypeError("call from_tensors on a model family (e.g. personae.MultVAE)")
        obj = cls(**params)
        try:
            n = cls._n_items_of(tensors) if item_ids is None else None
        except KeyError as e:  # the tensor that gives the catalogue size
            raise _core.ModelFormatError(
                f"{cls.__name__}.from_tensors: tensor {e} is missing"
            ) from None
        ids = np.arange(n) if item_ids is None else item_ids
        obj._build(dict(tensors), ids)  # a copy: the caller's dict stays as it was
        return obj

    @classmethod
    def _n_items_of(cls, tensors: dict[str, np.ndarray]) -> int:
        """The catalogue size implied by a family's tensors (for default item ids)."""
        return len(tensors["item_count"])

    @classmethod
    def _from_core(cls, core) -> Model:
        family = Model._families.get(core.kind)
        if family is None:  # pragma: no cover - the core only builds known kinds
            raise _core.ModelFormatError(f"no Python class for model kind {core.kind!r}")
        if not issubclass(family, cls):
            raise _core.ModelFormatError(
                f"this is a {family.__name__} model ({core.kind!r}), not a {cls.__name__}; "
                "use personae.load to load any kind"
            )
        params = json.loads(core.manifest).get("params", {})
        if not isinstance(params, dict):
            raise _core.ModelFormatError(
                f"manifest.json: params must be an object, got {type(params).__name__}"
            )
        try:
            obj = family(**family._known_params(params))
        except (TypeError, ValueError) as e:  # the weights' hash does not cover the manifest
            raise _core.ModelFormatError(f"manifest.json: params: {e}") from None
        obj._attach(core)
        return obj

    @classmethod
    def _known_params(cls, params: dict) -> dict:
        import inspect

        names = inspect.signature(cls.__init__).parameters
        return {k: v for k, v in params.items() if k in names}

    # -- files and pickling --------------------------------------------------------------
    @classmethod
    def load(cls, path) -> Model:
        """Loads a model written by :meth:`save` (see :func:`personae.load`): a directory, or
        one archive given as a binary file object or the path of a file; on a family class,
        the file must hold that family."""
        if modelfile.is_file_object(path) or Path(os.fspath(path)).is_file():
            return cls.from_bytes(*modelfile.read_archive(path))
        return cls._from_core(_core.load(os.fspath(path)))

    @classmethod
    def from_bytes(cls, manifest: bytes | str, weights: bytes) -> Model:
        """Builds a model from its two files held in memory (validated like a load)."""
        m = manifest.encode() if isinstance(manifest, str) else manifest
        return cls._from_core(_core.from_bytes(m, weights))

    def to_bytes(self) -> tuple[bytes, bytes]:
        """The model's two files, ``(manifest.json bytes, weights bytes)``."""
        m, w = self._fitted().to_bytes()
        return m.encode(), w

    def save(self, path, lock_timeout: float = modelfile.LOCK_TIMEOUT):
        """Writes ``manifest.json`` + weights to directory `path`, atomically and safely against
        concurrent readers and writers (see :mod:`personae.modelfile`), and returns the path;
        read it back with :func:`personae.load`. A writer waits at most `lock_timeout` seconds
        for another one's lock, then raises ``TimeoutError`` naming the lock file.

        `path` may also be a binary file object (``implicit``'s ``save(fileobj)``): the same two
        files are written to it as one zip archive, which ``load`` reads back from the file
        object or from the file's path. An unfitted model cannot be saved (``RuntimeError``)."""
        manifest, weights = self._fitted().to_bytes()
        if modelfile.is_file_object(path):
            modelfile.write_archive(path, manifest, weights)
            return path
        return modelfile.save(path, manifest, weights, lock_timeout)

    def __getstate__(self) -> dict:
        # Pickling goes through the model's own safetensors + JSON bytes, never through pickle
        # of weights, so a pickled model is exactly a saved one.
        files = self.to_bytes() if self._core is not None else None
        return {"params": self.params, "files": files, "history": self.history}

    def __setstate__(self, state: dict) -> None:
        type(self).__init__(self, **state["params"])
        if state["files"] is not None:
            self._attach(_core.from_bytes(*state["files"]))
        self.history = state["history"]

    def tensors(self) -> dict[str, np.ndarray]:
        """Copies of the model's tensors by name, in the layout its file stores (float32, or
        int32 / int64 for index tensors): what :meth:`from_tensors` takes back."""
        return dict(self._fitted().tensors())

    # -- serving -------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        """Number of items; item indices are 0..n_items-1."""
        return self._fitted().n_items

    def recommend(self, *args, **kwargs):
        """Top-N lists, in the batch form or in ``implicit``'s form (see the module docs).

        Batch form, ``recommend(user_items, n=20, *, exclude_seen=True, exclude_items=None,
        num_threads=None)``: the rows of `user_items` (scipy sparse, users x items) are the
        users' histories, the model's input, so users never seen in training are served
        without refitting; `exclude_items` is an array of item indices or a boolean mask over
        the catalogue; `num_threads` caps the Rust worker threads (at most the CPUs this process
        may use). Returns int64 ids and float32 scores of shape (rows, n), best first; when
        fewer than `n` items remain after filtering, rows are padded with id -1 and score -inf.
        Ties go to the lower item index.

        ``implicit`` form, ``recommend(userid, user_items, N=10, filter_already_liked_items=True,
        filter_items=None, recalculate_user=False, items=None)``: as ``implicit``'s models;
        int32 ids. With `items`, items filtered as already liked come last with score -inf,
        as in ``implicit``. Item indices outside the catalogue raise
        :class:`personae.InvalidInputError` (``implicit`` raises ``IndexError``).
        """
        first = args[0] if args else kwargs.get("user_items", kwargs.get("userid"))
        if "userid" in kwargs or (args and not _is_matrix(first)):
            return self._recommend_implicit(*args, **kwargs)
        return self._recommend_batch(*args, **kwargs)

    def _rows(self, user_items, what: str = "user_items") -> sp.csr_matrix:
        """`user_items` as CSR rows; an `Interactions` must also carry the model's item ids in
        the model's order (a bare matrix carries only its column count, which the core checks),
        since columns that mean other items would give confident, wrong lists."""
        self._fitted()  # an unfitted model says so, before any comparison
        given = getattr(user_items, "item_ids", None)
        if given is not None and not sp.issparse(user_items):
            _same_items(self.item_ids, np.asarray(given), what)
        return csr(what, user_items)

    def _recommend_batch(
        self,
        user_items,
        n: int = 20,
        *,
        exclude_seen: bool = True,
        exclude_items=None,
        num_threads: int | None = None,
        **family,
    ):
        return self._top_n(
            self._rows(user_items),
            integer("n", n),
            bool(exclude_seen),
            item_set("exclude_items", exclude_items),
            optional_integer("num_threads", num_threads),
            **family,
        )

    def _top_n(self, user_items, n, exclude_seen, exclude, num_threads, **family):
        """The family's batch top-N (one Rust call)."""
        if family:
            raise TypeError(
                f"{type(self).__name__}.recommend got unexpected arguments {sorted(family)}"
            )
        core = self._fitted()
        return core.recommend(user_items, n, exclude_seen, exclude, num_threads)

    def _implicit_users(self, userid: np.ndarray, user_items, recalculate_user: bool) -> dict:
        """Extra batch arguments that identify the users of an implicit-style call (none by
        default: the users are their `user_items` rows)."""
        return {}

    def _recommend_implicit(
        self,
        userid,
        user_items,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items=None,
        recalculate_user: bool = False,
        items=None,
    ):
        self._fitted()
        scalar = np.isscalar(userid)
        uid = indices("userid", userid)
        if user_items is None:
            raise ValueError(
                "user_items is required: a personae model scores users from their rows"
            )
        x = self._rows(user_items)
        if x.shape[0] != len(uid):
            raise ValueError(
                f"user_items must contain 1 row for every user in userid: {len(uid)} user(s), "
                f"{x.shape[0]} row(s)"
            )
        N, exclude, allowed = _candidates(N, filter_items, items)
        if N == 0:  # items=[]: nothing to rank, as implicit answers
            return _empty(len(uid), scalar)
        ids, scores = self._top_n(
            x,
            N,
            bool(filter_already_liked_items),
            exclude,
            None,
            **self._implicit_users(uid, x, bool(recalculate_user)),
        )[:2]
        if allowed is not None and filter_already_liked_items:
            _append_liked(ids, x, allowed)
        ids = ids.astype(np.int32)  # implicit's type: its evaluation code requires int32
        return (ids[0], scores[0]) if scalar else (ids, scores)

    def recommend_stream(self, batches, n: int = 20, **kw):
        """Streams the batch :meth:`recommend` over an iterable of CSR batches (for example
        rows read chunk by chunk from disk), yielding one ``(ids, scores)`` pair per batch.

        Memory stays bounded by one batch and its result, whatever the total number of users:
        nothing is accumulated here. Keyword arguments are those of :meth:`recommend`."""
        for batch in batches:
            yield self._recommend_batch(batch, n, **kw)

    def score(self, user_items, num_threads: int | None = None) -> np.ndarray:
        """Dense scores (users x n_items, float32) of the rows of `user_items`, the values
        :meth:`recommend` ranks: for small batches and inspection; ``recommend`` never builds
        this matrix."""
        return self._fitted().score(
            self._rows(user_items), optional_integer("num_threads", num_threads)
        )

    def item_factors(self) -> np.ndarray:
        """The model's item embeddings (n_items x dim), the ones :meth:`similar_items` uses;
        ``NotImplementedError`` for a model without them (popularity)."""
        return self._fitted().item_factors()

    def similar_items(
        self,
        itemid,
        N: int = 10,
        recalculate_item: bool = False,
        item_users=None,
        filter_items=None,
        items=None,
    ):
        """The `N` items most similar to `itemid` (an int, or an array for 2-D results) by
        cosine similarity of the model's item embeddings, best first; the item itself comes
        first (score 1), as in ``implicit``. Items without training interactions are never
        returned, and asked about, get a row of padding (id -1, score -inf): their embeddings
        are untrained. `recalculate_item` and `item_users` are accepted for compatibility."""
        del recalculate_item, item_users
        core = self._fitted()
        scalar = np.isscalar(itemid)
        q = indices("itemid", itemid)
        N, exclude, _ = _candidates(N, filter_items, items)
        if N == 0:
            return _empty(len(q), scalar)
        ids, scores = core.similar_items(q, N, exclude)
        ids = ids.astype(np.int32)
        return (ids[0], scores[0]) if scalar else (ids, scores)

    def similar_users(self, userid, N: int = 10, filter_users=None, users=None):
        """Not available: personae models have no user factors (a user is their history)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no user embeddings: personae scores users from their "
            "histories, so there is nothing to compare users by"
        )

    def fit(
        self,
        user_items,
        *,
        validation=None,
        show_progress: bool = True,
        callback=None,
        item_ids=None,
    ):  # pragma: no cover - every family implements it
        """Fits the model on `user_items` (users x items, or an `Interactions`), the same
        protocol for every family: `validation` a (fold-in, held-out) pair of matrices with the
        same items, or None for a validation carve of `user_items` itself (families with
        nothing to validate ignore it); `show_progress` a progress bar; ``callback(step,
        seconds, value)`` after each epoch or search step; `item_ids` the columns' external
        ids (taken from an `Interactions`). Returns the model."""
        raise NotImplementedError


def _same_items(model_ids: np.ndarray, given: np.ndarray, what: str) -> None:
    """Raises InvalidInputError unless `given` are the model's item ids in its order (compared
    by the id rule: by text, so 7 and "7" are one id)."""
    if len(given) == len(model_ids) and np.array_equal(given, model_ids):
        return
    if len(given) == len(model_ids):
        a, b = model_ids.astype(str), given.astype(str)
        if np.array_equal(a, b):
            return
        at = int(np.flatnonzero(a != b)[0])
        detail = (
            f"column {at} is item {given[at].item()!r}, the model's is {model_ids[at].item()!r}"
        )
    else:
        detail = f"{len(given)} items for the model's {len(model_ids)}"
    raise _core.InvalidInputError(
        f"{what} has other item ids than the model ({detail}); map the data onto the model's "
        "items: Interactions.read(..., item_ids=model.item_ids) or "
        "Interactions.from_arrays(..., item_ids=model.item_ids)"
    )


def _candidates(N, filter_items, items):
    """implicit's candidate arguments: (N, the exclusion set, the allowed items or None). With
    `items`, only those are candidates and N is capped at their number."""
    N = integer("N", N)
    if items is None:
        return N, item_set("filter_items", filter_items), None
    if filter_items is not None:
        raise ValueError("Can't specify both filter_items and items")
    allowed = np.unique(indices("items", items))
    return (max(1, min(N, len(allowed))) if len(allowed) else 0), {"only": allowed}, allowed


def _empty(rows: int, scalar: bool):
    """implicit's answer when no item may be listed: int32 ids and float32 scores, 0 wide."""
    ids, scores = np.empty((rows, 0), np.int32), np.empty((rows, 0), np.float32)
    return (ids[0], scores[0]) if scalar else (ids, scores)


def _is_matrix(x) -> bool:
    """Whether `x` is a batch of user rows (userids are scalars or 1-D)."""
    return sp.issparse(x) or hasattr(x, "matrix") or np.ndim(x) == 2


def _append_liked(ids: np.ndarray, x: sp.csr_matrix, allowed: np.ndarray) -> None:
    """implicit's behaviour for ``items=`` with filtering: the requested items a user already
    liked fill the padded tail of their row (in index order; their scores stay -inf)."""
    # Stored entries, not non-zero weights: the core filters every stored item as seen.
    liked = x[:, allowed].astype(bool, copy=True)
    liked.data[:] = True
    liked = liked.toarray()
    r, c = np.nonzero(liked)
    if not len(r):
        return
    pads = (ids < 0).sum(1)
    start = np.searchsorted(r, np.arange(ids.shape[0]))
    rank = np.arange(len(r)) - start[r]
    ok = rank < pads[r]
    ids[r[ok], ids.shape[1] - pads[r[ok]] + rank[ok]] = allowed[c[ok]]


def _tensor(v) -> np.ndarray:
    """A tensor as the core stores it: float32, or int32 / int64 for index tensors."""
    a = np.asarray(v)
    if a.dtype.kind in "iu":
        return np.ascontiguousarray(a, dtype=np.int32 if a.dtype.itemsize <= 4 else np.int64)
    return np.ascontiguousarray(a, dtype=np.float32)


def _jsonable(obj):
    """numpy scalars to Python, non-finite floats to null (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return _jsonable(obj.item())
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def top_n(
    scores,
    n: int,
    seen_indptr=None,
    seen_indices=None,
    exclude_items=None,
    num_threads: int | None = None,
    *,
    seen=None,
):
    """Top-`n` of a dense score matrix (users x items, float32) from any model, with the same
    masking, ordering and padding as :meth:`Model.recommend`: each row's `seen` items (a CSR
    matrix, or its `seen_indptr` / `seen_indices` arrays) and `exclude_items` are left out.
    Returns int64 ids and float32 scores of shape (users, n). NaN scores are an error."""
    s = np.asarray(scores)
    if s.size and s.dtype.kind not in "biuf":
        raise TypeError(f"scores must be numeric, got dtype {s.dtype}")
    if s.ndim != 2:
        raise TypeError(f"scores must be 2-D (users x items), got {s.ndim}-D")
    if (seen_indptr is None) != (seen_indices is None):
        raise TypeError("give seen_indptr and seen_indices together")
    if seen_indptr is not None:
        if seen is not None:
            raise TypeError("give seen= or seen_indptr / seen_indices, not both")
        p, i = np.asarray(seen_indptr), np.asarray(seen_indices)
        if p.dtype.kind not in "iu" or (i.size and i.dtype.kind not in "iu"):
            raise TypeError("seen_indptr and seen_indices must hold integers")
        seen = sp.csr_matrix(
            (np.ones(len(i), np.float32), i.astype(np.int64), p.astype(np.int64)),
            shape=(max(len(p) - 1, 0), s.shape[1]),
        )
    return _core.top_n(
        np.ascontiguousarray(s, dtype=np.float32),
        integer("n", n),
        None if seen is None else csr("seen", seen),
        item_set("exclude_items", exclude_items),
        optional_integer("num_threads", num_threads),
    )


def load(path) -> Model:
    """Loads a model written by ``save``: a directory, or one archive (a binary file object or
    the path of a file, see :meth:`Model.save`). The manifest is read once, and the format
    version, the kind, every tensor's name, dtype and shape, finiteness, the item ids and the
    weights' sha256 are validated. Returns the family's class (``MultVAE``, ``AMPCF``, ``EASE``,
    ``GraphFilter``, ``Popularity``), ready to serve.

    Raises ``FileNotFoundError`` when the directory or a file it names does not exist,
    :class:`personae.ModelFormatError` naming the problem when a file is inconsistent or
    corrupt, and ``OSError`` for other read failures."""
    # Every family registers itself when its module is imported, and importing any part of
    # the package imports them all (personae/__init__.py): no registering imports here.
    return Model.load(path)
