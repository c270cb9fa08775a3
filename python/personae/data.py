"""Interactions, ids, files, seeded splits, and the synthetic multi-persona generator.

Everything here is arrays in, arrays out: external user/item ids are mapped once to dense
indices by a :class:`Vocabulary`, and the user x item matrix is a canonical scipy CSR (sorted,
no duplicates, float32).

**The id rule**, the same for every reader (CSV, TSV, Parquet, LightGCN text) and for the Python
API: an id is an integer or a string, and ids are compared by their text. ``7`` (an integer) and
``"7"`` are the same id; ``"007"`` is a different one. CSV/TSV id columns are read as text, so
they are never reinterpreted as numbers. LightGCN text is the exception its format makes: its ids
are integers (int64), so ``007`` there is ``7``; ids beyond int64 are an error naming the line
(read such a file as delimited text, ``sep=" "``, to keep them as text). Null ids (empty CSV
cells, None, NaN, pandas' NA) are an error that names the column and the number of rows.
Integers beyond int64 (uint64 ids such as ``2**64 - 1``, or Python ints) are kept as text ids,
by the same rule: their text is the id, never a wrapped negative number. Float ids are
integers only when they hold an exact integer below 2**53 (what a nullable integer column
becomes); larger floats (``1e20``) have lost their digits and are an error.

**The order** of a vocabulary built from data (the rows and columns of an :class:`Interactions`,
``model.item_ids``): integer ids by value; text ids by value too when every one of them is an
integer written plainly (``"1"``, ``"2"``, ..., ``"10"``, as a CSV column of numbers is read,
whatever its length), otherwise by text (code points: ``"007"``, ``"10"``, ``"7"``, ``"a"``). The
order never changes which ids are equal: that is the text rule above.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = [
    "Interactions",
    "StrongSplit",
    "SyntheticData",
    "TableWriter",
    "Vocabulary",
    "carve_validation",
    "holdout_split",
    "lists_from_long",
    "long_format",
    "read_table",
    "recency_weights",
    "strong_split",
    "synthetic",
    "write_recommendations",
    "write_table",
]


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_EXACT = 2.0**53  # every integer up to here is exactly representable as a float64
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_UMASK_LOCK = threading.Lock()


def _null_mask(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return np.isnan(a)
    if a.dtype.kind == "O":
        # pandas' NA (string and nullable columns) and NaT are nulls too, not ids.
        return np.array(
            [
                x is None
                or (isinstance(x, float) and x != x)
                or type(x).__name__ in ("NAType", "NaTType")
                for x in a
            ],
            bool,
        )
    return np.zeros(len(a), bool)


def as_ids(values, what: str = "ids", source: str | None = None) -> np.ndarray:
    """External ids as a 1-D int64 or str array: integers stay integers, strings stay strings
    (mixed columns become text); integral floats (what a nullable integer column becomes) are
    integers; nulls and other types are errors."""
    a = np.asarray(values)
    label = f"column {what!r} of {source}" if source else what
    if a.ndim != 1:
        raise ValueError(f"{label} must be 1-D, got shape {a.shape}")
    nulls = _null_mask(a)
    if nulls.any():
        rows = np.flatnonzero(nulls)
        raise ValueError(
            f"{label}: {len(rows)} null id(s) (first at row {rows[0]}); drop those rows "
            "or fill them in"
        )
    kind = a.dtype.kind
    if kind == "u" and a.size and a.max() > _INT64_MAX:
        return a.astype(str)  # beyond int64: the id is its text (module docstring)
    if kind in "iu":
        return a.astype(np.int64, copy=False)
    if kind == "f":
        if not (np.isfinite(a).all() and (a == np.round(a)).all()):
            raise ValueError(f"{label}: ids must be integers or strings, got floats")
        if a.size and np.abs(a).max() > _FLOAT_EXACT:
            raise ValueError(
                f"{label}: float ids beyond 2**53 (e.g. {a[np.abs(a) > _FLOAT_EXACT][0]!r}) are "
                "not exact integers (their digits are lost); read the ids as integers or text"
            )
        return a.astype(np.int64)
    if kind in "US":
        return a.astype(str)
    if kind == "O":
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in a):
            if all(_INT64_MIN <= int(x) <= _INT64_MAX for x in a):
                return a.astype(np.int64)
            return np.array([str(int(x)) for x in a])
        if all(isinstance(x, (str, int, np.integer)) and not isinstance(x, bool) for x in a):
            return a.astype(str)
    raise ValueError(f"{label}: ids must be integers or strings, got dtype {a.dtype}")


def _text(a: np.ndarray) -> np.ndarray:
    return a if a.dtype.kind == "U" else a.astype(str)


def _plain_integers(a: np.ndarray) -> np.ndarray:
    """Which text ids are integers written plainly: ASCII digits with an optional leading
    ``-``, no leading zeros, no ``+`` or spaces, of any length (``"18446744073709551615"``
    counts; ``"007"``, ``"-0"``, ``"+5"``, ``"1e3"`` and ``"١٢"`` do not). Vectorised over the
    code points; `a` is a 1-D str array."""
    a = np.ascontiguousarray(a, dtype=str)
    if not len(a) or a.itemsize == 0:
        return np.zeros(len(a), bool)
    cp = a.view(np.uint32).reshape(len(a), -1)
    length = np.char.str_len(a)
    neg = cp[:, 0] == ord("-")
    start = neg.astype(np.int64)
    pos = np.arange(cp.shape[1])
    body = (pos >= start[:, None]) & (pos < length[:, None])
    digits = ((cp >= ord("0")) & (cp <= ord("9"))) | ~body
    n_body = length - start
    lead = cp[np.arange(len(a)), np.minimum(start, cp.shape[1] - 1)]
    zero_lead = (lead == ord("0")) & ((n_body > 1) | neg)
    return digits.all(1) & (n_body >= 1) & ~zero_lead


def _id_order(uniq: np.ndarray) -> np.ndarray | None:
    """The permutation that puts distinct, sorted ids (``np.unique``'s output) in the
    vocabulary's order, or None when their sorted order is already it.

    Integer ids are already in value order. Text ids that are all plain integers (see
    :func:`_plain_integers`; what a CSV column of numbers is read as, since CSV ids are read as
    text) are put in value order, ``"1", "2", ..., "10"`` rather than ``"1", "10", "2"``, at
    any length (ids beyond int64 are never converted). Text ids of which any is not a plain
    integer (``"a"``, ``"007"``) keep their text order. The ids stay text either way: only
    their order changes, never how they are compared."""
    if uniq.dtype.kind != "U" or len(uniq) < 2 or not _plain_integers(uniq).all():
        return None
    # Plain integers compare by sign, then digit count, then text (for equal counts the text
    # order is the value order); a negative number is smaller the larger its magnitude.
    neg = np.char.startswith(uniq, "-")
    length = np.char.str_len(uniq).astype(np.int64)
    text_rank = np.arange(len(uniq))  # `uniq` is sorted by text
    return np.lexsort((np.where(neg, -text_rank, text_rank), np.where(neg, -length, length), ~neg))


class Vocabulary:
    """External ids <-> dense indices 0..n-1 (the id rule is in the module docstring).

    >>> v = Vocabulary(["b", "a"])      # doctest: +SKIP
    >>> v.lookup(["a", "c"], drop_unknown=True)   # doctest: +SKIP
    """

    def __init__(self, ids, what: str = "item"):
        self.ids = as_ids(ids, f"{what}_ids")
        self.what = what
        order = np.argsort(self.ids, kind="stable")
        keys = self.ids[order]
        if len(keys) > 1 and (keys[1:] == keys[:-1]).any():
            dup = keys[1:][keys[1:] == keys[:-1]][0]
            raise ValueError(f"{what}_ids: id {dup!r} appears more than once")
        self._order, self._keys = order, keys
        self._text = None  # sorted text keys, built on first mixed-type lookup

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def fit(cls, values, what: str = "item", source: str | None = None):
        """(the vocabulary of the distinct `values`, sorted; each value's index).

        The order (see :func:`_id_order`): integer ids by value; text ids that are all integers
        written plainly (``"1"``, ``"10"``, ``"-3"``, as a CSV column of numbers is read) by
        value too, so ``"2"`` comes before ``"10"``; any other text ids by text (code points),
        the plainly written integers among them included."""
        ids = as_ids(values, what, source)
        uniq, codes = np.unique(ids, return_inverse=True)
        order = _id_order(uniq)
        if order is not None:
            rank = np.empty(len(order), np.int64)
            rank[order] = np.arange(len(order))
            uniq, codes = uniq[order], rank[codes]
        return cls(uniq, what), codes.astype(np.int64)

    def lookup(
        self,
        values,
        *,
        column: str | None = None,
        source: str | None = None,
        drop_unknown: bool | str = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Indices of `values` (-1 for unknown ids) and the mask of known ones.

        `drop_unknown`: False raises on any unknown id; True drops them (with a warning that
        says how many); ``"auto"`` drops them when at least half of the values are known and
        raises otherwise. Errors name the `source` file, the `column` and some unknown ids."""
        v = as_ids(values, column or f"{self.what} ids", source)
        mixed = (v.dtype.kind == "U") != (self.ids.dtype.kind == "U")
        if mixed:
            if self._text is None:
                t = _text(self.ids)
                o = np.argsort(t, kind="stable")
                self._text = (o, t[o])
            order, keys, v = self._text[0], self._text[1], _text(v)
        else:
            order, keys = self._order, self._keys
        pos = np.searchsorted(keys, v)
        pos_c = np.minimum(pos, max(len(keys) - 1, 0))
        known = (pos < len(keys)) & (keys[pos_c] == v) if len(keys) else np.zeros(len(v), bool)
        codes = np.full(len(v), -1, np.int64)
        codes[known] = order[pos_c[known]]  # gathers nothing from an empty vocabulary
        n_bad = int((~known).sum())
        if n_bad:
            share = known.mean() if len(v) else 1.0
            where = " and ".join(
                x
                for x in (
                    f"column {column!r}" if column else "",
                    f"file {source}" if source else "",
                )
                if x
            )
            where = f" ({where})" if where else ""
            examples = [x.item() if hasattr(x, "item") else x for x in v[~known][:5]]
            msg = (
                f"{n_bad} of {len(v)} {self.what} ids{where} are not in the model's vocabulary "
                f"of {len(self)} {self.what}s (e.g. {examples})"
            )
            if drop_unknown is False or (drop_unknown == "auto" and share < 0.5):
                hint = (
                    "do the ids use the same format as training (text vs numbers, zero padding)? "
                    if share < 0.5
                    else ""
                )
                raise ValueError(f"{msg}; {hint}pass drop_unknown=True to drop those rows")
            warnings.warn(f"{msg}: dropped those rows", stacklevel=2)
        return codes, known


@dataclass(frozen=True)
class Interactions:
    """A user x item interaction matrix with its external ids.

    Attributes:
        matrix: canonical CSR, shape (n_users, n_items), float32 weights (1.0 for implicit data;
            repeated (user, item) pairs are summed).
        user_ids: external id of each row (int64 or str).
        item_ids: external id of each column (int64 or str).
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def n_users(self) -> int:
        """Number of users (rows of the matrix)."""
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        """Number of items (columns of the matrix)."""
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        """Number of interactions (stored entries)."""
        return self.matrix.nnz

    def __repr__(self) -> str:
        return f"Interactions({self.n_users} users x {self.n_items} items, {self.nnz} interactions)"

    @classmethod
    def from_arrays(
        cls,
        users,
        items,
        weights=None,
        *,
        user_ids=None,
        item_ids=None,
        drop_unknown: bool | str = False,
        source: str | None = None,
        columns: tuple[str, str] = ("user", "item"),
    ) -> Interactions:
        """Builds interactions from parallel arrays of (user, item[, weight]).

        Args:
            users, items: external ids (integers or strings), one entry per interaction.
            weights: optional non-negative finite weights; 1.0 when omitted.
            user_ids, item_ids: fixed vocabularies to map onto (e.g. a test set onto the training
                set's items); by default the sorted distinct ids present.
            drop_unknown: with a fixed vocabulary, drop interactions whose ids are not in it
                (True), raise (False), or drop only when at least half are known ("auto").
            source, columns: the file and column names that error messages mention.
        """
        users, items = np.asarray(users), np.asarray(items)
        if users.ndim != 1 or items.ndim != 1 or len(users) != len(items):
            raise ValueError(
                f"users and items must be 1-D arrays of equal length, got shapes "
                f"{users.shape} and {items.shape}"
            )
        if weights is None:
            w = np.ones(len(users), dtype=np.float32)
        else:
            try:
                w = np.asarray(weights, dtype=np.float64)
            except (TypeError, ValueError) as e:
                where = f"the weights of {source}" if source else "weights"
                raise ValueError(
                    f"{where} must hold numbers ({e}); an empty cell is a missing weight: "
                    "fill it or drop the row"
                ) from None
            if w.shape != users.shape:
                raise ValueError(f"weights must have shape {users.shape}, got {w.shape}")
            if not np.isfinite(w).all():
                raise ValueError("weights must be finite (found NaN or inf)")
            if (w < 0).any():
                raise ValueError("weights must be non-negative")
            if (w > _FLOAT32_MAX).any():
                raise ValueError(
                    f"weights above float32's largest value ({_FLOAT32_MAX:.4g}) would be stored "
                    f"as inf (e.g. {w[w > _FLOAT32_MAX][0]:.4g}); rescale them"
                )
            w = w.astype(np.float32)
        keep = np.ones(len(users), bool)
        coded = []
        for vals, given, what, col in (
            (users, user_ids, "user", columns[0]),
            (items, item_ids, "item", columns[1]),
        ):
            if given is None:
                vocab, codes = Vocabulary.fit(vals, col, source)
            else:
                vocab = given if isinstance(given, Vocabulary) else Vocabulary(given, what)
                codes, known = vocab.lookup(
                    vals, column=col, source=source, drop_unknown=drop_unknown
                )
                keep &= known
            coded.append((vocab, codes))
        (uv, uc), (iv, ic) = coded
        m = sp.csr_matrix(
            (w[keep], (uc[keep], ic[keep])), shape=(len(uv), len(iv)), dtype=np.float32
        )
        m.sum_duplicates()
        m.sort_indices()
        if not np.isfinite(m.data).all():
            bad = np.flatnonzero(~np.isfinite(m.data))[0]
            row = int(np.searchsorted(m.indptr, bad, side="right") - 1)
            raise ValueError(
                f"the repeated pair (user {uv.ids[row].item()!r}, item "
                f"{iv.ids[m.indices[bad]].item()!r}) sums to a weight beyond float32 (inf); "
                "rescale the weights or deduplicate the pairs"
            )
        return cls(m, uv.ids, iv.ids)

    @classmethod
    def from_dataframe(
        cls, df, user_col: str = "user", item_col: str = "item", weight_col: str | None = None, **kw
    ) -> Interactions:
        """From a pandas (or polars) DataFrame with user, item and optional weight columns."""
        cols = list(df.columns)
        for c in (user_col, item_col) + ((weight_col,) if weight_col else ()):
            if c not in cols:
                src = kw.get("source")
                raise ValueError(
                    f"column {c!r} not found{f' in {src}' if src else ''}; the data has "
                    f"columns {cols}"
                )
        w = np.asarray(df[weight_col]) if weight_col else None
        return cls.from_arrays(
            np.asarray(df[user_col]),
            np.asarray(df[item_col]),
            w,
            columns=(user_col, item_col),
            **kw,
        )

    @classmethod
    def from_lightgcn(cls, path: str | os.PathLike, **kw) -> Interactions:
        """Reads the LightGCN text format: one line per user, ``user item item ...``."""
        df = read_table(path)
        return cls.from_arrays(df["user"].to_numpy(), df["item"].to_numpy(), source=str(path), **kw)

    @classmethod
    def read(
        cls,
        path: str | os.PathLike,
        user_col: str = "user",
        item_col: str = "item",
        weight_col: str | None = None,
        sep: str | None = None,
        names=None,
        **kw,
    ) -> Interactions:
        """Reads a CSV/TSV, Parquet or LightGCN ``.txt`` file, chosen by extension (see
        :func:`read_table`; id columns of CSV/TSV files are read as text).

        A file without a header row (MovieLens' ``u.data``) is read with `names`, the names of
        its columns in order, e.g. ``Interactions.read("u.data", sep="\t", names=["user",
        "item", "rating", "ts"], weight_col="rating")``; ``columns=`` is accepted as another
        spelling of `names`. With `sep`, any extension is read as delimited text."""
        if names is None and kw.get("columns") is not None:
            names = kw.pop("columns")  # what a reader means here: the file's column names
        if Path(path).suffix.lower() == ".txt" and sep is None and names is None:
            return cls.from_lightgcn(path, **kw)
        df = read_table(path, sep=sep, text_columns=(user_col, item_col), names=names)
        if names is None and (user_col not in df.columns or item_col not in df.columns):
            cols = list(df.columns)
            raise ValueError(
                f"column {(user_col if user_col not in cols else item_col)!r} not found in "
                f"{path}; the file has columns {cols}. If the file has no header row, give its "
                "column names: names=['user', 'item', ...] (CLI: --names user,item,...)"
            )
        if not len(df):  # as for LightGCN text: a file of no interactions is not data
            raise ValueError(f"{path}: no interactions found (a header and no rows)")
        return cls.from_dataframe(df, user_col, item_col, weight_col, source=str(path), **kw)

    def users(self, rows) -> Interactions:
        """The sub-matrix of the given row indices (or of a boolean mask over the users), with
        the same items."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (self.n_users,):
                raise ValueError(
                    f"a boolean mask over the users must have {self.n_users} entries, "
                    f"got shape {rows.shape}"
                )
            rows = np.flatnonzero(rows)
        elif rows.size and rows.dtype.kind not in "iu":
            raise TypeError(f"rows must be row indices or a boolean mask, got dtype {rows.dtype}")
        rows = rows.astype(np.int64)
        return Interactions(self.matrix[rows], self.user_ids[rows], self.item_ids)

    def to_arrays(self):
        """(user_ids, item_ids, weights) of every interaction, in row order."""
        coo = self.matrix.tocoo()
        return self.user_ids[coo.row], self.item_ids[coo.col], coo.data

    def to_frame(self, user_col: str = "user", item_col: str = "item", weight_col=None):
        """Every interaction as a pandas DataFrame row, in row order, with the external ids:
        the inverse of :meth:`from_dataframe` (with `weight_col`, the weights too), e.g. to
        write a split with :func:`write_table`."""
        import pandas as pd

        users, items, weights = self.to_arrays()
        cols = {user_col: users, item_col: items}
        if weight_col is not None:
            cols[weight_col] = weights
        return pd.DataFrame(cols)


_TABLES = (".csv", ".tsv", ".parquet", ".txt")


def read_table(path: str | os.PathLike, sep: str | None = None, text_columns=(), names=None):
    """A CSV/TSV, Parquet or LightGCN ``.txt`` file as a pandas DataFrame, by extension.

    CSV/TSV columns named in `text_columns` are read as text (ids are never reinterpreted as
    numbers; only empty cells are null). LightGCN text gives integer ``user`` and ``item``
    columns, one row per interaction. With `sep` or `names`, the file is delimited text whatever
    its extension; `names` are the column names of a file without a header row. Parquet needs
    pyarrow (the ``io`` extra): without it, an ``ImportError`` says which extra to install."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    suffix = p.suffix.lower()
    delimited = sep is not None or names is not None
    if suffix not in _TABLES and not delimited:
        raise ValueError(
            f"{p}: unknown format {suffix!r} (use {', '.join(_TABLES)}, or give the separator "
            "for delimited text)"
        )
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("reading files needs pandas: pip install 'personae[io]'") from e
    if suffix == ".txt" and not delimited:
        users, items = [], []
        with open(p, encoding="utf-8-sig") as f:  # a byte-order mark is not part of an id
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    vals = np.array(parts, dtype=np.int64)
                except (ValueError, OverflowError) as e:
                    raise ValueError(
                        f"{p}:{lineno}: expected int64 integers 'user item ...': {e}"
                    ) from e
                users.append(np.full(len(vals) - 1, vals[0]))
                items.append(vals[1:])
        if not users:
            raise ValueError(f"{p}: no interactions found")
        return pd.DataFrame({"user": np.concatenate(users), "item": np.concatenate(items)})
    if suffix == ".parquet" and not delimited:
        _need_parquet()
        return pd.read_parquet(p)
    sep = sep or ("\t" if suffix == ".tsv" else ",")
    text = {c: str for c in text_columns}
    header = {} if names is None else {"header": None, "names": list(names)}
    try:
        return pd.read_csv(
            p,
            sep=sep,
            dtype=text,
            keep_default_na=False,
            na_values={c: [""] for c in text},
            **header,
        )
    except pd.errors.EmptyDataError:
        raise ValueError(f"{p}: the file is empty (no header, no rows)") from None


def _need_parquet() -> None:
    """A one-line ImportError naming the extra when no Parquet engine is installed."""
    for engine in ("pyarrow", "fastparquet"):
        try:
            __import__(engine)
            return
        except ImportError:
            continue
    raise ImportError(
        "Parquet files need pyarrow: pip install 'personae[io]' (or use .csv / .tsv files)"
    )


def write_table(df, path: str | os.PathLike) -> Path:
    """Writes a DataFrame as Parquet, CSV or TSV (by extension) atomically: a temporary file in
    the same directory, then a rename. The file's mode follows the umask, as ``open``'s would."""
    import tempfile

    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv", ".tsv"):
        raise ValueError(f"{out}: unknown output format (use .parquet, .csv or .tsv)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if suffix == ".parquet":
            _need_parquet()
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",")
        readable(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


class TableWriter:
    """Writes one table in pieces, for outputs too large to hold at once (``personae recommend``
    over millions of users): each :meth:`write` appends a DataFrame's rows, as CSV/TSV text
    (the header once) or as one Parquet row group (pyarrow's ``ParquetWriter``), by the
    extension of `path`, so memory holds one piece at a time.

    Atomic as :func:`write_table`: the rows go to a temporary file in the same directory, renamed
    to `path` when the ``with`` block ends without an error; on an error (or Ctrl-C) the
    temporary file is removed and `path` is left as it was, so a crash never leaves a
    half-written file under the final name. Every piece must have the first one's columns (and,
    for Parquet, types the first piece's can be cast to); a table with no piece written is
    empty, with no columns.

    >>> with TableWriter("lists.parquet") as out:      # doctest: +SKIP
    ...     for frame in frames:
    ...         out.write(frame)
    """

    def __init__(self, path: str | os.PathLike):
        import tempfile

        self.path = Path(path)
        self.rows = 0
        suffix = self.path.suffix.lower()
        if suffix not in (".parquet", ".csv", ".tsv"):
            raise ValueError(f"{self.path}: unknown output format (use .parquet, .csv or .tsv)")
        self._parquet = suffix == ".parquet"
        self._sep = "\t" if suffix == ".tsv" else ","
        if self._parquet:
            try:
                import pyarrow.parquet  # noqa: F401
            except ImportError as e:
                raise ImportError(
                    "writing Parquet in pieces needs pyarrow: pip install 'personae[io]' (or "
                    "use .csv / .tsv files)"
                ) from e
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        os.close(fd)
        self._file = None if self._parquet else open(self._tmp, "w", newline="")  # noqa: SIM115
        self._writer = None  # the ParquetWriter, opened with the first piece's schema
        self._columns: list | None = None
        self._empty = None  # the first piece, kept only while every piece has been empty
        self._first = True

    def write(self, frame) -> None:
        """Appends the rows of pandas DataFrame `frame` (its index is not written)."""
        cols = list(frame.columns)
        if self._columns is None:
            self._columns = cols
        elif cols != self._columns:
            raise ValueError(
                f"{self.path}: every piece must have the columns {self._columns}, got {cols}"
            )
        if self._parquet:
            if len(frame) == 0:
                # An empty piece may not know its column types (pyarrow infers "null" for an
                # empty object column): it only matters when no rows come at all.
                if self._writer is None and self._empty is None:
                    self._empty = frame
                return
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._tmp, table.schema)
            elif not table.schema.equals(self._writer.schema):
                table = table.cast(self._writer.schema)
            self._writer.write_table(table)
        else:
            # The header goes with the first piece, even an empty one (it writes only that).
            frame.to_csv(self._file, index=False, sep=self._sep, header=self._first)
        self._first = False
        self.rows += len(frame)

    def _finish(self) -> None:
        if self._parquet:
            if self._writer is not None:
                self._writer.close()
            else:
                import pandas as pd

                empty = self._empty if self._empty is not None else pd.DataFrame()
                empty.to_parquet(self._tmp, index=False)
        else:
            self._file.close()
        readable(self._tmp)
        os.replace(self._tmp, self.path)

    def _abandon(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if self._file is not None:
                self._file.close()
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abandon()
            return
        try:
            self._finish()
        except BaseException:
            self._abandon()
            raise


def umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux's
    /proc/self/status), since ``os.umask`` can only be read by setting it, which races with
    other threads creating files."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def readable(path: str | os.PathLike) -> None:
    """Gives a file written through ``mkstemp`` (always mode 0600) the mode ``open`` would
    have given it: 0666 less the umask, so other users or nodes can read what personae writes
    exactly when the umask allows it."""
    os.chmod(path, 0o666 & ~umask())


def long_format(users, item_ids, ids, scores, **extra):
    """Top-N lists as a long DataFrame: ``user, item, score, rank`` (rank from 1) plus `extra`
    columns of the same ``(users, n)`` shape, one row per real entry (-1 padding dropped)."""
    import pandas as pd

    n = ids.shape[1]
    keep = ids.ravel() >= 0
    cols = {
        "user": np.repeat(np.asarray(users), n)[keep],
        "item": np.asarray(item_ids)[np.maximum(ids.ravel(), 0)][keep],
        "score": scores.ravel()[keep],
        "rank": np.tile(np.arange(1, n + 1), len(users))[keep],
    }
    cols.update({k: np.asarray(v).ravel()[keep] for k, v in extra.items()})
    return pd.DataFrame(cols)


def write_recommendations(
    model,
    user_items,
    path: str | os.PathLike,
    n: int = 20,
    *,
    batch_size: int = 10_000,
    explain: bool = False,
    show_progress: bool = False,
) -> int:
    """Writes every user's top-`n` list to `path` (.parquet, .csv or .tsv) in the long format of
    :func:`long_format` (``user, item, score, rank``, plus ``persona, taste_cluster`` with
    `explain`), scoring `batch_size` users at a time (:meth:`personae.Model.recommend_stream`)
    and appending each batch's rows to the file as it comes (:class:`TableWriter`: one Parquet
    row group or a run of CSV lines per batch, atomic on success). Returns the number of rows.

    Memory: the lists are never held for all users at once, only one batch's lists and rows;
    the input, `user_items` (an :class:`Interactions` on the model's items, e.g. read with
    ``item_ids=model.item_ids``, or a scipy sparse matrix whose rows are named by their index),
    is held whole, as a CSR (8 to 12 bytes an interaction: 1,000,000 users with 10 items
    each take 80 to 120 MB).

    `explain` (AMP-CF): each item's persona (its index among the user's personas) and that
    persona's taste cluster (the same for every user; -1 for none). `show_progress` draws a
    tqdm bar over the batches."""
    from personae._validate import integer

    n, batch_size = integer("n", n), integer("batch_size", batch_size)
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got {n} and {batch_size}")
    if explain and not hasattr(model, "personas"):
        raise ValueError(
            f"explain needs an AMP-CF model (the persona behind each item); this is a "
            f"{type(model).__name__}"
        )
    if isinstance(user_items, Interactions):
        rows, users, items = user_items.matrix, user_items.user_ids, user_items.item_ids
    else:
        rows, users, items = user_items, np.arange(user_items.shape[0]), None
    starts = range(0, rows.shape[0], batch_size)
    # Each batch of an Interactions stays one, so the model checks its item ids against its own.
    batches = (
        rows[s : s + batch_size]
        if items is None
        else Interactions(rows[s : s + batch_size], users[s : s + batch_size], items)
        for s in starts
    )
    if show_progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=len(starts), unit="batch", desc="recommend")
    kw = {"explain": True} if explain else {}
    with TableWriter(path) as out:
        for s, part in zip(starts, model.recommend_stream(batches, n, **kw), strict=True):
            who = users[s : s + batch_size]
            extra = {}
            if explain:
                # The persona index is per user; its taste cluster means the same for everyone.
                persona = part[2]
                taste = model.personas(rows[s : s + batch_size])["taste"]
                taste = np.take_along_axis(taste, np.maximum(persona, 0), 1)
                extra = {"persona": persona, "taste_cluster": np.where(persona >= 0, taste, -1)}
            out.write(long_format(who, model.item_ids, part[0], part[1], **extra))
    return out.rows


def lists_from_long(
    frame,
    user_ids,
    item_ids,
    n: int,
    *,
    user_col: str = "user",
    item_col: str = "item",
    rank_col: str = "rank",
    score_col: str = "score",
    source: str | None = None,
    drop_unknown: bool = False,
) -> np.ndarray:
    """Top-N lists in the long format (one row per listed item, as :func:`long_format` writes
    them, in any row order) as a padded ``(len(user_ids), n)`` matrix of item indices: row r is
    the list of user ``user_ids[r]``, its items as indices of `item_ids`, best first, cut at `n`
    and padded with -1. The inverse of :func:`long_format`.

    Each list is ordered by `rank_col` (ascending), or by `score_col` (best first) when the
    frame has no rank column. Rows of users outside `user_ids` are dropped, with a warning that
    counts them (a file of lists for more users than are evaluated); an item outside
    `item_ids` is an error naming `source`, the column and examples, unless `drop_unknown`
    (then its row is dropped, with a warning, and the items after it move up). Ids follow the
    id rule (7 and "7" are one id)."""
    from personae._validate import integer

    n = integer("n", n)
    cols = list(frame.columns)
    where = f"{source}: " if source else ""
    for c in (user_col, item_col):
        if c not in cols:
            raise ValueError(f"{where}no column {c!r}; columns are {cols}")
    order = rank_col if rank_col in cols else score_col
    if order not in cols:
        raise ValueError(
            f"{where}needs a {rank_col!r} or {score_col!r} column to order each list; columns "
            f"are {cols}"
        )
    users = user_ids if isinstance(user_ids, Vocabulary) else Vocabulary(user_ids, "user")
    items = item_ids if isinstance(item_ids, Vocabulary) else Vocabulary(item_ids, "item")
    u, known = users.lookup(
        frame[user_col].to_numpy(), column=user_col, source=source, drop_unknown=True
    )
    key = frame[order].to_numpy(dtype=np.float64)
    key = key if order == rank_col else -key  # rank ascending, score descending
    i, listed = items.lookup(
        frame[item_col].to_numpy(), column=item_col, source=source, drop_unknown=drop_unknown
    )
    known &= listed
    u, i, key = u[known], i[known], key[known]
    o = np.lexsort((key, u))
    u, i = u[o], i[o]
    pos = np.arange(len(u)) - np.searchsorted(u, u)  # position within the user's list
    keep = pos < n
    ids = np.full((len(users), n), -1, np.int64)
    ids[u[keep], pos[keep]] = i[keep]
    return ids


def _split_rows(m: sp.csr_matrix, fraction: float, rng: np.random.Generator):
    """Moves round(fraction * n) random entries of each row (keeping >= 1 when n >= 1) to a
    second matrix. Vectorised: one random key per entry, ranked within its row."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    n_out = np.floor(counts * fraction + 0.5).astype(np.int64)
    n_out = np.minimum(n_out, np.maximum(counts - 1, 0))
    keys = rng.random(m.nnz)
    order = np.lexsort((keys, rows))
    rank = np.empty(m.nnz, dtype=np.int64)
    rank[order] = np.arange(m.nnz) - np.repeat(m.indptr[:-1], counts)
    out = rank < n_out[rows]
    coo = m.tocoo()

    def part(mask):
        r = sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=m.shape)
        r.sort_indices()
        return r

    return part(~out), part(out)


def holdout_split(
    data: Interactions, test_fraction: float = 0.2, seed: int = 0
) -> tuple[Interactions, Interactions]:
    """Per-user holdout (weak generalisation, the LightGCN/BARS protocol).

    Each user's items are shuffled with `seed` and round(test_fraction * n) of them go to the
    test matrix; every user with at least one item keeps at least one for training. Both halves
    keep all users and items, so rows and columns align.
    """
    rng = np.random.default_rng(seed)
    tr, te = _split_rows(data.matrix, test_fraction, rng)
    return Interactions(tr, data.user_ids, data.item_ids), Interactions(
        te, data.user_ids, data.item_ids
    )


def carve_validation(m, n_users: int, fraction: float = 0.2, seed: int = 0):
    """A validation carve of a training matrix (users x items): up to `n_users` random users
    with at least two items each lose round(fraction * n) of their items (at least one kept),
    everyone else keeps all their data. Returns ``(fit, held, users)``: the fit matrix, the
    held-out matrix (same shape) and the sorted validation users with held-out items. AMP-CF's
    validation search and personae's benchmarks carve with it."""
    from personae._validate import csr

    m = csr("m", m)
    rng = np.random.default_rng(seed)
    live = np.flatnonzero(np.diff(m.indptr) > 1)
    users = np.sort(rng.choice(live, size=min(int(n_users), len(live)), replace=False))
    sel = sp.csr_matrix(
        (np.ones(len(users), m.dtype), (users, users)), shape=(m.shape[0], m.shape[0])
    )
    _, held = _split_rows((sel @ m).tocsr(), fraction, rng)
    fit = (m - held).tocsr()
    fit.eliminate_zeros()
    fit.sort_indices()
    return fit, held, users[np.diff(held.indptr)[users] > 0]


def recency_weights(users, times, strength: float = 1.0) -> np.ndarray:
    """Interaction weights toward each user's recent end, one per entry of `users` / `times`:
    ``exp(strength (z - 1))``, z the interaction's place among the user's own in time order
    (0 the first, 1 the last; equal times keep their input order; a user's only interaction
    has z = 1). Give them as the weights of :meth:`Interactions.from_arrays`, for the
    histories you fit on or recommend from. Strength 0 gives every interaction weight 1.

    On Gowalla, where the test items lean to the end of each history, ``strength=1`` (chosen
    on a carve that held out each history's end) raised NDCG@20 1.4%; on a random holdout it
    cost 3% (BENCHMARKS.md, "Gowalla's training lists are ordered"): choose it on a holdout
    of what your product predicts.

    Args:
        users: the interaction's user (ids of any kind), one per interaction.
        times: its time: numbers, ``datetime64`` or a pandas Series of (time-zone-aware)
            datetimes, same length; NaN or NaT is refused.
        strength: a, finite and >= 0.
    """
    from personae._validate import real

    strength = real("strength", strength)
    if not (np.isfinite(strength) and strength >= 0):
        raise ValueError(f"strength must be finite and >= 0, got {strength}")
    users = np.asarray(users)
    if getattr(getattr(times, "dt", None), "tz", None) is not None:  # zoned pandas datetimes
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)  # numpy has no time zones
    times = np.asarray(times)
    if users.ndim != 1 or times.ndim != 1 or len(users) != len(times):
        raise ValueError(
            f"users and times must be 1-D and of one length, got shapes {users.shape} and "
            f"{times.shape}"
        )
    if times.dtype.kind == "M":
        if np.isnat(times).any():
            raise ValueError(f"times: NaT at position {int(np.flatnonzero(np.isnat(times))[0])}")
        times = times.view(np.int64)  # one unit per array: the order is kept, nothing overflows
    elif times.dtype.kind == "f":
        bad = ~np.isfinite(times)
        if bad.any():
            raise ValueError(f"times: {times[bad][0]} at position {int(np.flatnonzero(bad)[0])}")
    elif times.dtype.kind not in "iub":
        raise TypeError(f"times must be numbers or datetime64, got dtype {times.dtype}")
    n = len(users)
    if n == 0:
        return np.ones(0, np.float64)
    _, group = Vocabulary.fit(users, "user")  # the id rule: 7 and "7" one user, nulls refused
    order = np.lexsort((np.arange(n), times, group))  # by user, then time, then input order
    counts = np.bincount(group)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    g = group[order]
    place = np.arange(n) - starts[g]
    z = np.empty(n)
    z[order] = np.where(counts[g] > 1, place / np.maximum(counts[g] - 1, 1), 1.0)
    return np.exp(strength * (z - 1.0))


@dataclass(frozen=True)
class StrongSplit:
    """Strong generalisation (Mult-VAE paper): training users, and held-out validation/test users
    whose items are split into a fold-in part (the model's input) and a held-out part (truth)."""

    train: Interactions
    val_in: Interactions
    val_out: Interactions
    test_in: Interactions
    test_out: Interactions


def strong_split(
    data: Interactions, n_heldout_users: int, holdout_fraction: float = 0.2, seed: int = 0
) -> StrongSplit:
    """Holds out `n_heldout_users` validation and as many test users, chosen with `seed`; their
    items are split 1 - holdout_fraction / holdout_fraction into fold-in / held-out."""
    if n_heldout_users < 1 or 2 * n_heldout_users >= data.n_users:
        raise ValueError(
            f"n_heldout_users must be in [1, n_users / 2), got {n_heldout_users} for "
            f"{data.n_users} users"
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(data.n_users)
    val, test, train = (
        np.sort(perm[:n_heldout_users]),
        np.sort(perm[n_heldout_users : 2 * n_heldout_users]),
        np.sort(perm[2 * n_heldout_users :]),
    )
    vi, vo = holdout_split(data.users(val), holdout_fraction, seed + 1)
    ti, to = holdout_split(data.users(test), holdout_fraction, seed + 2)
    return StrongSplit(data.users(train), vi, vo, ti, to)


@dataclass(frozen=True)
class SyntheticData:
    """A synthetic data set with its ground truth.

    Attributes:
        interactions: the observed user x item matrix.
        item_taste: the taste cluster of each item, shape (n_items,).
        user_mixture: each user's true taste shares, shape (n_users, n_tastes), rows sum to 1.
    """

    interactions: Interactions
    item_taste: np.ndarray
    user_mixture: np.ndarray

    def user_tastes(self, u: int) -> np.ndarray:
        """The tastes of user `u`, dominant first."""
        mix = self.user_mixture[u]
        nz = np.flatnonzero(mix)
        return nz[np.argsort(-mix[nz], kind="stable")]


def synthetic(
    n_users: int = 6000,
    n_items: int = 3000,
    n_tastes: int = 12,
    mean_items: float = 40.0,
    taste_count_probs=(0.25, 0.35, 0.25, 0.15),
    dominant_share=(0.55, 0.8),
    zipf: float = 1.0,
    seed: int = 0,
) -> SyntheticData:
    """Generates users who are mixtures of 1-4 latent tastes.

    Each item belongs to one taste cluster and has power-law popularity inside it (rank^-zipf).
    A user has k tastes with probability `taste_count_probs[k - 1]`: a dominant one holding a
    share drawn from `dominant_share`, and minority ones splitting the rest (Dirichlet). Each
    interaction picks a taste from the user's mixture, then an item by popularity within it;
    repeated picks are merged, so lengths vary around `mean_items` (log-normal, at least 5).
    """
    if n_users < 1 or n_items < n_tastes or n_tastes < 1:
        raise ValueError("need n_users >= 1 and n_items >= n_tastes >= 1")
    probs = np.asarray(taste_count_probs, dtype=np.float64)
    if probs.ndim != 1 or len(probs) < 1 or (probs < 0).any() or probs.sum() <= 0:
        raise ValueError("taste_count_probs must be non-negative with a positive sum")
    probs = probs / probs.sum()
    lo, hi = (float(x) for x in dominant_share)
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(
            f"dominant_share must be (low, high) with 0 < low <= high <= 1, got {dominant_share}"
        )
    if not (np.isfinite(mean_items) and mean_items > 0):
        raise ValueError(f"mean_items must be a positive number, got {mean_items}")
    if not (np.isfinite(zipf) and zipf >= 0):
        raise ValueError(f"zipf must be a finite number >= 0, got {zipf}")
    rng = np.random.default_rng(seed)
    item_taste = rng.permutation(np.arange(n_items) % n_tastes)
    # Popularity within each taste: a random rank per item, weight rank^-zipf.
    taste_items, taste_cdf = [], []
    for t in range(n_tastes):
        members = np.flatnonzero(item_taste == t)
        w = (1.0 + rng.permutation(len(members))) ** -zipf
        taste_items.append(members)
        taste_cdf.append(np.cumsum(w) / w.sum())
    k = 1 + rng.choice(len(probs), size=n_users, p=probs)
    k = np.minimum(k, n_tastes)
    mixture = np.zeros((n_users, n_tastes))
    lo, hi = dominant_share
    for u in range(n_users):  # a few microseconds per user; generation is not a hot path
        tastes = rng.choice(n_tastes, size=k[u], replace=False)
        if k[u] == 1:
            mixture[u, tastes[0]] = 1.0
            continue
        d = rng.uniform(lo, hi)
        rest = rng.dirichlet(np.full(k[u] - 1, 2.0)) * (1.0 - d)
        mixture[u, tastes[0]] = d
        mixture[u, tastes[1:]] = rest
    lengths = np.maximum(5, rng.lognormal(np.log(mean_items), 0.5, size=n_users).astype(np.int64))
    draws = (lengths * 1.25).astype(np.int64)  # oversample: repeats are merged below
    users = np.repeat(np.arange(n_users), draws)
    cum = np.cumsum(mixture, axis=1)
    r = rng.random(len(users))
    taste = np.empty(len(users), dtype=np.int64)
    step = 1 << 20  # chunks: cum[users] whole would be draws x n_tastes float64 (16 GB at 1M users)
    for s in range(0, len(users), step):
        taste[s : s + step] = (cum[users[s : s + step]] < r[s : s + step, None]).sum(axis=1)
    taste = taste.clip(max=n_tastes - 1)
    items = np.empty(len(users), dtype=np.int64)
    for t in range(n_tastes):
        sel = taste == t
        pick = np.searchsorted(taste_cdf[t], rng.random(sel.sum()))
        items[sel] = taste_items[t][np.minimum(pick, len(taste_items[t]) - 1)]
    key = np.unique(users * n_items + items)
    inter = Interactions.from_arrays(
        key // n_items, key % n_items, user_ids=np.arange(n_users), item_ids=np.arange(n_items)
    )
    return SyntheticData(inter, item_taste, mixture)
