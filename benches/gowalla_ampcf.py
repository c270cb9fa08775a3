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
import time

import numpy as np
import torch

import personae
from personae.metrics import evaluate

from _common import RUNS, carve_validation, gowalla, write_result


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
    out = a.out or str(RUNS / a.name)
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
    t = time.perf_counter()
    est.fit(
        fit,
        validation=held,
        item_ids=train.item_ids,
        checkpoint_dir=out,
        show_progress=not a.quiet,
    )
    train_s = time.perf_counter() - t
    est.save(out)
    t = time.perf_counter()
    ids, _ = est.model.recommend(train.matrix, 20, users=np.arange(train.n_users))
    rec_s = time.perf_counter() - t
    m = evaluate(ids, test.matrix, 20)
    skip = {"out", "quiet", "name"}
    write_result(
        a.name,
        {
            "command": "python benches/gowalla_ampcf.py "
            + " ".join(
                f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                for k, v in vars(a).items()
                if k not in skip and v is not None and v is not False
            ),
            "recall@20": m["recall@20"],
            "ndcg@20": m["ndcg@20"],
            "users": m["users"],
            "train_seconds": train_s,
            "recommend_seconds": rec_s,
            "device": est.model.manifest["training"]["device"],
            "best_epoch": est.model.manifest["training"]["best_epoch"],
            "epochs_run": len(est.history),
            "params": est.params,
            "history": est.history,
        },
    )


if __name__ == "__main__":
    main()
