"""Argument checks shared by the public functions: each error names the argument, what was
expected and what was found."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def optional_threads(num_threads) -> int | None:
    return None if num_threads is None else positive_int("num_threads", num_threads)


def csr_parts(name: str, m, n_cols: int | None = None):
    """(indptr int64, indices int32, data float32, shape) of a scipy sparse matrix (or
    `Interactions`), converting dtypes but not structure: the Rust core checks sortedness,
    duplicates, ranges and finiteness."""
    from personae.data import Interactions

    if isinstance(m, Interactions):
        m = m.matrix
    if not sp.issparse(m):
        raise TypeError(
            f"{name} must be a scipy.sparse matrix (users x items), got {type(m).__name__}; "
            "for one user's items use scipy.sparse.csr_matrix((values, (rows, cols)), shape=...)"
        )
    if m.format != "csr":
        m = m.tocsr()
    if m.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got {m.ndim}-D")
    if n_cols is not None and m.shape[1] != n_cols:
        raise ValueError(f"{name} has {m.shape[1]} columns but the model has {n_cols} items")
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numeric weights, got dtype {m.dtype}")
    if m.indices.size and (m.indices.max() >= 2**31):
        raise ValueError(f"{name}: column indices must fit in int32")
    return (
        np.ascontiguousarray(m.indptr, dtype=np.int64),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        np.ascontiguousarray(m.data, dtype=np.float32),
        m.shape,
    )


def item_mask(name: str, items, n_items: int) -> np.ndarray | None:
    """A boolean mask over the catalogue from an array of item indices (or None)."""
    if items is None:
        return None
    arr = np.asarray(items)
    if arr.dtype == bool:
        if arr.shape != (n_items,):
            raise ValueError(
                f"{name}: a boolean mask must have shape ({n_items},), got {arr.shape}"
            )
        return np.ascontiguousarray(arr)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer item indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).ravel()
    if arr.size and (arr.min() < 0 or arr.max() >= n_items):
        bad = arr[(arr < 0) | (arr >= n_items)][:5].tolist()
        raise ValueError(f"{name}: item indices {bad} are outside 0..{n_items}")
    mask = np.zeros(n_items, dtype=bool)
    mask[arr] = True
    return mask
