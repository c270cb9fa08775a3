"""A feedback-loop simulator with known tastes: do lists erase minority tastes over rounds?

A held-out split measures one round. Here a :class:`World` of synthetic users whose true taste
mixes are known (built on :func:`personae.synthetic`) is served by a policy for R rounds: every
round the policy recommends a list of ``n`` items to every user, each user consumes some of them
by a position-aware choice model, the consumption is appended to the interactions and the policy
refits (every ``refit_every`` rounds). :func:`run` returns one row per policy and round.

**The world** (every rule explicit, everything seeded):

- Item i has a true taste ``t_i`` (from :func:`personae.synthetic`) and a quality ``q_i``
  (standard normal): ``q = rho z(log(1 + n_i)) + sqrt(1 - rho^2) e``, with ``n_i`` the item's
  interactions in the starting data, ``z`` a z-score and ``e`` fresh noise (``rho`` =
  ``quality_popularity``), so popular items tend to be good but not always.
- User u has a true taste mix ``m_u`` (rows sum to 1). With ``drift > 0`` it drifts each round:
  ``m_u <- normalise(m_u * exp(drift * N(0, 1)))`` over the user's own tastes (a taste is never
  gained or lost; the drift is the same for every policy).
- **The true mix is an appetite.** On a list of ``n``, a user wants about ``m_u[t] n`` items of
  taste t. An item of taste t with ``c`` items of its taste above it on the list has the **true
  utility** ``U = w_i s^(max(0, c + 1 - m n) / (m n))`` (``m = m_u[t]``; 0 when ``m = 0``), with
  ``w_i = exp(beta q_i) / mean(exp(beta q))`` its quality weight and ``s`` the ``satiation``: full
  value within the taste's appetite, then a factor ``s`` per further appetite's worth. So a list
  that gives the dominant taste every slot satiates, and one in proportion to the mix does not.
- **Choice model**: an item shown at rank r (from 0) is examined with probability ``e_r = 1 /
  log2(r + 2)``; an examined item is consumed with probability ``noise + (1 - noise) a``, with
  the attitude ``a = min(1, kappa U)``: a share ``noise`` of examinations end in a click whatever
  the user's taste (the non-attitude clicks, worth their U, 0 for tastes the user lacks). Draws
  are independent across items.
- **Exhaustion and re-consumption**: what a user has consumed (including the starting history)
  stays in their history. Shown again, it is consumed with the attitude scaled by
  ``reconsume`` (default 0: never re-consumed, so a user's best items run out) and yields
  ``reconsume * U``. Built-in policies never show a user's history items.
- The same random numbers (drift, clicks) are used for every policy, so differences between
  policies are differences of their lists, not of luck.

**Policies** (names for :func:`run`): ``popularity``; ``random`` (uniform over unseen items);
``oracle`` (knows every U: fills the list slot by slot with the unseen item of the highest
expected gain ``(noise + (1 - noise) a) U`` given the tastes already on the list, the greedy
for a diminishing-returns list; it always runs, as the utility reference); ``dominant`` (knows
each user's dominant true taste and shows only its best items: the extreme of an average
model); ``ampcf`` (``AMPCF()``; its validated settings are kept after the first fit, so refits
skip the hidden search, and policies that start from the same data share round 0's fit);
``ampcf+cal-true`` and ``ampcf+cal-own`` (``AMPCF()`` candidates reranked by
:class:`~personae.CalibratedReranker` with the true tastes, or with the model's own taste
clusters, :meth:`personae.AMPCF.taste_categories`, as categories; the target is each user's
history, never the true mix); ``ampcf+slots-own`` (list slots in proportion to the user's
personas, see :class:`PersonaSlots`); ``als`` (implicit's ALS, when installed;
its user factors are refolded from the history every round); ``multvae``
(Mult-VAE; slow, excluded from the scale target). A user's own policy is any callable
``f(history, n, state) -> ids`` or an object with ``recommend(history, n, state)`` and
optionally ``fit(history, state)`` (``state``: the :class:`State` of the round).

**Metrics per round** (columns of the table; "consumed" is this round's consumption):

- ``utility``: mean over users of the expected true utility of the list, ``sum_r P_r U_r``
  (``P_r`` the consumption probability above; noise-free, so rounds compare cleanly);
  ``utility_share``: that over the oracle's in the same round (the oracle always runs);
  ``realized_utility``: the mean sum of U over what was actually consumed; ``clicks``: the mean
  number of items consumed.
- ``retention`` (minority-taste retention): for each user with minority tastes (true share in
  (0, 0.2)) who consumed something, the share of the consumption from those tastes divided by
  their total true share; the mean over those users (1 = kept, 0 = erased, above 1 =
  over-served).
  ``retention_cumulative``: the same over everything the user has consumed so far, starting
  history included: what the next refit learns from.
- ``ckl``: C_KL (natural log, smoothing 0.01; :func:`personae.metrics.miscalibration`) of the
  consumption's taste distribution against the true mix, mean over users who consumed.
- ``jaccard``: mean Jaccard similarity of two users' lists over ``pairs`` random user pairs
  (drawn once per run and reused every round: all ~n_users^2 / 2 pairs are too many at scale;
  at 20,000 pairs the standard error is about 2e-4 for random lists). ``gini``: Gini
  coefficient of the items' exposure (how many lists each item is on, over the whole
  catalogue). ``coverage``: share of the catalogue on at least one list.
- ``fit_s`` / ``recommend_s``: the policy's seconds this round.

Scoring and reranking run in the Rust core (``model.recommend``, ``CalibratedReranker.rerank``,
:func:`personae.top_n`); the world's bookkeeping is vectorised numpy: no per-user Python loop.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = [
    "PersonaSlots",
    "State",
    "World",
    "available_policies",
    "expected_random_jaccard",
    "make_policy",
    "run",
]

MINORITY = 0.2  # a taste under this share of a user's true mix is a minority taste
_CHUNK = 2048  # users per dense scoring block (10,000 x 5,000 float32 would be 200 MB at once)


@dataclass
class World:
    """Synthetic users with known taste mixes, items with a taste and a quality, and the
    choice model's settings (see the module docstring for every rule). Build with
    :meth:`make`."""

    item_taste: np.ndarray
    quality: np.ndarray
    mixture: np.ndarray
    history: sp.csr_matrix
    beta: float = 0.5
    kappa: float = 0.5
    noise: float = 0.05
    satiation: float = 0.5
    drift: float = 0.0
    reconsume: float = 0.0
    seed: int = 0
    weight: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        n_users, n_tastes = self.mixture.shape
        if self.history.shape != (n_users, len(self.item_taste)):
            raise ValueError(
                f"history must be users x items {(n_users, len(self.item_taste))}, got "
                f"{self.history.shape}"
            )
        if len(self.quality) != len(self.item_taste):
            raise ValueError("quality must have one entry per item")
        if not np.isfinite(np.asarray(self.quality, dtype=np.float64)).all():
            raise ValueError("quality must be finite")
        taste = np.asarray(self.item_taste)
        if taste.dtype.kind not in "iu" or (
            taste.size and not 0 <= taste.min() <= taste.max() < n_tastes
        ):
            raise ValueError(f"item_taste must hold taste indices in 0..{n_tastes - 1}")
        mix = np.asarray(self.mixture, dtype=np.float64)
        if not np.isfinite(mix).all() or (mix < 0).any() or not np.allclose(mix.sum(1), 1.0):
            raise ValueError(
                "mixture rows must be non-negative and sum to 1 (a taste mix per user)"
            )
        for name, lo, hi in (("noise", 0.0, 1.0), ("satiation", 0.0, 1.0), ("reconsume", 0.0, 1.0)):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
        for name in ("kappa", "beta", "drift"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if self.drift > 10:  # exp(drift * N(0, 1)) overflows to a NaN mix within a round
            raise ValueError(
                f"drift must be at most 10 (a log-normal step's scale), got {self.drift}"
            )
        w = np.exp(self.beta * np.asarray(self.quality, dtype=np.float64))
        self.weight = w / w.mean()

    @classmethod
    def make(
        cls,
        n_users: int = 10000,
        n_items: int = 5000,
        n_tastes: int = 12,
        *,
        quality_popularity: float = 0.5,
        beta: float = 0.5,
        kappa: float = 0.5,
        noise: float = 0.05,
        satiation: float = 0.5,
        drift: float = 0.0,
        reconsume: float = 0.0,
        seed: int = 0,
        **synthetic_kw,
    ) -> World:
        """A world on :func:`personae.synthetic`'s users, tastes and starting interactions
        (`synthetic_kw` go to it, e.g. ``mean_items``), plus item qualities and the choice
        model's settings."""
        from personae.data import synthetic

        if not -1.0 <= quality_popularity <= 1.0:
            raise ValueError(f"quality_popularity must be in [-1, 1], got {quality_popularity}")
        data = synthetic(n_users, n_items, n_tastes, seed=seed, **synthetic_kw)
        x = data.interactions.matrix
        pop = np.log1p(np.diff(x.tocsc().indptr).astype(np.float64))
        z = (pop - pop.mean()) / (pop.std() or 1.0)
        rng = np.random.default_rng([seed, 1])
        q = quality_popularity * z + np.sqrt(1 - quality_popularity**2) * rng.standard_normal(
            n_items
        )
        hist = x.copy()
        hist.data[:] = 1.0
        return cls(
            item_taste=data.item_taste.astype(np.int64),
            quality=q,
            mixture=data.user_mixture.copy(),
            history=hist,
            beta=float(beta),
            kappa=float(kappa),
            noise=float(noise),
            satiation=float(satiation),
            drift=float(drift),
            reconsume=float(reconsume),
            seed=int(seed),
        )

    @property
    def n_users(self) -> int:
        """Number of users."""
        return self.mixture.shape[0]

    @property
    def n_items(self) -> int:
        """Number of items."""
        return len(self.item_taste)

    @property
    def n_tastes(self) -> int:
        """Number of true tastes."""
        return self.mixture.shape[1]

    def categories(self) -> sp.csr_matrix:
        """The true tastes as an items x tastes 0/1 category matrix (for the reranker)."""
        n = self.n_items
        return sp.csr_matrix(
            (np.ones(n, np.float32), (np.arange(n), self.item_taste)), shape=(n, self.n_tastes)
        )

    def appetite(self, mix: np.ndarray, before: np.ndarray, n: int) -> np.ndarray:
        """Satiation factor ``s^(max(0, c + 1 - m n) / (m n))`` of an item of a taste of share
        `mix` = m with `before` = c items of that taste above it on a list of `n`: 1 within the
        taste's appetite m n, then falling by s per further appetite's worth (0 where m = 0)."""
        want = np.maximum(mix * n, 1e-12)
        return np.where(mix > 0, self.satiation ** (np.maximum(0.0, before + 1 - want) / want), 0.0)

    def gain(self, u: np.ndarray) -> np.ndarray:
        """The expected utility of one examination of an unseen item of utility `u`:
        ``(noise + (1 - noise) min(1, kappa U)) U``."""
        return (self.noise + (1 - self.noise) * np.minimum(1.0, self.kappa * u)) * u

    def utility(self, ids: np.ndarray, mixture: np.ndarray | None = None) -> np.ndarray:
        """True utility ``U`` of each item of the lists `ids` (users x n, -1 padded; 0 for
        padding) for its user under `mixture` (default: the starting mix): the item's quality
        weight times its taste's satiation factor on that list."""
        mix = self.mixture if mixture is None else mixture
        ok = ids >= 0
        it = np.where(ok, ids, 0)
        taste = np.where(ok, self.item_taste[it], -1)
        same = (taste[:, :, None] == taste[:, None, :]) & ok[:, None, :]
        above = np.tril(np.ones((ids.shape[1],) * 2, bool), -1)  # [r, s]: s is above r
        count = (same & above[None]).sum(2)
        share = mix[np.arange(len(ids))[:, None], np.maximum(taste, 0)]
        return np.where(ok, self.weight[it] * self.appetite(share, count, ids.shape[1]), 0.0)

    def click_probability(self, ids: np.ndarray, u: np.ndarray, seen) -> np.ndarray:
        """Consumption probability of each item of the lists `ids` (users x n, -1 padded)
        with utilities `u` (:meth:`utility`), by rank; `seen` items are scaled by
        ``reconsume`` (the noise clicks too: with 0 a seen item is never consumed again)."""
        pos = 1.0 / np.log2(np.arange(ids.shape[1]) + 2.0)
        a = np.minimum(1.0, self.kappa * u)
        again = np.where(seen, self.reconsume, 1.0)
        return np.where(ids >= 0, pos * again * (self.noise + (1 - self.noise) * a), 0.0)


@dataclass
class State:
    """What a policy may look at in a round: the world (true tastes included: only the oracle
    and the ``dominant`` and ``cal-true`` policies read them), the current true mix, the round
    and a seeded generator for the policy's own randomness."""

    world: World
    mixture: np.ndarray
    round: int
    rng: np.random.Generator
    cache: dict = field(default_factory=dict, repr=False)


# -- policies -------------------------------------------------------------------------------


def _check_ids(name: str, ids, n_users: int, n: int, n_items: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[0] != n_users:
        raise ValueError(f"policy {name!r} returned shape {ids.shape}, expected ({n_users}, <=n)")
    if ids.size and ids.dtype.kind not in "iu":
        raise TypeError(f"policy {name!r} returned dtype {ids.dtype}, expected integer item ids")
    ids = ids[:, :n].astype(np.int64)
    if ids.size and (ids.max() >= n_items or ids.min() < -1):
        raise ValueError(f"policy {name!r} returned item ids outside -1..{n_items - 1}")
    if ids.shape[1] > 1:
        srt = np.sort(ids, axis=1)
        dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
        if dup.any():
            u = int(np.flatnonzero(dup.any(1))[0])
            raise ValueError(
                f"policy {name!r} showed user {u} item {int(srt[u, 1:][dup[u]][0])} twice; "
                "a list names each item once (its clicks and exposure would count twice)"
            )
    if ids.shape[1] < n:
        ids = np.pad(ids, ((0, 0), (0, n - ids.shape[1])), constant_values=-1)
    return ids


def _dense_top_n(score_block, history: sp.csr_matrix, n: int, mask_seen: bool = True):
    """Top-n of dense scores computed block by block (users in chunks), in the Rust core."""
    from personae.models import top_n

    out = np.empty((history.shape[0], n), np.int64)
    for lo in range(0, history.shape[0], _CHUNK):
        hi = min(lo + _CHUNK, history.shape[0])
        s = np.ascontiguousarray(score_block(lo, hi), dtype=np.float32)
        out[lo:hi] = top_n(s, n, seen=history[lo:hi] if mask_seen else None)[0]
    return out


class _Random:
    def recommend(self, history, n, state):
        return _dense_top_n(
            lambda lo, hi: state.rng.random((hi - lo, history.shape[1]), np.float32), history, n
        )


class _Oracle:
    """Greedy over positions: each slot takes the unseen item of highest expected gain given
    the items of its taste already on the list (within a taste, the best items by quality
    come first). Exact without satiation (the gain then falls with rank only); with it, the
    standard greedy for a diminishing-returns list."""

    def recommend(self, history, n, state):
        w = state.world
        hist = history.tocsc()
        cand, weight = [], []
        for t in range(w.n_tastes):
            items = np.flatnonzero(w.item_taste == t)
            sub = hist[:, items].tocsr()
            k = min(n, len(items))
            top = _dense_top_n(
                lambda lo, hi, v=w.weight[items]: np.broadcast_to(v, (hi - lo, len(v))), sub, k
            )
            top = np.where(top >= 0, items[np.maximum(top, 0)], -1)
            top = np.pad(top, ((0, 0), (0, n - k)), constant_values=-1)
            cand.append(top)
            weight.append(np.where(top >= 0, w.weight[np.maximum(top, 0)], 0.0))
        cand, weight = np.stack(cand, 1), np.stack(weight, 1)  # users x tastes x n
        users = np.arange(history.shape[0])
        used = np.zeros((len(users), w.n_tastes), np.int64)
        out = np.full((len(users), n), -1, np.int64)
        for r in range(n):
            nxt = np.minimum(used, n - 1)
            item = np.take_along_axis(cand, nxt[:, :, None], 2)[:, :, 0]
            sat = w.appetite(state.mixture, used, n)
            u = sat * np.take_along_axis(weight, nxt[:, :, None], 2)[:, :, 0]
            g = np.where((used < n) & (item >= 0), w.gain(u), -1.0)
            best = g.argmax(1)
            out[:, r] = np.where(g[users, best] >= 0, item[users, best], -1)
            used[users, best] += 1
        return out


class _Dominant:
    def recommend(self, history, n, state):
        w = state.world
        dom = state.mixture.argmax(1)

        def block(lo, hi):
            own = w.item_taste[None, :] == dom[lo:hi, None]
            # the dominant taste's best items first; the others only if it ran out
            return np.where(own, 1e3, 0.0) + w.weight[None, :]

        return _dense_top_n(block, history, n)


def _digest(m: sp.csr_matrix) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for a in (m.indptr, m.indices, m.data):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class _Model:
    """A personae model refitted on the history. With `freeze`, the filter AMP-CF chose on
    its first fit is kept for the refits (they skip the hidden grid search). Policies with
    the same `key` share a fit on identical histories within a round (round 0: every AMP-CF
    policy starts from the same data), which changes no result, only the time."""

    def __init__(self, make: Callable, freeze: bool = False, key: str | None = None):
        self.make, self.freeze, self.key, self.model = make, freeze, key, None
        self.fixed: dict | None = None  # the chosen filter's {"kind": ..., **settings}

    def fit(self, history, state):
        key = None
        if self.key is not None:
            key = (self.key, repr(self.fixed), _digest(history))
        self.model = state.cache.get(key) if key else None
        if self.model is None:
            # AMPCF takes the filter in its manifest form, {"kind": ..., **settings}
            frozen = {} if self.fixed is None else {"filter": self.fixed}
            self.model = self.make(**frozen).fit(history, show_progress=False)
            if key:
                state.cache[key] = self.model
        if self.freeze and self.fixed is None:
            self.fixed = _chosen_filter(self.model)

    def candidates(self, history, n):
        return self.model.recommend(history, n)

    def recommend(self, history, n, state):
        return self.candidates(history, n)[0]


def _chosen_filter(model) -> dict | None:
    """The filter family and settings a fit chose (its manifest's training record), without
    the neighbours kept, which follow from the catalogue at each fit."""
    training = model.manifest.get("training", {})
    kind, settings = training.get("filter"), dict(training.get("settings", {}))
    if kind not in ("ease", "graph_filter"):
        return None
    settings.pop("neighbours", None)
    return {"kind": kind, **settings}


class _Calibrated(_Model):
    def __init__(self, make, categories: str, lam: float, pool: int, key: str = "ampcf"):
        super().__init__(make, freeze=True, key=key)
        self.categories, self.lam, self.pool, self.reranker = categories, lam, pool, None

    def fit(self, history, state):
        from personae.rerank import CalibratedReranker

        super().fit(history, state)
        if self.categories == "true":
            if self.reranker is None:
                self.reranker = CalibratedReranker(state.world.categories(), lam=self.lam)
        else:
            self.reranker = CalibratedReranker(self.model.taste_categories(), lam=self.lam)

    def recommend(self, history, n, state):
        ids, scores = self.candidates(history, max(self.pool, n))
        return self.reranker.rerank(ids, scores, history=history, n=n).ids


class PersonaSlots(_Model):
    """``AMPCF()`` with list slots in proportion to the user's personas: persona k (share
    ``pi_k`` of the history, on the model's own taste cluster) gets ``round(n pi_k)`` of the
    ``n`` slots (largest remainders; at least ``min_slots`` for every persona while slots
    last, the weak-persona exploration), filled with its taste cluster's best-scored
    candidates of a pool of ``pool`` items, then in rank order with what is left. Slots are
    assigned with array operations over all users at once."""

    def __init__(
        self,
        pool: int = 200,
        min_slots: int = 1,
        make: Callable | None = None,
        key: str = "ampcf",
    ):
        from personae.ampcf import AMPCF

        super().__init__(make or AMPCF, freeze=True, key=key)
        self.pool, self.min_slots = int(pool), int(min_slots)

    def recommend(self, history, n, state):
        ids, _ = self.candidates(history, max(self.pool, n))
        p = self.model.personas(history)
        return persona_slots(
            ids, self.model.taste_categories(), p["taste"], p["share"], n, self.min_slots
        )


def persona_slots(ids, categories, taste, share, n: int, min_slots: int = 1) -> np.ndarray:
    """Lists of `n` from ranked candidates ``ids`` (users x C, -1 padded) giving each persona
    (``taste`` / ``share``: users x K, as :meth:`personae.AMPCF.personas` returns them) slots in
    proportion to its share, at least `min_slots` each while slots last; unfilled slots take the
    best remaining candidates. ``categories``: items x clusters (an item's cluster is its
    column; items without one only fill leftover slots)."""
    users, c = ids.shape
    k = taste.shape[1]
    cat = sp.csr_matrix(categories)
    item_cluster = np.full(cat.shape[0] + 1, -1, np.int64)  # last entry: the -1 padding
    rows = np.repeat(np.arange(cat.shape[0]), np.diff(cat.indptr))
    item_cluster[rows] = cat.indices
    share = np.where(taste >= 0, share, 0.0).astype(np.float64)
    # quota per persona: largest-remainder shares of n, then at least min_slots for every
    # persona (the weak-persona exploration), taken from the heaviest persona (persona 0)
    live = taste >= 0
    total = share.sum(1, keepdims=True)
    want = np.where(total > 0, share / np.where(total > 0, total, 1) * n, 0.0)
    quota = np.floor(want).astype(np.int64)
    rem = n - quota.sum(1)
    frac = np.where(live, want - quota, -1.0)
    rank = np.argsort(np.argsort(-frac - 1e-9 * np.arange(k)[None, :], axis=1, kind="stable"), 1)
    quota += (rank < rem[:, None]) & live
    quota = np.maximum(quota, np.where(live, min_slots, 0))
    quota[:, 0] = np.maximum(quota[:, 0] - (quota.sum(1) - n), 0)
    # each candidate's persona (the persona whose taste is the candidate's cluster)
    cl = item_cluster[np.where(ids >= 0, ids, -1)]
    match = (
        (cl[:, :, None] == taste[:, None, :]) & (taste[:, None, :] >= 0) & (ids >= 0)[:, :, None]
    )
    persona = np.where(match.any(2), match.argmax(2), -1)
    # rank of each candidate within its persona's candidates
    onehot = persona[:, :, None] == np.arange(k)[None, None, :]
    within = np.cumsum(onehot, axis=1) - 1
    take = (persona >= 0) & (
        np.take_along_axis(within, np.maximum(persona, 0)[:, :, None], 2)[:, :, 0]
        < np.take_along_axis(quota, np.maximum(persona, 0), 1)
    )
    # then fill with the best remaining candidates, keeping the pick's own rank order
    need = n - take.sum(1)
    spare = ~take & (ids >= 0)
    take |= spare & (np.cumsum(spare, 1) <= need[:, None])
    key = np.where(take, np.arange(c)[None, :], c + np.arange(c)[None, :])
    order = np.argsort(key, axis=1, kind="stable")[:, :n]
    out = np.take_along_axis(ids, order, 1)
    return np.where(np.take_along_axis(take, order, 1), out, -1)


class _ALS:
    def __init__(self, seed: int):
        from implicit.cpu.als import AlternatingLeastSquares

        self.model = AlternatingLeastSquares(factors=64, iterations=15, random_state=seed)

    def fit(self, history, state):
        self.model.fit(history.astype(np.float32), show_progress=False)

    def recommend(self, history, n, state):
        # user factors refolded from today's history (implicit's batched least squares), as
        # AMP-CF reads the history at every call; the item factors change only at refits
        h = history.astype(np.float32)
        uf = self.model.recalculate_user(np.arange(h.shape[0]), h)
        itf = self.model.item_factors
        return _dense_top_n(lambda lo, hi: uf[lo:hi] @ itf.T, history, n)


def _has_implicit() -> bool:
    try:
        import implicit  # noqa: F401
    except ImportError:
        return False
    return True


def available_policies() -> list[str]:
    """The built-in policy names (``als`` only when implicit is installed)."""
    names = [
        "popularity",
        "random",
        "oracle",
        "dominant",
        "ampcf",
        "ampcf+cal-true",
        "ampcf+cal-own",
        "ampcf+slots-own",
        "multvae",
    ]
    return names + (["als"] if _has_implicit() else [])


DEFAULT_POLICIES = (
    "oracle",
    "random",
    "popularity",
    "ampcf",
    "ampcf+cal-true",
    "ampcf+cal-own",
    "ampcf+slots-own",
    "als",
)


def make_policy(
    name: str,
    *,
    seed: int = 0,
    lam: float = 0.8,
    pool: int = 100,
    device="cpu",
    model: dict | None = None,
):
    """A built-in policy by name (see :func:`available_policies`); `lam` and `pool` (the
    candidates reranked) set the calibrated ones, `device` the models' fits. `model` holds
    more constructor arguments for the policy's model (``AMPCF`` for the ``ampcf`` policies,
    ``MultVAE`` for ``multvae``), e.g. ``{"mix": 0.5, "gamma": 0.5}``; policies with
    different `model` settings never share a fit."""
    from personae.ampcf import AMPCF
    from personae.popularity import Popularity

    extra = dict(model or {})
    if extra and name in ("popularity", "random", "oracle", "dominant", "als"):
        raise ValueError(f"policy {name!r} takes no model settings, got {sorted(extra)}")
    for reserved in ("device", "seed"):
        if reserved in extra:
            raise ValueError(f"pass {reserved!r} to make_policy itself, not in model")
    key = "ampcf" + "".join(f",{k}={extra[k]!r}" for k in sorted(extra))

    def ampcf(**kw):
        return AMPCF(device=device, seed=seed, **{**kw, **extra})

    if extra and name.startswith("ampcf"):
        ampcf()  # an unknown or bad setting raises here, not at the first fit

    if name == "popularity":
        return _Model(Popularity)
    if name == "random":
        return _Random()
    if name == "oracle":
        return _Oracle()
    if name == "dominant":
        return _Dominant()
    if name == "ampcf":
        return _Model(ampcf, freeze=True, key=key)
    if name in ("ampcf+cal-true", "ampcf+cal-own"):
        return _Calibrated(ampcf, name.rsplit("-", 1)[1], lam, pool, key=key)
    if name == "ampcf+slots-own":
        return PersonaSlots(make=ampcf, key=key)
    if name == "multvae":
        from personae.multvae import MultVAE

        def multvae():
            return MultVAE(**{"epochs": 30, **extra}, device=device, seed=seed)

        multvae()  # checks the settings now
        return _Model(multvae)
    if name == "als":
        if not _has_implicit():
            raise ImportError("the 'als' policy needs implicit: pip install implicit")
        return _ALS(seed)
    raise ValueError(f"unknown policy {name!r}; built-in policies: {available_policies()}")


class _Callable:
    def __init__(self, f):
        self.f = f

    def recommend(self, history, n, state):
        return self.f(history, n, state)


def _as_policy(name: str, p, seed: int, kw: dict):
    if isinstance(p, str):
        return make_policy(p, seed=seed, **kw)
    if hasattr(p, "recommend"):
        return p
    if callable(p):
        return _Callable(p)
    raise TypeError(f"policy {name!r} must be a name, a callable or have recommend(), got {p!r}")


# -- metrics --------------------------------------------------------------------------------


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative `counts` (0: equal exposure, -> 1: one item)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, s = len(x), x.sum()
    if n == 0 or s == 0:
        return 0.0
    return float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * s))


def pair_jaccard(ids: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Mean Jaccard similarity of the lists of users ``a[p]`` and ``b[p]`` (-1 ignored)."""
    la, lb = ids[a], ids[b]
    hit = ((la[:, :, None] == lb[:, None, :]) & (la[:, :, None] >= 0)).sum((1, 2))
    union = (la >= 0).sum(1) + (lb >= 0).sum(1) - hit
    return float(np.mean(np.where(union > 0, hit / np.maximum(union, 1), 0.0)))


def expected_random_jaccard(n: int, m: int) -> float:
    """E[Jaccard] of two independent uniform `n`-subsets of `m` items: the overlap X is
    hypergeometric (m, n, n) and J = X / (2n - X)."""
    from scipy.stats import hypergeom

    x = np.arange(0, n + 1)
    return float((hypergeom.pmf(x, m, n, n) * x / (2 * n - x)).sum())


def _retention(counts: np.ndarray, mix: np.ndarray) -> float:
    minority = (mix > 0) & (mix < MINORITY)
    true = (mix * minority).sum(1)
    tot = counts.sum(1)
    ok = (true > 0) & (tot > 0)
    if not ok.any():
        return float("nan")
    got = (counts * minority).sum(1)[ok] / tot[ok]
    return float(np.mean(got / true[ok]))


def _taste_counts(world: World, users, items) -> np.ndarray:
    out = np.zeros((world.n_users, world.n_tastes))
    np.add.at(out, (users, world.item_taste[items]), 1.0)
    return out


# -- the loop -------------------------------------------------------------------------------


def run(
    world: World,
    policies=DEFAULT_POLICIES,
    rounds: int = 20,
    n: int = 10,
    refit_every: int = 1,
    *,
    seed: int = 0,
    pairs: int = 20000,
    lam: float = 0.8,
    pool: int = 100,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
):
    """Runs the feedback loop and returns the tidy per-round table (a pandas DataFrame, one
    row per policy and round; columns in the module docstring).

    Args:
        world: the :class:`World` (it is not modified: each policy gets its own copy of the
            history and all policies share the drift and click draws).
        policies: names (see :func:`available_policies`; ``als`` is skipped with a warning when
            implicit is missing from the defaults), or a dict name -> name / callable / policy
            object. The oracle is added when missing (utilities are reported as its share).
        rounds: R; n: the list length; refit_every: policies refit on rounds 0, k, 2k, ...
        seed: seeds the choice draws, the drift, the policies' randomness and the Jaccard pairs.
        pairs: user pairs sampled for the mean Jaccard.
        lam, pool: the calibrated policies' lambda and candidate pool (top-`pool` candidates
            reranked to `n`). 0.8, not the reranker's 0.5: on two small worlds (BENCHMARKS.md)
            0.5 left calibration on the model's own clusters behind persona slots in minority
            retention, 0.8 put it first at the best utility. device: the model fits.
        progress: called with one line per policy and round (e.g. ``print``).
    """
    import pandas as pd

    from personae.metrics import _reranker, miscalibration

    if not isinstance(world, World):
        raise TypeError(f"world must be a personae.simulate.World, got {type(world).__name__}")
    for name, v, lo in (
        ("rounds", rounds, 1),
        ("n", n, 1),
        ("refit_every", refit_every, 1),
        ("pairs", pairs, 1),
        ("pool", pool, 1),
        ("seed", seed, 0),
    ):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 <= lam <= 1:
        # Checked before any fit: a calibrated policy would refuse it only after the first.
        raise ValueError(f"lam must be a number in [0, 1], got {lam!r}")
    if n > world.n_items:
        raise ValueError(f"n ({n}) exceeds the catalogue ({world.n_items} items)")
    if isinstance(policies, str):
        policies = [policies]
    if not isinstance(policies, dict):
        names = list(policies)
        if "als" in names and not _has_implicit() and tuple(policies) == DEFAULT_POLICIES:
            warnings.warn("implicit is not installed: the 'als' policy is skipped", stacklevel=2)
            names.remove("als")
        named = [p if isinstance(p, str) else getattr(p, "__name__", repr(p)) for p in names]
        twice = sorted({x for x in named if named.count(x) > 1})
        if twice:
            # A dict keyed by name would keep the last of them and drop the others silently.
            raise ValueError(
                f"two policies are named {twice[0]!r}; give a dict {{name: policy}} to name them"
            )
        policies = dict(zip(named, names, strict=True))
    policies = dict(policies)
    if not policies:
        raise ValueError("give at least one policy")
    if "oracle" not in policies:
        policies = {"oracle": "oracle", **policies}
    kw = {"lam": lam, "pool": pool, "device": device}
    objs = {name: _as_policy(name, p, seed, kw) for name, p in policies.items()}

    pair_rng = np.random.default_rng([seed, 2])
    pa = pair_rng.integers(0, world.n_users, pairs)
    pb = (pa + pair_rng.integers(1, max(world.n_users, 2), pairs)) % world.n_users
    truth = _reranker(world.categories())
    start = world.history.tocoo()
    hist = {k: world.history.copy() for k in objs}
    cum = {k: _taste_counts(world, start.row, start.col) for k in objs}
    mix = world.mixture.copy()
    rows = []
    for r in range(rounds):
        cache: dict = {}
        round_rng = np.random.default_rng([seed, 3, r])
        if r > 0 and world.drift > 0:
            own = mix > 0
            mix = np.where(own, mix * np.exp(world.drift * round_rng.standard_normal(mix.shape)), 0)
            mix /= mix.sum(1, keepdims=True)
        draws = round_rng.random((world.n_users, n))
        per_round = []
        for k, (name, pol) in enumerate(objs.items()):
            state = State(world, mix, r, np.random.default_rng([seed, 4, r, k]), cache)
            h = hist[name]
            t0 = time.perf_counter()
            if r % refit_every == 0 and hasattr(pol, "fit"):
                pol.fit(h, state)
            t1 = time.perf_counter()
            ids = _check_ids(name, pol.recommend(h, n, state), world.n_users, n, world.n_items)
            t2 = time.perf_counter()
            ok = ids >= 0
            seen = np.zeros(ids.shape, bool)
            if ok.any():
                lu, li = np.nonzero(ok)
                seen[lu, li] = np.asarray(h[lu, ids[lu, li]]).ravel() > 0
            u = world.utility(ids, mix)
            p = world.click_probability(ids, u, seen)
            gain = np.where(seen, world.reconsume, 1.0) * u
            took = draws < p
            cu, ci = np.nonzero(took)
            items = ids[cu, ci]
            new = sp.csr_matrix((np.ones(len(items), np.float32), (cu, items)), shape=h.shape)
            h = (h + new).tocsr()
            h.data[:] = 1.0
            hist[name] = h
            fresh = ~seen[cu, ci]
            np.add.at(cum[name], (cu[fresh], world.item_taste[items[fresh]]), 1.0)
            consumed = np.where(took, ids, -1)
            has = took.any(1)
            ckl = miscalibration(consumed[has], truth, p=mix[has]) if has.any() else np.nan
            expo = np.bincount(ids[ok], minlength=world.n_items)
            row = {
                "policy": name,
                "round": r,
                "utility": float((p * gain).sum(1).mean()),
                "realized_utility": float((took * gain).sum(1).mean()),
                "clicks": float(took.sum(1).mean()),
                "retention": _retention(_taste_counts(world, cu, items), mix),
                "retention_cumulative": _retention(cum[name], mix),
                "ckl": float(np.mean(ckl)),
                "jaccard": pair_jaccard(ids, pa, pb),
                "gini": gini(expo),
                "coverage": float((expo > 0).mean()),
                "fit_s": t1 - t0,
                "recommend_s": t2 - t1,
            }
            per_round.append(row)
            if progress is not None:
                progress(
                    f"round {r} {name}: utility {row['utility']:.3f} retention "
                    f"{row['retention']:.3f} jaccard {row['jaccard']:.3f} "
                    f"(fit {row['fit_s']:.1f} s, recommend {row['recommend_s']:.1f} s)"
                )
        best = next(x["utility"] for x in per_round if x["policy"] == "oracle")
        for x in per_round:
            x["utility_share"] = x["utility"] / best if best > 0 else float("nan")
        rows += per_round
    cols = [
        "policy",
        "round",
        "utility_share",
        "utility",
        "realized_utility",
        "clicks",
        "retention",
        "retention_cumulative",
        "ckl",
        "jaccard",
        "gini",
        "coverage",
        "fit_s",
        "recommend_s",
    ]
    table = pd.DataFrame(rows)[cols]
    table.attrs.update(
        rounds=rounds,
        n=n,
        refit_every=refit_every,
        seed=seed,
        pairs=pairs,
        lam=lam,
        pool=pool,
        world={
            k: getattr(world, k) for k in ("beta", "kappa", "noise", "drift", "reconsume", "seed")
        },
        users=world.n_users,
        items=world.n_items,
        tastes=world.n_tastes,
    )
    return table


def summary(table, last: int | None = None):
    """The table's last round (or round `last`) per policy, best retention first."""
    r = table["round"].max() if last is None else last
    return table[table["round"] == r].sort_values("retention", ascending=False)


#: The columns :func:`report` shows by default.
REPORT_COLUMNS = ("policy", "utility_share", "retention", "ckl", "jaccard", "gini", "coverage")


def report(table, columns=REPORT_COLUMNS) -> str:
    """The last round per policy (:func:`summary`) as a text table, three decimals."""
    last = summary(table)[list(columns)]
    return last.to_string(index=False, float_format=lambda v: f"{v:.3f}")


__all__ += ["gini", "pair_jaccard", "persona_slots", "report", "summary"]
