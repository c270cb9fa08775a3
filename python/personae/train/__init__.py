"""Training in PyTorch (CUDA when present, CPU otherwise). Needs the ``train`` extra."""

from personae.train.ampcf import AMPCFConfig, AMPCFNet, fold_in, train_ampcf
from personae.train.loop import TrainConfig, pick_device
from personae.train.multvae import MultVAENet, train_multvae

__all__ = [
    "AMPCFConfig",
    "AMPCFNet",
    "MultVAENet",
    "TrainConfig",
    "fold_in",
    "pick_device",
    "train_ampcf",
    "train_multvae",
]
