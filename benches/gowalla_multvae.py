"""Mult-VAE on Gowalla, LightGCN protocol: train, then Recall@20 / NDCG@20 on the test split.

Usage: python benches/gowalla_multvae.py [--epochs 60] [--anneal-steps 20000] [--lr 1e-3]
                                          [--device auto] [--name gowalla-multvae]

Early stopping uses 3,000 training users with 20% of their training items hidden (2% of the
training interactions); the test split is only read for the final numbers. Every new best model
is checkpointed to --out, so an interrupted run keeps its best model.
"""

from __future__ import annotations

import torch

import personae
from personae.data import carve_validation

from _common import RUNS, fit_and_report, gowalla, parser


def main() -> None:
    ap = parser(
        __doc__,
        epochs=60,
        patience=6,
        anneal_steps=20000,
        anneal_cap=0.2,
        lr=1e-3,
        batch_size=500,
        dropout=0.5,
        weight_decay=0.0,
        device="auto",
        seed=0,
    )
    ap.add_argument("--max-minutes", type=float, default=None, help="wall-clock training budget")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--name", default="gowalla-multvae", help="result file runs/NAME.json")
    ap.add_argument("--out", default=None, help="model directory (default runs/NAME)")
    a = ap.parse_args()
    a.out = a.out or str(RUNS / a.name)
    train, test = gowalla()
    print(train, test, f"torch threads {torch.get_num_threads()}")
    fit, held, users = carve_validation(train.matrix, 3000, 0.2, a.seed)
    val_in, val_out = fit[users], held[users]
    est = personae.MultVAE(
        epochs=a.epochs,
        patience=a.patience,
        total_anneal_steps=a.anneal_steps,
        anneal_cap=a.anneal_cap,
        lr=a.lr,
        batch_size=a.batch_size,
        dropout=a.dropout,
        weight_decay=a.weight_decay,
        eval_k=20,
        device=a.device,
        seed=a.seed,
        max_seconds=None if a.max_minutes is None else 60 * a.max_minutes,
    )
    fit_and_report(
        "gowalla_multvae.py",
        a,
        est,
        dict(user_items=fit, validation=(val_in, val_out), item_ids=train.item_ids),
        lambda model: model.recommend(train, n=20)[0],
        test,
    )


if __name__ == "__main__":
    main()
