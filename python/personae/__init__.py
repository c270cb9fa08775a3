"""personae: recommendations for users who are several tastes at once.

The public API, and nothing else. Heavy work runs in the Rust extension ``personae._core``;
training needs the ``train`` extra (PyTorch).
"""

from personae import metrics, simulate
from personae._core import (
    IndexOutOfRangeError,
    InvalidInputError,
    ModelFormatError,
    PersonaeError,
)
from personae.ampcf import AMPCF
from personae.categories import Categories
from personae.data import (
    Interactions,
    SyntheticData,
    Vocabulary,
    holdout_split,
    strong_split,
    synthetic,
)
from personae.filters import EASE, GraphFilter
from personae.interview import Interview
from personae.models import Model, load, top_n
from personae.multvae import MultVAE
from personae.popularity import Popularity
from personae.rerank import CalibratedReranker, RerankResult

__version__ = "0.1.0"

__all__ = [
    "AMPCF",
    "CalibratedReranker",
    "Categories",
    "EASE",
    "GraphFilter",
    "Interactions",
    "IndexOutOfRangeError",
    "Interview",
    "InvalidInputError",
    "Model",
    "ModelFormatError",
    "MultVAE",
    "PersonaeError",
    "Popularity",
    "RerankResult",
    "SyntheticData",
    "Vocabulary",
    "holdout_split",
    "load",
    "metrics",
    "simulate",
    "strong_split",
    "synthetic",
    "top_n",
]

# Submodules with heavier optional dependencies (matplotlib, Ray) load on first use, so
# ``personae.plot`` and ``personae.distributed`` work without an explicit import.
_LAZY = ("plot", "distributed")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"personae.{name}")
    raise AttributeError(f"module 'personae' has no attribute {name!r}")
