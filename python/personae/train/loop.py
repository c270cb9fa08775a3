"""What every training loop shares: device choice, seeding, sparse batches, validation,
early stopping and the progress bar."""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
import torch


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return d


def seed_everything(seed: int) -> None:
    """Seeds Python's and torch's global generators."""
    # numpy randomness in personae goes through explicit Generators seeded from `seed`.
    random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainConfig:
    """Optimisation settings shared by the models.

    Attributes:
        epochs: maximum number of passes over the training users.
        batch_size: users per step.
        lr: Adam learning rate.
        weight_decay: L2 penalty passed to Adam.
        patience: stop after this many validations without improving; 0 disables early stopping.
        eval_k: the validation metric is NDCG@eval_k (the Mult-VAE paper uses 100).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: seeds torch, numpy and the batch order; seeded CPU runs are reproducible.
        max_seconds: stop after the first epoch that ends past this wall-clock budget (the best
            state so far is kept, as with early stopping); None for no budget.
    """

    epochs: int = 100
    batch_size: int = 500
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    eval_k: int = 100
    device: str = "auto"
    seed: int = 0
    max_seconds: float | None = None

    def to_dict(self) -> dict:
        """The settings as a plain dict (for the manifest)."""
        return asdict(self)


def config_dict(model_cfg, cfg: TrainConfig | None = None) -> dict:
    """A fit's configuration as stored in the model manifest: the family's model config (a
    dataclass) and, for trained families, the shared training settings."""
    out = {"model": asdict(model_cfg)}
    if cfg is not None:
        out["train"] = cfg.to_dict()
    return out


@dataclass
class SparseBatch:
    """Rows of a CSR matrix as flat torch tensors (the EmbeddingBag input format)."""

    indices: torch.Tensor  # item of each entry (int64)
    offsets: torch.Tensor  # start of each row in `indices` (int64)
    values: torch.Tensor  # weight of each entry (float32)
    rows: torch.Tensor  # row (0..batch) of each entry (int64)
    size: int


def sparse_batch(m: sp.csr_matrix, rows: np.ndarray, device: torch.device) -> SparseBatch:
    """Rows `rows` of `m` as a :class:`SparseBatch` on `device`."""
    sub = m[rows]
    counts = np.diff(sub.indptr)
    return SparseBatch(
        indices=torch.from_numpy(sub.indices.astype(np.int64)).to(device),
        offsets=torch.from_numpy(sub.indptr[:-1].astype(np.int64)).to(device),
        values=torch.from_numpy(sub.data.astype(np.float32)).to(device),
        rows=torch.from_numpy(np.repeat(np.arange(len(rows)), counts)).to(device),
        size=len(rows),
    )


@torch.no_grad()
def validation_ndcg(
    score_fn,
    val_in: sp.csr_matrix,
    val_out: sp.csr_matrix,
    k: int,
    device: torch.device,
    batch_size: int = 1000,
) -> float:
    """Mean NDCG@k over users with held-out items: scores from ``score_fn(rows, batch)`` (the
    row indices of `val_in` and their :class:`SparseBatch`), seen (fold-in) items masked, top-k
    by torch, metric by the Rust core."""
    n_items = val_in.shape[1]
    k = min(k, n_items)
    ids = np.empty((val_in.shape[0], k), dtype=np.int64)
    for start in range(0, val_in.shape[0], batch_size):
        rows = np.arange(start, min(start + batch_size, val_in.shape[0]))
        b = sparse_batch(val_in, rows, device)
        scores = score_fn(rows, b)
        scores[b.rows, b.indices] = -math.inf
        ids[rows] = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    from personae.metrics import mean_ndcg

    return mean_ndcg(ids, val_out, k)


class EarlyStopping:
    """Keeps the best state seen so far and says when to stop."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best = -math.inf
        self.best_epoch = -1
        self.best_state = None
        self.bad = 0

    def update(self, value: float, epoch: int, model: torch.nn.Module) -> bool:
        """Records a validation value; returns True if it is a new best."""
        if value > self.best:
            self.best, self.best_epoch, self.bad = value, epoch, 0
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in model.state_dict().items()}
            )
            return True
        self.bad += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once `patience` validations in a row have not improved."""
        return self.patience > 0 and self.bad >= self.patience


def check_train(train) -> sp.csr_matrix:
    """`train` as a float32 CSR with sorted indices; a clear error when it is not a sparse
    matrix, holds no interactions, or holds NaN/inf or negative weights (the models read
    weights as amounts of interest: a negative one would train on a meaningless signal)."""
    if not sp.issparse(train):
        raise TypeError(f"train must be a scipy sparse matrix, got {type(train).__name__}")
    train = sp.csr_matrix(train, dtype=np.float32)
    if not train.has_sorted_indices:
        train = train.sorted_indices()  # a copy: the caller's matrix is left as it was
    if train.shape[0] == 0 or train.nnz == 0:
        raise ValueError("train has no interactions")
    if not np.isfinite(train.data).all():
        raise ValueError("train holds NaN or inf weights")
    if (train.data < 0).any():
        raise ValueError(
            f"train holds {int((train.data < 0).sum())} negative weight(s): weights must be "
            "non-negative (drop dislikes or map them to 0)"
        )
    return train


@dataclass
class TrainResult:
    """What a training run returns: the network (best validation state when validated)."""

    net: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_ndcg: float = float("nan")
    seconds: float = 0.0
    device: str = "cpu"


class EpochLog:
    """The end of every epoch, shared by the training loops: validation and early stopping,
    the checkpoint callback, the history, the progress bar and the time budget."""

    def __init__(self, net, cfg: TrainConfig, validate, on_improve, bar, device, on_epoch=None):
        self.net, self.cfg, self.validate, self.on_improve = net, cfg, validate, on_improve
        self.on_epoch = on_epoch
        self.bar, self.device = bar, device
        self.stopper = EarlyStopping(cfg.patience if validate is not None else 0)
        self.history: list[dict] = []
        self.t0 = time.perf_counter()

    def end(self, rec: dict) -> bool:
        """Validates (when a validation set was given), records `rec` (which holds ``epoch``
        and ``loss``) and calls ``on_epoch(rec, seconds)``; True when training should stop."""
        st = self.stopper
        if self.validate is not None:
            self.net.eval()
            rec["val_ndcg"] = self.validate()
            if st.update(rec["val_ndcg"], rec["epoch"], self.net) and self.on_improve:
                self.on_improve(self.net, rec["epoch"], rec["val_ndcg"])
        self.history.append(rec)
        shown = (
            {"ndcg": f"{rec['val_ndcg']:.4f}", "best": f"{st.best:.4f}"}
            if "val_ndcg" in rec
            else {}
        )
        self.bar.set_postfix(epoch=rec["epoch"], loss=f"{rec['loss']:.4g}", **shown)
        elapsed = time.perf_counter() - self.t0
        if self.on_epoch is not None:
            self.on_epoch(rec, elapsed)
        budget = self.cfg.max_seconds
        return st.should_stop or (budget is not None and elapsed > budget)

    def result(self) -> TrainResult:
        """The run's result, with the best validated state loaded back into the net."""
        st = self.stopper
        if st.best_state is not None:
            self.net.load_state_dict(st.best_state)
        self.net.eval()
        seconds = time.perf_counter() - self.t0
        return TrainResult(
            self.net, self.history, st.best_epoch, st.best, seconds, str(self.device)
        )
