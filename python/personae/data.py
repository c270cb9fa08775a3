"""Interactions, loaders, seeded splits, and the synthetic multi-persona generator.

Everything here is arrays in, arrays out: external user/item ids are mapped once to dense
indices, and the user x item matrix is a canonical scipy CSR (sorted, no duplicates, float32).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = [
    "Interactions",
    "StrongSplit",
    "SyntheticData",
    "holdout_split",
    "strong_split",
    "synthetic",
]


def _vocab(ids: np.ndarray, given: np.ndarray | None, what: str, drop_unknown: bool):
    """Maps external ids to dense indices; with `given`, against that fixed vocabulary."""
    if given is None:
        vocab, codes = np.unique(ids, return_inverse=True)
        return vocab, codes.astype(np.int64), np.ones(len(ids), dtype=bool)
    vocab = np.asarray(given)
    order = np.argsort(vocab, kind="stable")
    sorted_vocab = vocab[order]
    if len(sorted_vocab) > 1 and (sorted_vocab[1:] == sorted_vocab[:-1]).any():
        raise ValueError(f"{what}_ids: the given vocabulary has duplicate ids")
    pos = np.searchsorted(sorted_vocab, ids)
    pos_c = np.minimum(pos, max(len(vocab) - 1, 0))
    known = (
        (pos < len(vocab)) & (sorted_vocab[pos_c] == ids)
        if len(vocab)
        else np.zeros(len(ids), bool)
    )
    if not known.all() and not drop_unknown:
        bad = ids[~known][:5]
        raise ValueError(
            f"{(~known).sum()} {what} ids are not in the given {what}_ids vocabulary "
            f"(first: {bad.tolist()}); pass drop_unknown=True to drop them"
        )
    codes = np.where(known, order[pos_c], -1).astype(np.int64)
    return vocab, codes, known


@dataclass(frozen=True)
class Interactions:
    """A user x item interaction matrix with its external ids.

    Attributes:
        matrix: canonical CSR, shape (n_users, n_items), float32 weights (1.0 for implicit data;
            repeated (user, item) pairs are summed).
        user_ids: external id of each row.
        item_ids: external id of each column.
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
        drop_unknown: bool = False,
    ) -> Interactions:
        """Builds interactions from parallel arrays of (user, item[, weight]).

        Args:
            users, items: external ids (any sortable dtype), one entry per interaction.
            weights: optional non-negative finite weights; 1.0 when omitted.
            user_ids, item_ids: fixed vocabularies to map onto (e.g. a test set onto the training
                set's items); by default the sorted unique ids present.
            drop_unknown: drop interactions whose ids are not in a given vocabulary instead of
                raising.
        """
        users = np.asarray(users)
        items = np.asarray(items)
        if users.ndim != 1 or items.ndim != 1 or len(users) != len(items):
            raise ValueError(
                f"users and items must be 1-D arrays of equal length, got shapes "
                f"{users.shape} and {items.shape}"
            )
        if weights is None:
            w = np.ones(len(users), dtype=np.float32)
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != users.shape:
                raise ValueError(f"weights must have shape {users.shape}, got {w.shape}")
            if not np.isfinite(w).all():
                raise ValueError("weights must be finite (found NaN or inf)")
            if (w < 0).any():
                raise ValueError("weights must be non-negative")
            w = w.astype(np.float32)
        uvocab, ucodes, ukeep = _vocab(users, user_ids, "user", drop_unknown)
        ivocab, icodes, ikeep = _vocab(items, item_ids, "item", drop_unknown)
        keep = ukeep & ikeep
        m = sp.csr_matrix(
            (w[keep], (ucodes[keep], icodes[keep])),
            shape=(len(uvocab), len(ivocab)),
            dtype=np.float32,
        )
        m.sum_duplicates()
        m.sort_indices()
        return cls(m, uvocab, ivocab)

    @classmethod
    def from_dataframe(
        cls, df, user_col: str = "user", item_col: str = "item", weight_col: str | None = None, **kw
    ) -> Interactions:
        """From a pandas (or polars) DataFrame with user, item and optional weight columns."""
        cols = list(df.columns)
        for c in (user_col, item_col) + ((weight_col,) if weight_col else ()):
            if c not in cols:
                raise ValueError(f"column {c!r} not found; the data has columns {cols}")
        w = np.asarray(df[weight_col]) if weight_col else None
        return cls.from_arrays(np.asarray(df[user_col]), np.asarray(df[item_col]), w, **kw)

    @classmethod
    def from_lightgcn(cls, path: str | os.PathLike, **kw) -> Interactions:
        """Reads the LightGCN text format: one line per user, ``user item item ...``."""
        users, items = [], []
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    vals = np.array(parts, dtype=np.int64)
                except ValueError as e:
                    raise ValueError(
                        f"{path}:{lineno}: expected integers 'user item ...': {e}"
                    ) from e
                users.append(np.full(len(vals) - 1, vals[0]))
                items.append(vals[1:])
        if not users:
            raise ValueError(f"{path}: no interactions found")
        return cls.from_arrays(np.concatenate(users), np.concatenate(items), **kw)

    @classmethod
    def read(
        cls,
        path: str | os.PathLike,
        user_col: str = "user",
        item_col: str = "item",
        weight_col: str | None = None,
        sep: str | None = None,
        **kw,
    ) -> Interactions:
        """Reads a CSV/TSV, Parquet or LightGCN ``.txt`` file, chosen by extension."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"no such file: {p}")
        suffix = p.suffix.lower()
        if suffix == ".txt":
            return cls.from_lightgcn(p, **kw)
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("reading CSV/Parquet needs pandas: pip install 'personae[io]'") from e
        if suffix == ".parquet":
            df = pd.read_parquet(p)
        elif suffix in (".csv", ".tsv"):
            df = pd.read_csv(p, sep=sep or ("\t" if suffix == ".tsv" else ","))
        else:
            raise ValueError(f"{p}: unknown format {suffix!r} (use .csv, .tsv, .parquet or .txt)")
        return cls.from_dataframe(df, user_col, item_col, weight_col, **kw)

    def users(self, rows) -> Interactions:
        """The sub-matrix of the given row indices, with the same items."""
        rows = np.asarray(rows, dtype=np.int64)
        return Interactions(self.matrix[rows], self.user_ids[rows], self.item_ids)

    def to_arrays(self):
        """(user_ids, item_ids, weights) of every interaction, in row order."""
        coo = self.matrix.tocoo()
        return self.user_ids[coo.row], self.item_ids[coo.col], coo.data


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
    n_tastes: int = field(default=0)

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
    rng = np.random.default_rng(seed)
    item_taste = rng.permutation(np.arange(n_items) % n_tastes)
    # Popularity within each taste: a random rank per item, weight rank^-zipf.
    pop = np.empty(n_items)
    taste_items, taste_cdf = [], []
    for t in range(n_tastes):
        members = np.flatnonzero(item_taste == t)
        w = (1.0 + rng.permutation(len(members))) ** -zipf
        pop[members] = w
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
    taste = (cum[users] < r[:, None]).sum(axis=1).clip(max=n_tastes - 1)
    items = np.empty(len(users), dtype=np.int64)
    for t in range(n_tastes):
        sel = taste == t
        pick = np.searchsorted(taste_cdf[t], rng.random(sel.sum()))
        items[sel] = taste_items[t][np.minimum(pick, len(taste_items[t]) - 1)]
    key = np.unique(users * n_items + items)
    inter = Interactions.from_arrays(
        key // n_items, key % n_items, user_ids=np.arange(n_users), item_ids=np.arange(n_items)
    )
    return SyntheticData(inter, item_taste, mixture, n_tastes)
