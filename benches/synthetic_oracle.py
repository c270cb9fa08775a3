"""How far above the strongest peer any model can get on the synthetic data (issue 23's
synthetic target): oracles that know how ``personae.synthetic()`` made the data.

The generator gives each item one taste and, within it, a popularity ``rank^-zipf``; a user's
interactions are draws from their taste mixture. So an unseen item j is ranked, for every model
that does not know the held-out items, at best by ``pi_u,t(j) p(j | t(j))``: the user's share of
j's taste times j's popularity within it (the chance that j was drawn and held out is increasing
in that product). Rows, on the harness's validation and test splits
(``benches/accuracy.py``'s ``load_dataset("synthetic")``), NDCG@10:

- estimated: the true item tastes, ``p(j | t)`` from the fit matrix's counts (+1), ``pi_u``
  from the user's fit items per taste plus a Dirichlet pull of strength `prior` (x 12 tastes)
  toward the uniform mix;
- true mixture: the generator's own ``pi_u``, with estimated or true within-taste popularity;
- pLSA: no oracle, a mixture model fitted by EM on the fit matrix (Hofmann 1999: ``P(j | u) =
  sum_t theta_ut phi_tj``, `K` tastes, theta smoothed by a Dirichlet pull of strength 4 per
  taste): what a model that has to find the tastes itself reaches.

    python benches/synthetic_oracle.py
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from accuracy import load_dataset

import personae
from personae.metrics import mean_ndcg


def true_popularity(item_taste: np.ndarray, zipf: float = 1.0, seed: int = 0) -> np.ndarray:
    """``p(j | t(j))`` as ``personae.synthetic()`` (default arguments) drew it: its random
    stream replayed up to the popularity ranks."""
    n, n_tastes = len(item_taste), int(item_taste.max()) + 1
    rng = np.random.default_rng(seed)
    if not (rng.permutation(np.arange(n) % n_tastes) == item_taste).all():
        raise RuntimeError("the generator's random stream changed: update true_popularity")
    p = np.zeros(n)
    for t in range(n_tastes):
        members = np.flatnonzero(item_taste == t)
        w = (1.0 + rng.permutation(len(members))) ** -zipf
        p[members] = w / w.sum()
    return p


def plsa(X: sp.csr_matrix, K: int, prior: float = 4.0, iters: int = 100, seed: int = 0):
    """pLSA by EM on the nonzeros of X: (theta users x K, phi K x items), rows summing to 1."""
    u, j = X.nonzero()
    n, m = X.shape
    rng = np.random.default_rng(seed)
    theta, phi = rng.dirichlet(np.ones(K), n), rng.dirichlet(np.ones(m), K)
    for _ in range(iters):
        r = theta[u] * phi[:, j].T  # each interaction's responsibilities over tastes
        r /= r.sum(1, keepdims=True)
        phi = np.stack([np.bincount(j, r[:, t], minlength=m) for t in range(K)])
        phi /= phi.sum(1, keepdims=True)
        th = np.stack([np.bincount(u, r[:, t], minlength=n) for t in range(K)], 1)
        theta = (th + prior) / (th + prior).sum(1, keepdims=True)
    return theta, phi


def main() -> None:
    syn = personae.synthetic()
    data = load_dataset("synthetic")
    T = syn.item_taste
    n_tastes = int(T.max()) + 1
    H = sp.csr_matrix((np.ones(len(T)), (np.arange(len(T)), T)), shape=(len(T), n_tastes))
    p_true = true_popularity(T)
    for kind in ("val", "test"):
        s = data[kind]
        cnt = np.asarray(s.fit.sum(0)).ravel()
        p_est = (cnt + 1) / (np.asarray(H.T @ cnt).ravel()[T] + np.bincount(T)[T])

        def ndcg(pi, p, s=s):
            ids = personae.top_n((pi[:, T] * p[None, :]).astype(np.float32), s.k, seen=s.rows)[0]
            return mean_ndcg(ids, s.truth, s.k)

        counts = (s.rows @ H).toarray()
        for prior in (1.0, 2.0, 4.0, 8.0):
            pi = (counts + prior) / (counts + prior).sum(1, keepdims=True)
            print(f"{kind} estimated, prior {prior}: {ndcg(pi, p_est):.4f}")
        pi = syn.user_mixture[s.users]
        print(f"{kind} true mixture, estimated popularity: {ndcg(pi, p_est):.4f}")
        print(f"{kind} true mixture, true popularity: {ndcg(pi, p_true):.4f}")
        for K in (8, 12, 16):
            theta, phi = plsa(s.fit, K)
            ids = personae.top_n((theta[s.users] @ phi).astype(np.float32), s.k, seen=s.rows)[0]
            print(f"{kind} pLSA, K = {K}: {mean_ndcg(ids, s.truth, s.k):.4f}")


if __name__ == "__main__":
    main()
