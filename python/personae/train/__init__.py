"""Fitting: PyTorch training loops (CUDA when present, CPU otherwise) and AMP-CF's closed-form
fit. Needs the ``train`` extra. Submodules load on first use, so that configurations (e.g.
:class:`personae.train.ampcf.AMPCFConfig`) can be checked without importing torch."""

import importlib

_NAMES = {
    "AMPCFConfig": "personae.train.ampcf",
    "MultVAENet": "personae.train.multvae",
    "TrainConfig": "personae.train.loop",
    "pick_device": "personae.train.loop",
    "train_multvae": "personae.train.multvae",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'personae.train' has no attribute {name!r}")
