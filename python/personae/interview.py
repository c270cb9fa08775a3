"""A new user's personas in a few answers: an adaptive interview over the model's base tastes.

A persona model describes its users as mixes of a few shared base tastes. The interview places
a new user in that mix from short answers, after PReF (Shenfeld et al. 2025, arXiv 2503.06358):

- **Preferences.** The model supplies B base taste functions over the catalogue,
  ``phi_b(j)`` (``Tastes.phi``, items x B), and a per-item offset ``o_j`` (how much anyone likes
  item j). A user with weights ``lam`` (B) likes item j with utility ``u_j = lam . phi(j) + o_j``.
- **Answers.** "Have you seen and liked j?" (or, with ``asks="would-like"``, "would you watch
  j?") is yes / no / no opinion; "which of i and j?" is the first
  / the second / no opinion. A yes has probability ``p = s / 2 + (1 - s) sigmoid(u)`` with the
  slip probability ``s`` (people answer at random sometimes: survey research's non-attitudes);
  a pair uses ``u_i - u_j`` (Bradley-Terry). "No opinion" is not a dislike: it changes nothing.
- **Posterior.** Gaussian prior ``N(m0, S0)`` (``Tastes.prior_mean``, ``Tastes.prior_cov``);
  the Laplace approximation around the MAP, found by Newton's method with step halving (Fisher
  scoring where the observed Hessian is not positive definite: the slip likelihood is not
  log-concave everywhere); the precision uses the expected information ``I(u)``, which keeps it
  positive definite:
  ``H = S0^-1 + sum_i I(u_i) v_i v_i^T`` with ``I(u) = ((1 - s) sigmoid'(u))^2 / (p (1 - p))``.
- **Next question.** The candidate that most increases ``log det H``: one answer on ``v`` adds
  ``log(1 + I(u) v^T H^-1 v)``, so the criterion is ``I(u) v^T H^-1 v`` (without slips,
  ``I = sigmoid'`` and this is PReF's derivative-weighted ``v^T H^-1 v``; PReF squares the
  derivative). Candidates come from a pool of items popular enough to be known. Baselines:
  ``"random"``, ``"popular"`` and ``"uncertainty"`` (the answer closest to a coin flip).
- **Recommendations.** Given a model that scores histories (AMP-CF), the liked answers are
  folded in as a history through the model's own scorer (each weighted by its posterior
  probability of being meant rather than a slip), plus ``posterior_weight`` times the
  utility at the posterior mean, minus ``dislike_weight`` times the fold-in of the disliked
  answers (each standardised); with bare :class:`Tastes`, or before any "yes", ``u_j`` at the
  posterior mean. Each item's persona is the base taste that contributes most to it,
  ``argmax_b lam_b phi_b(j)``.
- **Default questions** (``"likely"``): the pool item the list ranks highest (with
  ``asks="would-like"``, outside its own top ``SKIP_TOP``: there every asked item leaves the
  list). On held-out MovieLens users this measured better than the information criterion, whose
  questions serve the taste posterior rather than the list (see BENCHMARKS.md).
- **Group questions** (the first ``GROUPS``): "which of these tastes is closest to you?" over
  ``GROUP_SIZE`` tastes, each named by its most distinctive items, or "none of these". The
  answer's likelihood is a multinomial logit with slips: taste c has utility
  ``z_c = a (lam_c - m0_c) / sd_c`` (its weight in prior standard deviations above the average
  user, ``a = CHOICE_SCALE``), "none" ``a * CHOICE_NONE``, and
  ``P(k) = s / K + (1 - s) softmax(z)_k`` over the K options; the posterior adds its log and
  its Fisher information. The tastes shown are chosen greedily to most increase ``log det H``
  (among tastes at least ``GROUP_MIN_SHARE`` times the average prior share: niche tastes tell
  the list little), so the first group question is the same for every new user and computed
  once. A chosen taste's ``GROUP_ITEMS`` most distinctive items join the list's fold-in as a
  soft history at ``GROUP_WEIGHT`` each.

The interview's state is its answers: :meth:`Interview.to_json` saves them (plain JSON, no
pickle) and :meth:`Interview.from_json` replays them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from personae._core import InvalidInputError
from personae._validate import integer, real

__all__ = ["GroupQuestion", "Interview", "PairQuestion", "Question", "Tastes"]

_STRATEGIES = ("likely", "information", "random", "popular", "uncertainty")
# "likely" skips the list's own top items: asking about them would spend the list's best hits.
SKIP_TOP = 20
# What a question asks, hence what a "no" means. "liked-before" (the default: "have you seen
# and liked X?", a new user telling their past, the usual onboarding question): a "no" may be
# an item not met yet, so only the liked items leave the list and "likely" questions ask the
# list's own best item: a "yes" folds a strong item in, a "no" leaves it on the list.
# "would-like" ("would you watch X?"): a "no" says the item is not for the user, so every asked
# item leaves the list and "likely" questions skip the list's own top SKIP_TOP (a "yes" there
# would spend one of its hits). BENCHMARKS.md measures both, under both answer protocols.
ASKS = ("liked-before", "would-like")
ASKS_DEFAULT = "liked-before"
# A saved state without the setting predates it: it was made with "would-like".
ASKS_BEFORE_SETTING = "would-like"


@dataclass(frozen=True)
class Tastes:
    """A persona model's base tastes, as the interview uses them.

    Attributes:
        phi: items x B, ``phi[j, b]`` = base taste b's preference for item j.
        offset: items, the utility every user gives item j.
        popularity: items, training interactions (the question pool is the most popular).
        names: B short descriptions of the base tastes.
        prior_mean, prior_cov: the Gaussian prior over a user's weights (B, B x B).
    """

    phi: np.ndarray
    offset: np.ndarray
    popularity: np.ndarray
    names: list
    prior_mean: np.ndarray
    prior_cov: np.ndarray

    def __post_init__(self):
        if np.ndim(self.phi) != 2:
            raise ValueError(
                f"Tastes: phi must be 2-D (items x tastes), got shape {np.shape(self.phi)}"
            )
        n, b = np.shape(self.phi)
        checks = {
            "offset": np.shape(self.offset) == (n,),
            "popularity": np.shape(self.popularity) == (n,),
            "names": len(self.names) == b,
            "prior_mean": np.shape(self.prior_mean) == (b,),
            "prior_cov": np.shape(self.prior_cov) == (b, b),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"Tastes: {bad} do not match phi's {n} items x {b} tastes")
        finite = ("phi", "offset", "popularity", "prior_mean", "prior_cov")
        bad = [k for k in finite if not np.isfinite(np.asarray(getattr(self, k), float)).all()]
        if bad:
            raise ValueError(f"Tastes: {bad} must be finite")
        cov = np.asarray(self.prior_cov, dtype=np.float64)
        # eigvalsh reads one triangle: an asymmetric matrix would pass as another one.
        if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12 * max(np.abs(cov).max(), 1.0)):
            raise ValueError("Tastes: prior_cov must be symmetric")
        if np.linalg.eigvalsh(cov).min() <= 0:
            raise ValueError("Tastes: prior_cov must be positive definite")


class Question(int):
    """An item question: the item index, with ``why`` (which base tastes it tells apart)."""

    why: str = ""

    def __new__(cls, item: int, why: str = ""):
        q = super().__new__(cls, item)
        q.why = why
        return q


class PairQuestion(tuple):
    """A pair question ``(i, j)``: "which do you prefer?", with ``why``."""

    why: str = ""

    def __new__(cls, i: int, j: int, why: str = ""):
        q = super().__new__(cls, (int(i), int(j)))
        q.why = why
        return q


class GroupQuestion(tuple):
    """A group question ``(c_1, ..., c_K)`` over base tastes: "which of these groups is closest
    to you?", answered with one of the tastes shown, ``False`` for "none of these" or ``None``
    for no opinion. ``names`` holds the tastes' display names, ``why`` says what it tells
    apart."""

    why: str = ""
    names: tuple = ()

    def __new__(cls, tastes, why: str = "", names=()):
        q = super().__new__(cls, tuple(int(c) for c in tastes))
        q.why, q.names = why, tuple(names)
        return q


def _top_direction(cov: np.ndarray, iters: int = 30) -> np.ndarray:
    """The leading eigenvector of a covariance, by power iteration from the all-ones direction
    (a direction to spread pair candidates along: approximate is enough, and for B of a few
    dozen this is ten times faster than a full eigendecomposition). A fixed start: the largest
    diagonal entry, the old start, flipped between tied entries with rounding, so a resumed
    interview could ask another pair."""
    v = np.full(len(cov), 1.0 / np.sqrt(max(len(cov), 1)))
    for _ in range(iters):
        w = cov @ v
        v = w / max(np.linalg.norm(w), 1e-300)
    return v


FORMAT_VERSION = 3  # 3: group answers; version 2 states (item and pair answers) still read
POSTERIOR_WEIGHT = 1.0
DISLIKE_WEIGHT = 0.0
WEIGH_ANSWERS = True
# "likely" questions: how many of the first are exploration questions instead (PReF's
# criterion on the taste posterior, outside the list's top: coverage of the tastes before the
# list steers the questions), and every how many answers one more is asked (0: never). Off by
# default: on MovieLens new users every schedule measured lowered the list (BENCHMARKS.md).
EXPLORE_FIRST = 0
EXPLORE_EVERY = 0
EXPLORE_WITH = "information"
# Group questions ("which of these tastes is closest to you?", a choice among GROUP_SIZE named
# tastes or "none"): how many open the interview. The answer's likelihood is a multinomial
# logit over the shown tastes' utilities, z_c = CHOICE_SCALE (lam_c - m0_c) / sd_c (the
# taste's weight in prior standard deviations above the average user), and "none" at
# z = CHOICE_SCALE * CHOICE_NONE. A chosen taste's GROUP_ITEMS most distinctive items join the
# list's fold-in as a soft history, each weighing GROUP_WEIGHT (a "yes" weighs up to 1).
# Three: with the default "have you liked it?" questions the third made the list more robust
# to noisy answers (ML-100K, 376 new users, 20% of the answers flipped or "no opinion": +0.011
# NDCG@10 after 10 answers) and no worse with clean ones (BENCHMARKS.md, fifth pass).
GROUPS = 3
GROUP_SIZE = 4
CHOICE_SCALE = 2.0
CHOICE_NONE = 0.5
GROUP_ITEMS = 10
GROUP_WEIGHT = 0.5
# Only tastes whose prior mean share is at least GROUP_MIN_SHARE / B are shown: a niche taste
# (named by obscure titles, chosen on the strength of one or two of the user's films) tells
# the list little.
GROUP_MIN_SHARE = 1.0
# Group question ties: candidate tastes whose gains lie within this relative distance of the
# best are tied (before any answer every taste's first-slot gain is analytically the same), and
# the tie goes to the largest prior mean share, then the lowest index.
GROUP_TIE = 1e-9


def _item_array(name: str, values, n: int, unique: bool = True) -> np.ndarray:
    """Item indices as int64, checked: integers (floats are refused, not truncated), in
    0..n-1 and, with `unique`, each once."""
    a = np.asarray(values)
    if a.size and a.dtype.kind not in "iu":
        raise InvalidInputError(
            f"{name} must hold integer item indices, got {a.dtype} values (e.g. {a.ravel()[0]!r})"
        )
    a = a.astype(np.int64).ravel()
    bad = a[(a < 0) | (a >= n)]
    if bad.size:
        raise InvalidInputError(f"{name}: item {int(bad[0])} is outside 0..{n - 1}")
    if unique and np.unique(a).size != a.size:
        vals, counts = np.unique(a, return_counts=True)
        raise InvalidInputError(f"{name}: item {int(vals[counts > 1][0])} appears twice")
    return a


def _is_taste(a) -> bool:
    """Whether a group answer is a chosen taste (not "none" = False, not "no opinion" = None)."""
    return a is not None and a is not False


def _check_choice(q: GroupQuestion, choice) -> None:
    """Refuses a group answer that is not one of the shown tastes, False ("none of these") or
    None ("no opinion")."""
    if choice is None or choice is False:
        return
    ok = (
        not isinstance(choice, (bool, np.bool_))
        and isinstance(choice, (int, np.integer))
        and int(choice) in q
    )
    if not ok:
        raise InvalidInputError(
            f"group answer {choice!r} is not one of the tastes shown {tuple(q)}: answer with "
            "one of them, False for none of these or None for no opinion"
        )


def _tie_break(gains: np.ndarray, cands: np.ndarray, prior_mean: np.ndarray) -> int:
    """The candidate of largest gain; among those within a relative ``GROUP_TIE`` of the best
    (ties up to rounding), the one of largest prior mean share, then the lowest index. The same
    rule whatever order or precision the gains were computed in."""
    gains = np.asarray(gains, dtype=np.float64)
    cands = np.asarray(cands, dtype=np.int64)
    ok = np.isfinite(gains)
    if not ok.any():
        return int(cands.min())
    best = gains[ok].max()
    near = ok & (gains >= best - GROUP_TIE * abs(best))
    c, share = cands[near], np.asarray(prior_mean, dtype=np.float64)[cands[near]]
    return int(c[np.lexsort((c, -share))[0]])


def distinctive(tastes: Tastes, n: int) -> np.ndarray:
    """``(B, n)`` int64: each taste's `n` most distinctive items (-1 padded), the items whose
    ``P(j | c) ln(P(j | c) / P(j))`` is largest among those the taste likes more than anyone,
    as :meth:`personae.AMPCF.distinctive_items` (``P(j | c) = P(j) exp(phi_c(j))``, ``P(j)``
    the popularity's share). Cached on the taste tables."""
    cache = tastes.__dict__.setdefault("_distinctive", {})
    if n not in cache:
        phi = np.asarray(tastes.phi, dtype=np.float64)
        pop = np.maximum(np.asarray(tastes.popularity, dtype=np.float64), 0.0)
        p = pop / pop.sum() if pop.sum() > 0 else np.full(len(pop), 1.0 / len(pop))
        score = (p[:, None] * np.exp(phi)) * phi
        score[phi <= 0] = -np.inf
        k = min(n, len(phi))
        order = np.argsort(-score, axis=0, kind="stable")[:k].T
        ok = np.isfinite(np.take_along_axis(score.T, order, 1))
        out = np.full((phi.shape[1], n), -1, dtype=np.int64)
        out[:, :k] = np.where(ok, order, -1)
        cache[n] = out
    return cache[n]


def _tastes_of(model) -> Tastes:
    """The model's base tastes, built once per model object (every interview of a model shares
    them, and with them the first question, which is the same for every new user)."""
    cached = getattr(model, "_interview_tastes", None)
    if cached is None:
        cached = model.base_tastes()
        try:
            model._interview_tastes = cached
        except AttributeError:  # a model that refuses attributes: rebuilt each time
            pass
    return cached


def fingerprint(tastes: Tastes) -> str:
    """A short hash of the taste tables an interview's answers are interpreted against: a saved
    interview resumes only on the model it was made for."""
    h = hashlib.sha256()
    for a in (tastes.phi, tastes.offset, tastes.prior_mean, tastes.prior_cov):
        a = np.ascontiguousarray(a, dtype=np.float32)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _standard(v: np.ndarray) -> np.ndarray:
    """`v` centred and scaled to unit standard deviation over the catalogue, so that scores of
    different scales (fold-in votes, log-odds utilities) can be added with plain weights."""
    sd = v.std()
    return (v - v.mean()) / (sd if sd > 0 else 1.0)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


class Posterior:
    """Laplace posterior over a user's taste weights from slip-logistic answers.

    ``answers`` are rows ``(v, o, y)``: utility ``lam . v + o``, answer y in {0, 1}."""

    def __init__(self, mean, cov, slip: float):
        self.m0 = np.asarray(mean, dtype=np.float64)
        self.P0 = np.linalg.inv(np.asarray(cov, dtype=np.float64))
        self.slip = float(slip)
        self.mean = self.m0.copy()
        self.precision = self.P0.copy()
        self.cov = np.linalg.inv(self.precision)

    def _terms(self, u):
        s = self.slip
        sig = _sigmoid(u)
        p = np.clip(s / 2 + (1 - s) * sig, 1e-12, 1 - 1e-12)
        d = (1 - s) * sig * (1 - sig)  # dp/du
        return p, d

    def info(self, u):
        """Expected (Fisher) information of one answer at utility u."""
        p, d = self._terms(np.asarray(u, dtype=np.float64))
        return d * d / (p * (1 - p))

    def _choice(self, W, b, lam):
        """A group answer's option probabilities at lam: the softmax p of ``W lam + b`` and
        with slips ``q = s / K + (1 - s) p`` (K options)."""
        z = W @ lam + b
        p = np.exp(z - z.max())
        p /= p.sum()
        q = np.clip(self.slip / len(p) + (1 - self.slip) * p, 1e-300, 1.0)
        return p, q

    def choice_info(self, W, b, lam):
        """Expected (Fisher) information of one group answer at lam:
        ``sum_k g_k g_k^T / q_k`` with ``g_k = (1 - s) p_k (W_k - p^T W)``, returned as its
        factor G (B x K) with ``G G^T`` the information."""
        p, q = self._choice(W, b, lam)
        g = ((1 - self.slip) * p)[:, None] * (W - p @ W)
        return (g / np.sqrt(q)[:, None]).T

    def neg_log_post(self, lam, V, o, y, groups=()):
        p, _ = self._terms(V @ lam + o)
        r = lam - self.m0
        f = 0.5 * r @ self.P0 @ r - np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
        for W, b, k in groups:
            f -= np.log(self._choice(W, b, lam)[1][k])
        return f

    def fit(self, V, o, y, iters: int = 100, groups=()):
        """MAP by Newton's method with step halving (Fisher scoring where the observed
        Hessian is not positive definite: the slip likelihood is not log-concave everywhere,
        and always for group answers), then the Laplace precision at the MAP. `groups`:
        ``(W, b, k)`` per group answer, option utilities ``W lam + b``, option k chosen."""
        V = np.asarray(V, dtype=np.float64).reshape(-1, len(self.m0))
        o, y = np.asarray(o, dtype=np.float64), np.asarray(y, dtype=np.float64)
        # With slips the posterior can have several optima: Newton from the last optimum and
        # from the prior, the lower one kept (the same rule live and on a resume).
        best = None
        for start in (self.mean, self.m0) if np.any(self.mean != self.m0) else (self.m0,):
            lam, f = self._newton(start.copy(), V, o, y, iters, groups)
            if best is None or f < best[1]:
                best = (lam, f)
        lam = best[0]
        u = V @ lam + o
        self.mean = lam
        self.precision = self.P0 + (V.T * self.info(u)) @ V
        for W, b, _ in groups:
            G = self.choice_info(W, b, lam)
            self.precision += G @ G.T
        self.cov = np.linalg.inv(self.precision)
        return self

    def _newton(self, lam, V, o, y, iters, groups):
        """Newton's method with step halving from `lam`: (the optimum, its objective)."""
        f = self.neg_log_post(lam, V, o, y, groups)
        for _ in range(iters):
            u = V @ lam + o
            p, d = self._terms(u)
            r = y / p - (1 - y) / (1 - p)
            grad = self.P0 @ (lam - self.m0) - V.T @ (d * r)
            sig = _sigmoid(u)
            d2 = d * (1 - 2 * sig)  # d^2 p / du^2
            observed = d * d * (y / p**2 + (1 - y) / (1 - p) ** 2) - d2 * r
            H = self.P0 + (V.T * observed) @ V
            try:
                np.linalg.cholesky(H)
            except np.linalg.LinAlgError:
                H = self.P0 + (V.T * (d * d / (p * (1 - p)))) @ V
            for W, b, k in groups:
                pc, qc = self._choice(W, b, lam)
                grad = grad - (1 - self.slip) * pc[k] / qc[k] * (W[k] - pc @ W)
                G = self.choice_info(W, b, lam)
                H = H + G @ G.T
            step = np.linalg.solve(H, grad)
            t = 1.0
            while True:
                cand = lam - t * step
                fc = self.neg_log_post(cand, V, o, y, groups)
                if fc <= f or t < 1e-8:
                    break
                t *= 0.5
            moved = np.max(np.abs(cand - lam))
            lam, f = cand, min(fc, f)
            if moved < 1e-12:
                break
        return lam, f


class Interview:
    """An adaptive interview that places a new user in a persona model's mix of base tastes.

    >>> interview = personae.Interview(model, kind="item", seed=0)   # doctest: +SKIP
    >>> q = interview.next_question()           # an item index, with q.why
    >>> interview.answer(q, liked=True)          # or False, or None for "no opinion"
    >>> ids, scores, persona = interview.recommend(n=10)

    Args:
        model: a persona model (anything with ``base_tastes()``), or a :class:`Tastes`. With a
            model that scores histories (``score``, as :class:`personae.AMPCF`), the list folds
            the liked answers in as a history through the model's own scorer.
        pool: item indices the questions may ask about; default: the most popular items (the
            top 10% of the catalogue, at least 200), which people can answer about.
        kind: ``"item"`` ("have you liked ...?", see `asks`) or ``"pair"`` ("which one?").
        seed: for the ``"random"`` strategy and for pair candidates.
        strategy: ``"likely"`` (default): the pool item the list scores highest (a "yes" is
            likely and folds a strong item in; with ``asks="would-like"`` outside the list's
            own top ``SKIP_TOP``, so as not to spend its hits; pairs use the information
            criterion);
            ``"information"`` (PReF's criterion on the taste posterior), ``"random"``,
            ``"popular"``, ``"uncertainty"``.
        slip: probability of an answer given at random, in [0, 1).
        posterior_weight: weight of the posterior utility in the list, beside the model's
            fold-in of the liked answers (both standardised over the catalogue).
        dislike_weight: how far items like the disliked answers are pushed down (the model's
            fold-in of the disliked answers, standardised, times this weight).
        names: display names of the base tastes (default: the model's, see
            :meth:`personae.AMPCF.base_tastes`).
        explore_first, explore_every: exploration questions among the "likely" ones.
        groups: how many group questions ("which of these tastes is closest to you?", a
            :class:`GroupQuestion`) open the interview (default ``GROUPS``).
        group_size: tastes shown per group question (default ``GROUP_SIZE``, at most the
            model's tastes).
        asks: what an item question asks: ``"liked-before"`` (default, "have you seen and
            liked it?", a new user telling their past: a "no" may be an item not met yet, so
            only liked items leave the list, and "likely" questions ask its best item) or
            ``"would-like"`` ("would you watch it?": a "no" means "not for me", so every asked
            item leaves the list, and "likely" questions skip its top ``SKIP_TOP``). A state
            saved before this setting existed resumes as ``"would-like"``.
    """

    def __init__(
        self,
        model,
        pool=None,
        kind: str = "item",
        seed: int = 0,
        strategy: str = "likely",
        slip: float = 0.1,
        posterior_weight: float = POSTERIOR_WEIGHT,
        dislike_weight: float = DISLIKE_WEIGHT,
        names=None,
        explore_first: int = None,
        explore_every: int = None,
        groups: int = None,
        group_size: int = None,
        asks: str = ASKS_DEFAULT,
    ):
        tastes = model if isinstance(model, Tastes) else _tastes_of(model)
        if names is not None:  # display names only: the answers' meaning is unchanged
            tastes = dataclasses.replace(tastes, names=list(names))
        # The model's own scorer folds the answers in as a history (absent for bare Tastes).
        self.model = None if isinstance(model, Tastes) or not hasattr(model, "score") else model
        if kind not in ("item", "pair"):
            raise ValueError(f"kind must be 'item' or 'pair', got {kind!r}")
        if asks not in ASKS:
            raise ValueError(f"asks must be one of {ASKS}, got {asks!r}")
        self.asks = asks
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}")
        if not 0.0 <= slip < 1.0:
            raise ValueError(f"slip must lie in [0, 1), got {slip}")
        self.tastes, self.kind, self.seed = tastes, kind, integer("seed", seed)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        self.strategy, self.slip = strategy, float(slip)
        self.posterior_weight = real("posterior_weight", posterior_weight)
        self.dislike_weight = real("dislike_weight", dislike_weight)
        for name in ("posterior_weight", "dislike_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        self.explore_first = integer(
            "explore_first", EXPLORE_FIRST if explore_first is None else explore_first
        )
        self.explore_every = integer(
            "explore_every", EXPLORE_EVERY if explore_every is None else explore_every
        )
        if self.explore_first < 0 or self.explore_every < 0:
            raise ValueError("explore_first and explore_every must be >= 0")
        self.groups = integer("groups", GROUPS if groups is None else groups)
        n_tastes = len(tastes.prior_mean)
        # The default size shrinks to the model's tastes; a size given explicitly is checked.
        self.group_size = (
            min(GROUP_SIZE, n_tastes) if group_size is None else integer("group_size", group_size)
        )
        if self.groups < 0:
            raise ValueError(f"groups must be >= 0, got {self.groups}")
        if self.groups and not 1 <= self.group_size <= n_tastes:
            raise ValueError(f"group_size must lie in 1..{n_tastes} (the tastes), got {group_size}")
        # The tastes' prior scale: a group answer's utilities are weights in prior standard
        # deviations above the average user.
        self._prior_sd = np.sqrt(np.diag(np.asarray(tastes.prior_cov, dtype=np.float64)))
        n = tastes.phi.shape[0]
        self.n_items = n
        if pool is None:
            size = min(n, max(200, n // 10))
            pool = np.argsort(-tastes.popularity, kind="stable")[:size]
        self.pool = _item_array("pool", pool, n, unique=False)
        if self.pool.size == 0:
            raise InvalidInputError("pool is empty: give at least one item index")
        self.pool = np.unique(self.pool)
        pool = self.pool
        self.phi = np.asarray(tastes.phi, dtype=np.float64)
        self.offset = np.asarray(tastes.offset, dtype=np.float64)
        # float32 copies for the list: one matrix-vector product over the catalogue per answer,
        # memory-bound, so half the bytes is half the time.
        self._phi32 = np.ascontiguousarray(self.phi, dtype=np.float32)
        self._offset32 = self.offset.astype(np.float32)
        # The pool's rows, gathered once: every question scores the whole pool.
        self._pool_phi = np.ascontiguousarray(self.phi[pool])
        self._pool_offset = self.offset[pool]
        self._pool_pop = np.asarray(tastes.popularity, dtype=np.float64)[pool]
        self.post = Posterior(tastes.prior_mean, tastes.prior_cov, self.slip)
        self.answers: list[tuple] = []  # (question, answer) in order
        self._pending = None

    # -- state ---------------------------------------------------------------------------
    @property
    def weights(self) -> np.ndarray:
        """The posterior mean of the user's weights over the base tastes (B)."""
        return self.post.mean.copy()

    def mix(self) -> np.ndarray:
        """The user's taste mix as the answers show it (B, sums to 1; uniform before any
        answer moves it): how far the posterior mean rose above the prior mean, clipped at 0.
        The prior mean is the average training user, so this is what sets the user apart
        (the raw weights keep the prior's mass on tastes the questions never reached)."""
        d = np.maximum(self.post.mean - self.post.m0, 0.0)
        total = d.sum()
        return d / total if total > 0 else np.full(d.size, 1.0 / d.size)

    @property
    def uncertainty(self) -> np.ndarray:
        """The posterior standard deviation of each weight (B)."""
        return np.sqrt(np.diag(self.post.cov))

    def asked(self) -> np.ndarray:
        """Item indices asked about so far (group questions ask about tastes, not items)."""
        items = [
            i
            for q, _ in self.answers
            if not isinstance(q, GroupQuestion)
            for i in (q if isinstance(q, tuple) else (q,))
        ]
        return np.unique(np.asarray(items, dtype=np.int64))

    def chosen(self) -> np.ndarray:
        """The tastes chosen in group questions, in order (int64)."""
        return np.asarray(
            [a for q, a in self.answers if isinstance(q, GroupQuestion) and _is_taste(a)],
            dtype=np.int64,
        )

    # -- questions -----------------------------------------------------------------------
    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, len(self.answers)])

    def _why(self, v) -> str:
        """The base tastes a question tells apart: the largest components of H^-1 v."""
        c = self.post.cov @ v
        order = np.argsort(-np.abs(c), kind="stable")[:2]
        names = self.tastes.names
        return " vs ".join(f"{names[b]} ({'+' if c[b] > 0 else '-'})" for b in order)

    def next_question(self):
        """The next question: an item index (:class:`Question`) or a pair of item indices
        (:class:`PairQuestion`), each with ``why``; the first ``groups`` questions are
        :class:`GroupQuestion` s over named tastes. Items are never asked twice."""
        first = None
        if not self.answers and (self.groups or self.strategy != "random"):
            # Before any answer every new user of a model gets the same question: computed
            # once per taste tables and settings, then read back. A group question depends on
            # the prior, the slip and the group settings only (not the strategy, kind or pool).
            cache = self.tastes.__dict__.setdefault("_first_questions", {})
            if self.groups:
                key = ("group", self.slip, self.group_size, GROUP_MIN_SHARE, GROUP_TIE)
                key += (CHOICE_SCALE, CHOICE_NONE)
            else:
                key = (
                    self.kind,
                    self.strategy,
                    self.slip,
                    self.seed if self.kind == "pair" else 0,
                    self.explore_first,
                    self.explore_every,
                    self.asks,
                    hashlib.sha1(self.pool.tobytes()).hexdigest(),
                )
            first = cache.get(key)
            if first is not None:
                self._pending = first
                return first
        free = ~np.isin(self.pool, self.asked(), assume_unique=True)
        need = 2 if self.kind == "pair" else 1
        q = self._pick_group() if len(self.answers) < self.groups else None
        if q is not None and any(
            isinstance(p, GroupQuestion) and set(p) == set(q) and a is not None
            for p, a in self.answers
        ):
            # Too few tastes for another group: the same tastes again would count one choice
            # as new evidence. The interview goes on with item questions. (After "no opinion"
            # nothing was learned and the same group is still the best question: it is asked
            # again; skipping it cost 0.010 NDCG@10 under noisy answers, BENCHMARKS.md.)
            q = None
        if q is None:
            if free.sum() < need:
                raise ValueError("no question left: every item of the pool was asked")
            if self.kind == "item":
                j = int(self.pool[self._pick_item(free)])
                q = Question(j, self._why(self.phi[j]))
            else:
                i, j = self._pick_pair(self.pool[free])
                q = PairQuestion(i, j, self._why(self.phi[i] - self.phi[j]))
        if not self.answers and (self.groups or self.strategy != "random"):
            cache[key] = q
        self._pending = q
        return q

    def _choice_rows(self, shown):
        """A group question's option utilities ``W lam + b``: the shown tastes' weights in
        prior standard deviations above the prior mean, times CHOICE_SCALE, and "none" (the
        last option) at CHOICE_SCALE * CHOICE_NONE."""
        shown = np.asarray(shown, dtype=np.int64)
        k, n_tastes = len(shown), len(self.post.m0)
        W = np.zeros((k + 1, n_tastes))
        scale = CHOICE_SCALE / np.maximum(self._prior_sd[shown], 1e-12)
        W[np.arange(k), shown] = scale
        b = np.append(-scale * self.post.m0[shown], CHOICE_SCALE * CHOICE_NONE)
        return W, b

    def _pick_group(self) -> GroupQuestion:
        """The tastes to show, chosen greedily to most increase ``log det H`` by the answer's
        expected information at the posterior mean (by the determinant lemma, a small
        ``(K+1) x (K+1)`` determinant per candidate, all candidates of a slot at once:
        :meth:`_group_gains`). Ties (gains within a relative ``GROUP_TIE`` of the best) go to
        the largest prior mean share, then the lowest index: before any answer every taste's
        gain for the first slot is analytically the same, and the choice must not depend on
        floating-point rounding."""
        shown: list[int] = []
        m0 = self.post.m0
        cands = np.arange(len(m0))
        if GROUP_MIN_SHARE > 0 and m0.sum() > 0:
            big = np.flatnonzero(m0 >= GROUP_MIN_SHARE * m0.sum() / len(m0))
            # The largest tastes make up the group when too few pass the bar.
            if len(big) < self.group_size:
                big = np.argsort(-m0, kind="stable")[: self.group_size]
            cands = np.sort(big)
        for _ in range(self.group_size):
            free = cands[~np.isin(cands, shown)]
            shown.append(_tie_break(self._group_gains(shown, free), free, m0))
        names = [self.tastes.names[c] for c in shown]
        return GroupQuestion(shown, "which of these tastes is yours", names)

    def _group_gains(self, shown, cands: np.ndarray) -> np.ndarray:
        """``log det(I + G^T S G)`` of the group question showing ``shown + [c]``, for every
        candidate c at once (the loop's ``choice_info`` and ``slogdet``, batched). The shown
        tastes' option utilities are ``z = a (lam - m0) / sd`` and "none" ``a CHOICE_NONE``;
        the information factor's rows are ``G^T = diag(r) (I - 1 p^T) W`` with
        ``r_k = (1 - s) p_k / sqrt(q_k)``, so ``G^T S G = diag(r) P (W S W^T) P^T diag(r)``,
        where ``W S W^T`` is the shown tastes' prior-scaled covariance (zero for "none")."""
        cands = np.asarray(cands, dtype=np.int64)
        lam, m0, cov = self.post.mean, self.post.m0, self.post.cov
        scale = CHOICE_SCALE / np.maximum(self._prior_sd, 1e-12)
        idx = np.concatenate(
            [
                np.broadcast_to(np.asarray(shown, dtype=np.int64), (cands.size, len(shown))),
                cands[:, None],
            ],
            axis=1,
        )  # (n, t): the shown tastes, then the candidate
        n, t = idx.shape
        k = t + 1  # options: the tastes and "none"
        z = np.empty((n, k))
        z[:, :t] = (scale * (lam - m0))[idx]
        z[:, t] = CHOICE_SCALE * CHOICE_NONE
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        s = self.slip
        q = np.clip(s / k + (1 - s) * p, 1e-300, 1.0)
        r = (1 - s) * p / np.sqrt(q)
        C = np.zeros((n, k, k))
        C[:, :t, :t] = (cov * scale[:, None] * scale[None, :])[idx[:, :, None], idx[:, None, :]]
        P = np.eye(k)[None] - p[:, None, :]  # P[k, j] = delta_kj - p_j
        M = P @ C @ P.transpose(0, 2, 1)
        M *= r[:, :, None] * r[:, None, :]
        return np.linalg.slogdet(np.eye(k)[None] + M)[1]

    def _criterion(self, V, o):
        u = V @ self.post.mean + o
        # v^T S v for every row at once: one matrix product, not an einsum over three axes.
        quad = ((V @ self.post.cov) * V).sum(1)
        return self.post.info(u) * quad, u

    def _pick_item(self, free: np.ndarray) -> int:
        """The position in the pool of the next item (`free` masks the pool)."""
        where = np.flatnonzero(free)
        if self.strategy == "random":
            return int(self._rng().choice(where))
        if self.strategy == "likely":
            s = self._list_scores().astype(np.float64)
            s[self.asked()] = -np.inf
            # "liked-before": a "no" keeps the item on the list, so its best item is asked.
            k = min(SKIP_TOP if self.asks == "would-like" else 0, s.size - 1)
            top = np.argpartition(-s, k)[:k] if k > 0 else np.empty(0, np.int64)
            keep = free & ~np.isin(self.pool, top)
            if not keep.any():
                keep = free
            if self._exploring():
                # Coverage: the criterion on the taste posterior, still outside the list's top.
                score, u = self._criterion(self._pool_phi, self._pool_offset)
                if EXPLORE_WITH == "uncertainty":
                    score = -np.abs(self.post._terms(u)[0] - 0.5)
                return int(np.argmax(np.where(keep, score, -np.inf)))
            return int(np.argmax(np.where(keep, s[self.pool], -np.inf)))
        if self.strategy == "popular":
            return int(where[np.argmax(self._pool_pop[where])])
        score, u = self._criterion(self._pool_phi, self._pool_offset)
        if self.strategy == "uncertainty":
            score = -np.abs(self.post._terms(u)[0] - 0.5)
        score = np.where(free, score, -np.inf)
        return int(np.argmax(score))  # first maximum: the lower index on ties

    def _exploring(self) -> bool:
        """Whether the next "likely" question is an exploration (uncertainty) question."""
        k = len(self.answers)
        every = self.explore_every
        return k < self.explore_first or (every > 0 and k % every == every - 1)

    def _pick_pair(self, free: np.ndarray) -> tuple[int, int]:
        rng = self._rng()
        if self.strategy == "random":
            i, j = rng.choice(free, size=2, replace=False)
            return int(i), int(j)
        if self.strategy == "popular":
            top = free[np.argsort(-self.tastes.popularity[free], kind="stable")[:2]]
            return int(top[0]), int(top[1])
        # Candidates: the items spread furthest along the most uncertain direction, plus a few
        # at random; every pair among them is scored.
        proj = self.phi[free] @ _top_direction(self.post.cov)
        order = np.argsort(proj, kind="stable")
        extra = rng.choice(free.size, size=min(16, free.size), replace=False)
        cand = free[np.unique(np.concatenate([order[:24], order[-24:], extra]))]
        a, b = np.triu_indices(cand.size, 1)
        V = self.phi[cand[a]] - self.phi[cand[b]]
        o = self.offset[cand[a]] - self.offset[cand[b]]
        score, u = self._criterion(V, o)
        if self.strategy == "uncertainty":
            score = -np.abs(self.post._terms(u)[0] - 0.5)
        k = int(np.argmax(score))
        return int(cand[a[k]]), int(cand[b[k]])

    # -- answers -------------------------------------------------------------------------
    def answer(self, question, liked) -> None:
        """Records the answer to `question` (the last one asked): ``True`` / ``False`` for an
        item ("yes" / "no") or a pair ("the first" / "the second"), ``None`` for "no opinion"
        (recorded, never asked again, the posterior unchanged). A :class:`GroupQuestion` is
        answered with one of the tastes it shows, ``False`` for "none of these" or ``None``;
        anything else raises :class:`personae.InvalidInputError`."""
        if (
            self._pending is None
            or isinstance(question, GroupQuestion) != isinstance(self._pending, GroupQuestion)
            or tuple(np.atleast_1d(question)) != tuple(np.atleast_1d(self._pending))
        ):
            raise ValueError(
                f"answer to {question!r}: that is not the question just asked "
                f"({self._pending!r}); call next_question() and answer it"
            )
        if isinstance(self._pending, GroupQuestion):
            _check_choice(self._pending, liked)
            liked = liked if liked is None or liked is False else int(liked)
        elif isinstance(liked, np.bool_):
            liked = bool(liked)
        elif not (liked is True or liked is False or liked is None):
            # By identity: 0, 1 and 1.0 compare equal to the bools, and a pair answered with an
            # item index (0) would read as "the second".
            raise TypeError(f"liked must be True, False or None, got {liked!r}")
        self.answers.append((self._pending, liked))
        self._pending = None
        self._refit()

    def _refit(self) -> None:
        rows = [(q, a) for q, a in self.answers if a is not None]
        if not rows:
            self.post = Posterior(self.tastes.prior_mean, self.tastes.prior_cov, self.slip)
            return
        items = [(q, a) for q, a in rows if not isinstance(q, GroupQuestion)]
        groups = []
        for q, a in rows:
            if isinstance(q, GroupQuestion):
                W, b = self._choice_rows(q)
                groups.append((W, b, len(q) if a is False else list(q).index(a)))
        b = len(self.post.m0)
        V = np.array([self._v(q) for q, _ in items]).reshape(-1, b)
        o = np.array([self._o(q) for q, _ in items], dtype=np.float64)
        y = np.array([1.0 if a else 0.0 for _, a in items])
        self.post.fit(V, o, y, groups=groups)

    def _v(self, q):
        return self.phi[q[0]] - self.phi[q[1]] if isinstance(q, tuple) else self.phi[q]

    def _o(self, q):
        return self.offset[q[0]] - self.offset[q[1]] if isinstance(q, tuple) else self.offset[q]

    # -- recommendations -----------------------------------------------------------------
    def liked(self) -> np.ndarray:
        """Items the answers say the user likes: "yes" items and the chosen item of pairs."""
        return self._answered(True)

    def disliked(self) -> np.ndarray:
        """Items the answers say the user does not like: "no" items and the other item of
        pairs."""
        return self._answered(False)

    def _answered(self, want: bool) -> np.ndarray:
        out = []
        for q, a in self.answers:
            if a is None or isinstance(q, GroupQuestion):
                continue
            if isinstance(q, tuple):
                out.append(q[0] if a == want else q[1])
            elif a == want:
                out.append(q)
        return np.asarray(out, dtype=np.int64)

    def _fold(self, items: np.ndarray, weights=None) -> np.ndarray:
        """The model's scores of every item for a history made of `items` (float64)."""
        w = np.ones(len(items), np.float32) if weights is None else weights.astype(np.float32)
        x = sp.csr_matrix(
            (w, (np.zeros(len(items), np.int64), items)),
            shape=(1, self.n_items),
        )
        return self.model.score(x)[0].astype(np.float64)

    def _list_scores(self) -> np.ndarray:
        """:meth:`scores`, computed once per set of answers (questions and lists share it)."""
        key = len(self.answers)
        if getattr(self, "_scores_at", None) != key:
            self._scores, self._scores_at = self.scores(), key
        return self._scores

    def scores(self) -> np.ndarray:
        """The list's score of every item (float32, items). With a model and at least one liked
        answer: the model's fold-in of the liked items (each weighted by its posterior
        probability of being meant rather than a slip, ``(1 - s) sigmoid(u) / P(yes)``), plus
        ``posterior_weight`` times the posterior utility, minus ``dislike_weight`` times the
        fold-in of the disliked items, each standardised over the catalogue. Otherwise the
        posterior utility alone (before any "yes" that is the prior, i.e. close to
        popularity)."""
        post = self._phi32 @ self.post.mean.astype(np.float32) + self._offset32
        liked = self.liked()
        if self.model is None or (liked.size == 0 and self.chosen().size == 0):
            return post.astype(np.float32)
        weights = np.ones(len(liked))
        if WEIGH_ANSWERS and self.slip > 0 and liked.size:
            # Each "yes" weighs its posterior probability of being meant, not a slip:
            # (1 - s) sigmoid(u) / P(yes). A stray "yes" the rest of the answers contradict
            # pulls the list less.
            sig = _sigmoid(self.phi[liked] @ self.post.mean + self.offset[liked])
            weights = (1 - self.slip) * sig / (self.slip / 2 + (1 - self.slip) * sig)
        items, weights = self._with_groups(liked, weights)
        s = _standard(self._fold(items, weights).astype(np.float32))
        if self.posterior_weight:
            s += self.posterior_weight * _standard(post)
        disliked = self.disliked()
        if self.dislike_weight and disliked.size:
            s -= self.dislike_weight * _standard(self._fold(disliked))
        return s.astype(np.float32)

    def _with_groups(self, liked: np.ndarray, weights: np.ndarray):
        """The fold-in's history: the liked items with their weights, plus each chosen taste's
        GROUP_ITEMS most distinctive items at GROUP_WEIGHT (a liked item keeps its own weight
        when it is also one of those)."""
        chosen = self.chosen()
        if chosen.size == 0 or GROUP_WEIGHT <= 0:
            return liked, np.asarray(weights, dtype=np.float64)
        top = distinctive(self.tastes, GROUP_ITEMS)[chosen].ravel()
        top = np.setdiff1d(top[top >= 0], liked)
        items = np.concatenate([liked, top]).astype(np.int64)
        w = np.concatenate([np.asarray(weights, dtype=np.float64), np.full(top.size, GROUP_WEIGHT)])
        return items, w

    def excluded(self) -> np.ndarray:
        """The items the list leaves out: with ``asks="liked-before"`` (the default) the liked
        ones (an item answered "no" or "no opinion" may be one the user has not met yet, so it
        may be listed); with ``asks="would-like"`` and for pair questions (a user comparing two
        items knows both) every item asked."""
        return self.liked() if self.asks == "liked-before" and self.kind == "item" else self.asked()

    def recommend(self, n: int = 10):
        """Top-`n` items for the user, never one of :meth:`excluded` (the liked answers; with
        ``asks="would-like"`` or pair questions every item asked): ``(ids int64, scores
        float32, persona int64)`` of length n (padded -1 / -inf / -1).
        ``persona[k]`` is the base taste contributing most to item ``ids[k]`` at the posterior
        mean, ``argmax_b lam_b phi_b(j)``."""
        from personae.models import top_n

        # Excluded items set to -inf in a copy: cheaper than the core's exclusion mask.
        s = self._list_scores().copy()
        s[self.excluded()] = -np.inf
        ids, scores = top_n(s[None, :], n)
        ids, scores = ids[0], scores[0]
        ids[~np.isfinite(scores)] = -1  # excluded items never fill a short list
        contrib = self.phi[np.maximum(ids, 0)] * self.post.mean[None, :]
        persona = np.where(ids >= 0, contrib.argmax(1), -1).astype(np.int64)
        return ids, scores, persona

    def because(self, ids) -> np.ndarray:
        """For each of `ids` (e.g. from :meth:`recommend`), the liked answer behind it: the
        liked item that votes most for it in the model's fold-in (-1 for -1 ids, without a
        model, or before any liked answer)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.full(ids.shape, -1, dtype=np.int64)
        liked = self.liked()
        if self.model is None or liked.size == 0 or not hasattr(self.model, "explain"):
            return out
        x = sp.csr_matrix(
            (np.ones(len(liked), np.float32), (np.zeros(len(liked), np.int64), liked)),
            shape=(1, self.n_items),
        )
        why = self.model.explain(ids[None, :], x, n_history=1)["because"]
        return why[0, :, 0].astype(np.int64)

    # -- saving --------------------------------------------------------------------------
    def to_json(self) -> str:
        """The interview's state as plain JSON: its settings, its answers and the fingerprint
        of the model's tastes it was made for."""
        return json.dumps(
            {
                "format": "personae-interview",
                "version": FORMAT_VERSION,
                "model": fingerprint(self.tastes),
                "kind": self.kind,
                "seed": self.seed,
                "strategy": self.strategy,
                "slip": self.slip,
                "posterior_weight": self.posterior_weight,
                "dislike_weight": self.dislike_weight,
                "explore_first": self.explore_first,
                "explore_every": self.explore_every,
                "groups": self.groups,
                "group_size": self.group_size,
                "asks": self.asks,
                "pool": self.pool.tolist(),
                "answers": [
                    {"group": list(q), "choice": a}
                    if isinstance(q, GroupQuestion)
                    else [list(np.atleast_1d(q).tolist()), a]
                    for q, a in self.answers
                ],
            }
        )

    @classmethod
    def from_json(cls, model, text: str, names=None) -> Interview:
        """Resumes an interview saved by :meth:`to_json` on the same model. Raises
        :class:`personae.InvalidInputError` for anything else: another format or version,
        another model (its fingerprint), items outside the catalogue, an item answered twice,
        answers that are not yes / no / no opinion."""
        try:
            return cls._from_json(model, text, names)
        except InvalidInputError:
            raise
        except (TypeError, ValueError, KeyError, IndexError) as e:  # any other malformed state
            raise InvalidInputError(f"saved interview: {e}") from None

    @classmethod
    def _from_json(cls, model, text: str, names=None) -> Interview:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"not a saved personae interview: {e}") from None
        if not isinstance(d, dict) or d.get("format") != "personae-interview":
            raise InvalidInputError("not a saved personae interview")
        if d.get("version") not in (2, FORMAT_VERSION):
            raise InvalidInputError(
                f"saved interview has format version {d.get('version')!r}; this personae "
                f"reads version {FORMAT_VERSION}"
            )
        tastes = model if isinstance(model, Tastes) else _tastes_of(model)
        if d.get("model") != fingerprint(tastes):
            raise InvalidInputError(
                "saved interview was made for another model (fingerprint "
                f"{d.get('model')!r}, this model's is {fingerprint(tastes)!r})"
            )
        answers = d.get("answers")
        if not isinstance(answers, list):
            raise InvalidInputError("saved interview: answers must be a list")
        n_tastes = len(tastes.prior_mean)
        groups, items = [], []
        for x in answers:
            if isinstance(x, dict):
                g, c = x.get("group"), x.get("choice")
                if (
                    set(x) != {"group", "choice"}
                    or not isinstance(g, list)
                    or not g
                    or not all(isinstance(t, int) and not isinstance(t, bool) for t in g)
                ):
                    raise InvalidInputError(
                        f"saved interview: group answer {x!r} must be "
                        '{"group": [tastes], "choice": taste, false or null}'
                    )
                bad = [t for t in g if not 0 <= t < n_tastes]
                if bad or len(set(g)) != len(g):
                    raise InvalidInputError(
                        f"saved interview: group {g!r} must hold distinct tastes in "
                        f"0..{n_tastes - 1}"
                    )
                q = GroupQuestion(g)
                _check_choice(q, c)
                groups.append((q, c))
            elif isinstance(x, list) and len(x) == 2 and isinstance(x[0], list):
                items.append(x)
            else:
                raise InvalidInputError(
                    "saved interview: answers must be [[items], answer] pairs or group answers"
                )
        kind = d.get("kind")
        width = 2 if kind == "pair" else 1
        n = tastes.phi.shape[0]
        for q, a in items:
            if len(q) != width or a not in (True, False, None):
                raise InvalidInputError(
                    f"saved interview: answer {[q, a]!r} is not a {kind} question answered "
                    "true, false or null"
                )
        asked = [i for q, _ in items for i in q]
        _item_array("saved interview answers", asked, n)
        _item_array("saved interview pool", d.get("pool", []), n)
        try:
            it = cls(
                model,
                d["pool"],
                kind,
                d["seed"],
                d["strategy"],
                d["slip"],
                d.get("posterior_weight", POSTERIOR_WEIGHT),
                d.get("dislike_weight", DISLIKE_WEIGHT),
                names,
                d.get("explore_first", EXPLORE_FIRST),
                d.get("explore_every", EXPLORE_EVERY),
                d.get("groups", 0),
                d.get("group_size", GROUP_SIZE),
                d.get("asks", ASKS_BEFORE_SETTING),
            )
        except KeyError as e:
            raise InvalidInputError(f"saved interview lacks {e}") from None
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"saved interview: {e}") from None
        for x in answers:
            if isinstance(x, dict):
                q, a = GroupQuestion(x["group"]), x["choice"]
            else:
                q, a = PairQuestion(*x[0]) if len(x[0]) == 2 else Question(x[0][0]), x[1]
            it.answers.append((q, a))
            # Refitted after each answer, as the live interview was: each fit starts from the
            # last one's optimum, and with slips the posterior can have several.
            it._refit()
        it._pending = None
        return it
