"""AMP-CF on Gowalla, LightGCN protocol: train, then Recall@20 / NDCG@20 on the test split.

Usage: python benches/gowalla_ampcf.py [--k 3] [--dim 64] [--n-neg 4] [--epochs 100]
                                        [--max-minutes M] [--out runs/gowalla-ampcf]

Validation (early stopping) is the same as for Mult-VAE (benches/gowalla_multvae.py): 3,000
training users with 20% of their training items hidden. AMP-CF learns one persona table row
per training user, so the test lists score the training users by their own personas, with
their whole training history masked; the test split is only read for the final numbers.
Every new best model is checkpointed to --out.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import personae

from _common import RUNS, carve_validation, fit_and_report, gowalla


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--tau", type=float, default=0.2)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--lambda-p", type=float, default=0.005)
    ap.add_argument("--lambda-n", type=float, default=0.005)
    ap.add_argument("--n-neg", type=int, default=4)
    ap.add_argument("--neg-power", type=float, default=0.75)
    ap.add_argument("--logq", action="store_true", help="sampled-softmax logQ correction")
    ap.add_argument("--l2", type=float, default=0.0)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-minutes", type=float, default=None, help="wall-clock training budget")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--name", default="gowalla-ampcf", help="result file runs/NAME.json")
    ap.add_argument("--out", default=None, help="model directory (default runs/NAME)")
    a = ap.parse_args()
    a.out = a.out or str(RUNS / a.name)
    train, test = gowalla()
    print(train, test, f"torch threads {torch.get_num_threads()}", flush=True)
    fit, _, _ = carve_validation(train.matrix, 3000, 0.2, a.seed)
    held = (train.matrix - fit).tocsr()
    held.eliminate_zeros()
    est = personae.AMPCF(
        n_personas=a.k,
        dim=a.dim,
        tau=a.tau,
        alpha=a.alpha,
        lambda_p=a.lambda_p,
        lambda_n=a.lambda_n,
        n_neg=a.n_neg,
        neg_power=a.neg_power,
        logq=a.logq,
        l2=a.l2,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        weight_decay=a.weight_decay,
        patience=a.patience,
        eval_k=20,
        device=a.device,
        seed=a.seed,
        max_seconds=None if a.max_minutes is None else 60 * a.max_minutes,
    )
    users = np.arange(train.n_users)
    fit_and_report(
        "gowalla_ampcf.py",
        a,
        est,
        dict(user_items=fit, validation=held, item_ids=train.item_ids),
        lambda model: model.recommend(train.matrix, 20, users=users)[0],
        test,
    )


if __name__ == "__main__":
    main()
