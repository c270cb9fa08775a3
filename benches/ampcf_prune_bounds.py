"""How many items per user each candidate upper bound on AMP-CF's persona term leaves to score
exactly (an ablation for the pruned top-N; numpy, a sample of users).

AMP-CF scores ``s_j = (1 - mix) t_j + mix A_j`` with ``t_j = x F_j`` (the filter's score,
cheap) and ``A_j = sum_k a_jk w_k v_jk`` (the persona term: K low-rank votes per item, the
cost). An item can enter the top-N only if an upper bound of ``s_j`` reaches the N-th best
exact score; this script counts, per user, the unseen items whose bound does, for:

- the persona votes ``v_jk`` bounded with the first ``m`` columns of the low-rank pair and
  Cauchy-Schwarz on the rest: ``v_jk <= vS_jk + u_k[:m] . R_j[:m] + |u_k[m:]| |R_j[m:]|``;
- the attention: exact (``att``, needs K cosines per item), ``max`` (``A_j <= max_k w_k
  v_jk``: the attention is a distribution) or ``box`` (the softmax's logits in their boxes
  ``cos in [-1, 1]``: the best distribution the boxes allow);
- ``split`` (with ``max``, at m = 0; what the pruned path runs on its candidates): each
  ``u_k = x_k L`` split along the user's ``u = x L``, whose ``u . R_j`` is ``t``'s own low-rank
  part: ``u_k . R_j <= c_k (u . R_j) + |u_k - c_k u| |R_j'|``, ``R_j'`` the part of ``R_j``
  orthogonal to ``u``. ``max`` at m = rank is the oracle of every ``max`` bound (exact votes).

    python benches/ampcf_prune_bounds.py --dataset gowalla --users 300
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp
from ampcf_speed import MODEL_DIR, rows_of


def box_max(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max over a = softmax(l), lo <= l <= hi, of sum_k a_k y_k; y (K, n), lo/hi (K,)."""
    order = np.argsort(-y, axis=0)
    ys = np.take_along_axis(y, order, 0)
    eh, el = np.exp(hi - hi.max())[order], np.exp(lo - hi.max())[order]
    best = np.full(y.shape[1], -np.inf)
    for p in range(y.shape[0] + 1):  # the p largest at their upper logit, the rest at lower
        w = np.concatenate([eh[:p], el[p:]])
        best = np.maximum(best, (w * ys).sum(0) / w.sum(0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--ms", default="0,8,16,32,64,128")
    args = ap.parse_args()
    import personae

    X = rows_of(argparse.Namespace(dataset=args.dataset, users=0))
    model = personae.load(MODEL_DIR / args.dataset)
    t = {k: np.asarray(v) for k, v in model.tensors().items()}
    p = model.params
    K, tau, mix, delta, gamma = (p[k] for k in ("n_personas", "tau", "mix", "delta", "gamma"))
    n = X.shape[1]
    S = sp.csr_matrix((t["votes_data"], t["votes_indices"], t["votes_indptr"]), shape=(n, n))
    L, R, Z = t["low_left"], t["low_right"], t["item_space"]
    r = L.shape[1]
    print(f"n={n} rank={r} K={K} tau={tau} mix={mix} delta={delta} gamma={gamma} S nnz={S.nnz}")
    ms = [int(m) for m in args.ms.split(",")]
    tail = np.sqrt(np.concatenate([np.cumsum(R[:, ::-1] ** 2, 1)[:, ::-1], np.zeros((n, 1))], 1))
    rng = np.random.default_rng(0)
    users = np.sort(rng.choice(X.shape[0], args.users, replace=False))
    counts: dict[str, list[int]] = {}
    npers = []
    for u in users:
        row = X[u]
        x = row.data / row.data.max() if row.nnz else row.data
        per = model.personas(row)
        share = per["share"][0]
        live = np.flatnonzero(share > 0)
        np_ = len(live)
        npers.append(np_)
        xs = sp.csr_matrix((x, (per["entry"], row.indices)), shape=(K, n))[live]
        vS = (xs @ S).toarray()
        uk = xs @ L
        v = vS + uk @ R.T
        tot = v.sum(0)
        seen = np.zeros(n, bool)
        seen[row.indices] = True
        if np_ <= 1:
            s = tot
        else:
            e = xs @ Z
            e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-30)
            shift = delta * np.log(share[live])
            lg = e @ Z.T / tau + shift[:, None]
            a = np.exp(lg - lg.max(0))
            a /= a.sum(0)
            w = share[live] ** -gamma
            s = (1 - mix) * tot + mix * (a * w[:, None] * v).sum(0)
        s[seen] = -np.inf
        kth = np.sort(s)[::-1][min(args.n, n) - 1]
        u_tot = uk.sum(0)
        tS = vS.sum(0)
        for m in ms:
            # t bounded too: its first m low-rank columns exact, the rest by Cauchy-Schwarz
            tub = tS + u_tot[:m] @ R[:, :m].T + np.linalg.norm(u_tot[m:]) * tail[:, m]
            if np_ <= 1:
                ub = tub
            else:
                e0 = np.linalg.norm(uk, axis=1)
                y0 = w[:, None] * (vS + e0[:, None] * tail[:, 0][None, :])
                ub = (1 - mix) * tub + mix * y0.max(0)
            counts.setdefault(f"t@m max0 m={m}", []).append(int(((ub >= kth) & ~seen).sum()))
            if np_ <= 1:
                for b in ("att", "max", "box") + (("split",) if m == 0 else ()):
                    counts.setdefault(f"{b} m={m}", []).append(0)
                continue
            eps = np.linalg.norm(uk[:, m:], axis=1)
            vub = vS + uk[:, :m] @ R[:, :m].T + eps[:, None] * tail[:, m][None, :]
            y = w[:, None] * vub
            bounds = {
                "att": (a * y).sum(0),
                "max": y.max(0),
                "box": box_max(y, shift - 1 / tau, shift + 1 / tau),
            }
            if m == 0:
                c = uk @ u_tot / max(u_tot @ u_tot, 1e-300)
                tl = R @ u_tot
                perp = np.sqrt(np.maximum(tail[:, 0] ** 2 - tl**2 / max(u_tot @ u_tot, 1e-300), 0))
                wk = np.linalg.norm(uk - c[:, None] * u_tot[None], axis=1)
                split = vS + c[:, None] * tl[None] + wk[:, None] * perp[None]
                bounds["split"] = (w[:, None] * split).max(0)
            for b, ub in bounds.items():
                ub = (1 - mix) * tot + mix * ub
                counts.setdefault(f"{b} m={m}", []).append(int(((ub >= kth) & ~seen).sum()))
    npers = np.array(npers)
    print(f"{len(users)} users; personas per user: mean {npers.mean():.2f}, "
          f"single {np.mean(npers <= 1):.3f}")  # fmt: skip
    print("bound | items to score exactly per user: mean / median / p90 / max")
    for k, c in counts.items():
        c = np.array(c)
        print(
            f"{k:10s} | {c.mean():8.0f} {np.median(c):8.0f} {np.percentile(c, 90):8.0f} "
            f"{c.max():8d}"
        )


if __name__ == "__main__":
    main()
