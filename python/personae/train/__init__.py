"""Training in PyTorch (CUDA when present, CPU otherwise). Needs the ``train`` extra."""

from personae.train.loop import TrainConfig, pick_device
from personae.train.multvae import MultVAENet, train_multvae

__all__ = ["MultVAENet", "TrainConfig", "pick_device", "train_multvae"]
