"""Type conversion at the seam, and nothing more.

Each function turns what a user passed (lists, numpy scalars, scipy matrices of any format,
`Interactions`) into the one type the Rust core takes, or raises ``TypeError`` naming the
argument. Values (ranges, shapes, finiteness, CSR structure) are checked once, in the core.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

_I64 = np.iinfo(np.int64)


def integer(name: str, value) -> int:
    """A Python int from any integral type (bool is rejected: it is not a count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    v = int(value)
    if not _I64.min <= v <= _I64.max:
        raise TypeError(f"{name} = {v} does not fit a 64-bit integer")
    return v


def optional_integer(name: str, value) -> int | None:
    return None if value is None else integer(name, value)


def real(name: str, value) -> float:
    """A Python float from any real number type."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def csr(name: str, m) -> sp.csr_matrix:
    """A scipy CSR matrix with float32 data from any scipy sparse matrix or `Interactions`."""
    m = getattr(m, "matrix", m)  # Interactions
    if not sp.issparse(m):
        raise TypeError(
            f"{name} must be a scipy.sparse matrix (users x items), got {type(m).__name__}; "
            "for one user's items use scipy.sparse.csr_matrix((values, (rows, cols)), shape=...)"
        )
    if m.format != "csr":
        m = m.tocsr()
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numeric weights, got dtype {m.dtype}")
    if m.dtype != np.float32:
        m = m.astype(np.float32)
    if not (m.indices.dtype.isnative and m.indptr.dtype.isnative):
        # Arrays read from big-endian files keep their byte order; the core takes native ints.
        m = sp.csr_matrix(
            (
                m.data,
                m.indices.astype(m.indices.dtype.newbyteorder("=")),
                m.indptr.astype(m.indptr.dtype.newbyteorder("=")),
            ),
            shape=m.shape,
        )
    return m


def indices(name: str, x) -> np.ndarray:
    """A contiguous 1-D int64 array of indices (a scalar becomes one entry)."""
    a = np.asarray(x)
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer indices, got dtype {a.dtype}")
    if a.dtype.kind == "u" and a.size and a.max() > _I64.max:
        raise TypeError(f"{name}: indices must fit in int64")
    return np.ascontiguousarray(a.reshape(-1), dtype=np.int64)


def item_set(name: str, items) -> np.ndarray | None:
    """None, a boolean mask over the catalogue, or int64 item indices."""
    if items is None:
        return None
    a = np.asarray(items)
    if a.dtype == bool:
        return np.ascontiguousarray(a.reshape(-1))
    return indices(name, a)


def matrix(name: str, x, dtype) -> np.ndarray:
    """A C-contiguous 2-D array of `dtype` (numeric input; integer input for integer `dtype`)."""
    a = np.asarray(x)
    want_int = np.issubdtype(dtype, np.integer)
    if a.size and a.dtype.kind not in ("iu" if want_int else "biuf"):
        what = "integer item indices" if want_int else "numbers"
        raise TypeError(f"{name} must hold {what}, got dtype {a.dtype}")
    if a.ndim != 2:
        raise TypeError(f"{name} must be 2-D, got {a.ndim}-D")
    return np.ascontiguousarray(a, dtype=dtype)
