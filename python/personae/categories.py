"""Item categories as one object, tied to the items they describe.

A :class:`Categories` holds an ``n_items x n_categories`` non-negative weight matrix (genre
flags, topic weights, a model's taste clusters) **in the model's item order**, the category
names and, when it was built from a table keyed by item id, those item ids. The calibrated
reranker (:class:`personae.CalibratedReranker`) and the calibration metrics
(:mod:`personae.metrics`) take it wherever they take ``item_categories``.

**The item-order contract.** Row i describes the item that is column i of the histories and
the item index i of the candidate lists the reranker and the metrics are given. A plain matrix
carries nothing that could check this; that is how a genre table in its file's own order
silently produces wrong lists. Build from the table instead:

>>> genres = Categories.from_frame(df, "item", "genre", item_ids=model.item_ids)  # doctest: +SKIP

which maps the table's rows onto ``item_ids`` by the id rule of :mod:`personae.data` (ids are
compared as text: ``7`` and ``"7"`` are one id) and remembers the ids, so that an
:class:`~personae.Interactions` history or truth over other items (or the same items in another
order) raises :class:`personae.InvalidInputError` instead of giving wrong lists.

Two table layouts:

- long: one row per (item, category) pair; ``category_cols`` is the *name of the one column*
  holding the category label (``"genre"``), an optional ``weight_col`` gives each pair's
  weight (pairs repeated are summed; without it every pair is a flag of weight 1, counted once),
  and ``split="|"`` reads cells holding several labels (MovieLens' ``Adventure|Comedy``);
- wide: one row per item and one column per category (MovieLens-100K's 19 genre flags);
  ``category_cols`` is the *list of those columns*, whose values (0/1 flags or weights) are
  the matrix and whose names are the category names.

The matrix holds raw weights: the reranker divides each row by its sum
(``normalize_rows=True``, its default), so 0/1 flags become distributions there.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import scipy.sparse as sp

from personae import _core
from personae.data import Vocabulary, _null_mask, as_ids, read_table

__all__ = ["Categories", "same_items"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_UNKNOWN = ("raise", "ignore", "auto")
_MISSING = ("raise", "empty")


def _invalid(msg: str) -> Exception:
    return _core.InvalidInputError(msg)


def _scalar(x):
    return x.item() if hasattr(x, "item") else x


def same_items(expected: np.ndarray, given: np.ndarray, what: str, owner: str) -> None:
    """Raises InvalidInputError unless `given` are the ids `expected`, in that order (by the id
    rule: compared as text, so 7 and "7" are one id). `what` names the data, `owner` the side
    whose ids are expected."""
    if len(given) == len(expected) and np.array_equal(given, expected):
        return
    if len(given) == len(expected):
        a, b = expected.astype(str), given.astype(str)
        if np.array_equal(a, b):
            return
        at = int(np.flatnonzero(a != b)[0])
        detail = (
            f"column {at} is item {_scalar(given[at])!r}, row {at} of the {owner} is item "
            f"{_scalar(expected[at])!r}"
        )
    else:
        detail = f"{len(given)} items, {len(expected)} in the {owner}"
    raise _invalid(
        f"{what} has other item ids than the {owner} ({detail}); build both on the same items "
        "in the same order, e.g. Interactions.read(..., item_ids=model.item_ids) and "
        "Categories.from_frame(..., item_ids=model.item_ids)"
    )


def _weights(name: str, values) -> np.ndarray:
    """Finite, non-negative float64 weights that fit float32, or a clear error."""
    a = np.asarray(values)
    if a.size and a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if a.size and not np.isfinite(a).all():
        raise _invalid(f"{name} must be finite (found NaN or inf)")
    if a.size and (a < 0).any():
        raise _invalid(f"{name} must be non-negative (found {a[a < 0].flat[0]!r})")
    if a.size and (a > _FLOAT32_MAX).any():
        raise _invalid(f"{name}: weights beyond float32's largest value; rescale them")
    return a


def _as_csr(matrix) -> sp.csr_matrix:
    """A validated canonical float32 CSR copy of a dense or sparse 2-D weight matrix."""
    if sp.issparse(matrix):
        m = sp.csr_matrix(matrix, copy=True)
        if m.dtype.kind not in "biuf":
            raise TypeError(f"the category matrix must hold numbers, got dtype {m.dtype}")
        m.data = _weights("the category matrix", m.data)
    else:
        if isinstance(matrix, (str, bytes)) or not hasattr(matrix, "__len__"):
            raise TypeError(
                "the category matrix must be a 2-D array or a scipy.sparse matrix "
                f"(items x categories), got {type(matrix).__name__}"
            )
        a = np.asarray(matrix)
        if a.ndim != 2:
            raise _invalid(f"the category matrix must be 2-D (items x categories), got {a.ndim}-D")
        m = sp.csr_matrix(_weights("the category matrix", a))
    if m.ndim != 2:  # pragma: no cover - scipy sparse is always 2-D
        raise _invalid("the category matrix must be 2-D (items x categories)")
    m = m.astype(np.float32)
    m.sum_duplicates()
    m.sort_indices()
    m.eliminate_zeros()
    return m


class Categories:
    """Item categories built once: an items x categories non-negative weight matrix in the
    model's item order, the category names and (from a table) the item ids of its rows.

    >>> genres = Categories.from_frame(movies, "item", "genre", item_ids=model.item_ids)
    ...                                                    # doctest: +SKIP
    >>> rr = CalibratedReranker(genres)                    # doctest: +SKIP
    >>> personae.metrics.miscalibration(ids, genres, history=train)  # doctest: +SKIP

    Args:
        matrix: items x categories weights (dense array or scipy sparse), row i being the
            model's item i (item index i of lists, column i of histories); finite and
            non-negative. A model's taste clusters (``AMPCF.taste_categories()``) are one.
        names: one name per category (default ``"0"``, ``"1"``, ...), distinct.
        item_ids: optionally, the id of each row's item (e.g. ``model.item_ids``), which the
            reranker and the metrics check an :class:`~personae.Interactions` history against.

    The reranker and metrics keep the conversions they make from a Categories, so one passed
    to many calls is validated and converted once.
    """

    def __init__(self, matrix, names=None, *, item_ids=None):
        self._csr = _as_csr(matrix)
        g = self._csr.shape[1]
        names = [str(k) for k in range(g)] if names is None else [_scalar(x) for x in names]
        if len(names) != g:
            raise _invalid(f"names: {len(names)} names for {g} categories")
        text = [str(x) for x in names]
        if len(set(text)) != len(text):
            dup = next(x for k, x in enumerate(text) if x in text[:k])
            raise _invalid(f"names: category {dup!r} appears more than once")
        self._names = names
        if item_ids is not None:
            item_ids = Vocabulary(item_ids, "item").ids  # the id rule, and no duplicates
            if len(item_ids) != self._csr.shape[0]:
                raise _invalid(
                    f"item_ids: {len(item_ids)} ids for the matrix's {self._csr.shape[0]} rows"
                )
        self._item_ids = item_ids
        # The rerankers personae.metrics measures with, by their settings (filled there): a
        # Categories passed to many metric calls is converted and validated once.
        self._rerankers: dict = {}

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        df,
        item_col: str = "item",
        category_cols="category",
        *,
        item_ids=None,
        weight_col: str | None = None,
        split: str | None = None,
        unknown: str = "raise",
        missing: str = "raise",
        source: str | None = None,
    ) -> Categories:
        """Categories from a table keyed by item id (pandas or polars DataFrame).

        Args:
            df: the table.
            item_col: its item id column.
            category_cols: long format: the name (a string) of the column holding each row's
                category label (an empty cell lists the item with no category); wide format:
                a list of column names, one per category, whose values are the weights (0/1
                flags).
            item_ids: the model's item ids (``model.item_ids``): row i of the matrix is the
                item ``item_ids[i]``, ids compared as text (the id rule of
                :mod:`personae.data`). Default: the table's distinct ids, sorted (the order
                :class:`~personae.Interactions` gives when it builds its own vocabulary).
            weight_col: long format only: the weight of each (item, category) row; pairs given
                twice are summed. Without it each pair is a flag (weight 1, counted once).
            split: long format only: a separator for cells holding several labels (``"|"`` for
                MovieLens' ``Adventure|Comedy``).
            unknown: what to do with rows whose item is not in `item_ids`: ``"raise"``
                (:class:`personae.InvalidInputError` naming the first such id), ``"ignore"``
                (drop them; e.g. a catalogue table larger than the model's items), or
                ``"auto"`` (drop them with a warning when at least half of the table's rows
                are known, raise otherwise: mostly unknown ids mean the ids are written
                differently, '007' vs '7').
            missing: what to do with items of `item_ids` that the table does not list:
                ``"raise"`` (naming the first one) or ``"empty"`` (no category: an empty row).
            source: a file name for error messages.
        """
        if unknown not in _UNKNOWN:
            raise ValueError(f"unknown must be one of {_UNKNOWN}, got {unknown!r}")
        if missing not in _MISSING:
            raise ValueError(f"missing must be one of {_MISSING}, got {missing!r}")
        wide = not isinstance(category_cols, str)
        cols = list(category_cols) if wide else [category_cols]
        if wide and not cols:
            raise ValueError("category_cols: give at least one category column")
        if wide and (weight_col is not None or split is not None):
            raise ValueError(
                "weight_col and split apply to the long format (category_cols a column name); "
                "in the wide format the category columns' values are the weights"
            )
        where = f" of {source}" if source else ""
        have = list(df.columns)
        for c in [item_col, *cols] + ([weight_col] if weight_col else []):
            if c not in have:
                inside = f" in {source}" if source else ""
                raise ValueError(f"column {c!r} not found{inside}; the table has columns {have}")
        items = as_ids(np.asarray(df[item_col]), item_col, source)
        if wide:
            values = np.column_stack([_weights(f"column {c!r}{where}", df[c]) for c in cols])
            names = cols
            rows, cats = np.nonzero(values)
            w = values[rows, cats]
        else:
            labels = np.asarray(df[category_cols])
            # An empty label (a null cell) lists the item without a category.
            rows = np.flatnonzero(~_null_mask(labels))
            labels = labels[rows]
            if split is not None:
                parts = [[s for s in str(x).split(split) if s] for x in labels]
                rows = np.repeat(rows, [len(p) for p in parts])
                labels = np.array([s for p in parts for s in p], dtype=str)
            vocab, cats = Vocabulary.fit(labels, category_cols, source)
            names = list(vocab.ids)
            if weight_col is None:
                w = np.ones(len(rows))
            else:
                w = _weights(f"column {weight_col!r}{where}", df[weight_col])[rows]
        if item_ids is None:
            vocab_items, codes = Vocabulary.fit(items, item_col, source)
            item_ids = vocab_items.ids
        else:
            vocab_items = Vocabulary(item_ids, "item")
            item_ids = vocab_items.ids
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                codes, known = vocab_items.lookup(items, column=item_col, drop_unknown=True)
            if not known.all():
                _unknown_rows(items, known, unknown, len(item_ids), item_col, where)
        if wide:
            uniq, counts = np.unique(codes[codes >= 0], return_counts=True)
            if (counts > 1).any():
                raise _invalid(
                    f"column {item_col!r}{where}: item {_scalar(item_ids[uniq[counts > 1][0]])!r} "
                    "has more than one row (the wide format has one row per item)"
                )
        listed = np.zeros(len(item_ids), bool)
        listed[codes[codes >= 0]] = True
        if missing == "raise" and not listed.all():
            gone = np.flatnonzero(~listed)
            raise _invalid(
                f"{len(gone)} of the {len(item_ids)} items have no row in the categories "
                f"table{where} (the first: item {_scalar(item_ids[gone[0]])!r}); pass "
                "missing='empty' to give them no category"
            )
        item_of_row = codes[rows]
        keep = item_of_row >= 0
        m = sp.csr_matrix(
            (w[keep], (item_of_row[keep], np.asarray(cats)[keep])),
            shape=(len(item_ids), len(names)),
        )
        m.sum_duplicates()
        if not wide and weight_col is None and m.nnz:
            m.data[:] = 1.0  # a pair listed twice is still one flag
        return cls(m, names, item_ids=item_ids)

    @classmethod
    def read(
        cls,
        path: str | os.PathLike,
        item_col: str = "item",
        category_cols="category",
        *,
        sep: str | None = None,
        names=None,
        **kw,
    ) -> Categories:
        """:meth:`from_frame` of a CSV/TSV or Parquet file (read by
        :func:`personae.data.read_table`: item ids and long-format labels of delimited text
        are read as text). `names` are the column names of a file without a header row; the
        other arguments are :meth:`from_frame`'s."""
        text = (item_col,) if not isinstance(category_cols, str) else (item_col, category_cols)
        df = read_table(path, sep=sep, text_columns=text, names=names)
        return cls.from_frame(df, item_col, category_cols, source=str(path), **kw)

    # -- properties ----------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        """Number of items (rows)."""
        return self._csr.shape[0]

    @property
    def n_categories(self) -> int:
        """Number of categories (columns)."""
        return self._csr.shape[1]

    @property
    def names(self) -> list:
        """The category names, one per column."""
        return list(self._names)

    @property
    def item_ids(self) -> np.ndarray | None:
        """The id of each row's item, or None when built from a bare matrix."""
        return None if self._item_ids is None else self._item_ids.copy()

    @property
    def matrix(self) -> sp.csr_matrix:
        """A copy of the items x categories weights (scipy CSR, float32)."""
        return self._csr.copy()

    def __repr__(self) -> str:
        ids = "" if self._item_ids is None else ", with item ids"
        return f"Categories({self.n_items} items x {self.n_categories} categories{ids})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Categories):
            return NotImplemented
        same_ids = (self._item_ids is None) == (other._item_ids is None) and (
            self._item_ids is None
            or np.array_equal(self._item_ids.astype(str), other._item_ids.astype(str))
        )
        return (
            self._csr.shape == other._csr.shape
            and (self._csr != other._csr).nnz == 0
            and [str(x) for x in self._names] == [str(x) for x in other._names]
            and same_ids
        )

    __hash__ = None  # mutable cache inside; equality is by value

    def __getstate__(self) -> dict:
        # The Rust rerankers are rebuilt on demand after unpickling (e.g. on a Ray worker).
        return {"csr": self._csr, "names": self._names, "item_ids": self._item_ids}

    def __setstate__(self, state: dict) -> None:
        self._csr, self._names = state["csr"], state["names"]
        self._item_ids, self._rerankers = state["item_ids"], {}

    # -- for the reranker and the metrics ------------------------------------------------------
    def check_items(self, data, what: str) -> None:
        """Raises InvalidInputError when `data` (an :class:`~personae.Interactions`, or
        anything with ``item_ids``) is over other items, or the same in another order, than
        this object's rows. Bare matrices, and Categories built without item ids, carry
        nothing to check."""
        given = getattr(data, "item_ids", None)
        if self._item_ids is None or given is None or sp.issparse(data):
            return
        same_items(self._item_ids, np.asarray(given), what, "categories")


def _unknown_rows(items, known, policy: str, n_ids: int, item_col: str, where: str) -> None:
    """Applies the `unknown` policy of :meth:`Categories.from_frame` to rows not in item_ids."""
    n_bad = int((~known).sum())
    first = _scalar(items[~known][0])
    msg = (
        f"{n_bad} of the {len(items)} rows of the categories table{where} name items not in "
        f"item_ids ({n_ids} items; column {item_col!r}, the first: item {first!r})"
    )
    if policy == "ignore":
        return
    mostly_unknown = known.mean() < 0.5
    if policy == "auto" and not mostly_unknown:
        warnings.warn(f"{msg}: dropped those rows", stacklevel=3)
        return
    if mostly_unknown:
        msg += "; do the ids use the same format as item_ids (text vs numbers, zero padding)?" + (
            " (unknown='ignore' drops them however many)" if policy == "auto" else ""
        )
    if policy == "raise":
        msg += (
            "; pass unknown='ignore' to drop those rows (e.g. a catalogue table larger than the "
            "model's items)"
        )
    raise _invalid(msg)
