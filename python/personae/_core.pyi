# Stubs of the Rust extension (rust/python/src). Checked against the built module by
# `python -m mypy.stubtest personae._core` in .ci/run: a stale stub fails CI.
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any, final

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

__all__ = [
    "PersonaeError",
    "InvalidInputError",
    "IndexOutOfRangeError",
    "ModelFormatError",
    "Model",
    "FORMAT_VERSION",
    "load",
    "from_bytes",
    "build",
    "sha256_hex",
    "MultVAE",
    "AMPCF",
    "Popularity",
    "Reranker",
    "ranking_metrics",
    "coverage",
    "top_n",
    "graph_votes",
    "gemm_kernel",
    "first_pass",
    "rerank_first_pass",
    "gemm_a_bt",
    "MAX_THREADS",
    "MAX_PERSONAS",
    "KINDS",
]

# A scipy.sparse CSR matrix (csr_matrix or csr_array) with float32 data; scipy ships no stubs.
_Csr = Any

FORMAT_VERSION: int
MAX_THREADS: int
MAX_PERSONAS: int
KINDS: list[str]

class PersonaeError(Exception): ...
class InvalidInputError(PersonaeError, ValueError): ...
class IndexOutOfRangeError(InvalidInputError, IndexError): ...
class ModelFormatError(PersonaeError, ValueError): ...

# A boolean mask over the catalogue, int64 item indices, or {"only": indices}.
_ItemSet = npt.NDArray[np.bool_] | npt.NDArray[np.int64] | Mapping[str, npt.NDArray[np.int64]]
_Ids = npt.NDArray[np.int64]
_Scores = npt.NDArray[np.float32]

@disjoint_base
class Model:
    @property
    def kind(self) -> str: ...
    @property
    def n_items(self) -> int: ...
    @property
    def manifest(self) -> str: ...
    def item_count(self) -> npt.NDArray[np.float32] | None: ...
    def tensors(self) -> dict[str, npt.NDArray[Any]]: ...
    def to_bytes(self) -> tuple[str, bytes]: ...
    # (ids, scores), plus the dominant persona of each listed item with explain=True.
    def recommend(
        self,
        user_items: _Csr,
        n: int,
        exclude_seen: bool = True,
        exclude_items: _ItemSet | None = None,
        num_threads: int | None = None,
        explain: bool = False,
    ) -> tuple[Any, ...]: ...
    def score(self, user_items: _Csr, num_threads: int | None = None) -> _Scores: ...
    def similar_items(
        self, items: _Ids, n: int, exclude_items: _ItemSet | None = None
    ) -> tuple[_Ids, _Scores]: ...
    def item_factors(self) -> _Scores: ...

@final
class MultVAE(Model): ...

@final
class AMPCF(Model):
    @property
    def n_personas(self) -> int: ...
    @property
    def n_clusters(self) -> int: ...
    @property
    def exact_top_n(self) -> bool: ...
    def set_exact_top_n(self, on: bool) -> None: ...
    def personas(self, user_items: _Csr) -> tuple[_Ids, _Scores, _Ids]: ...
    # (attention, contribution, dominant, taste, because, votes) of the pairs.
    def explain(
        self,
        user_items: _Csr,
        pair_user: _Ids,
        pair_item: _Ids,
        n_history: int,
        num_threads: int | None = None,
    ) -> tuple[_Scores, _Scores, _Ids, _Ids, _Ids, _Scores]: ...
    def item_cluster(self) -> npt.NDArray[np.int32]: ...
    def tastes(self) -> tuple[_Scores, _Scores, _Scores, _Scores] | None: ...
    # (taste, share, entry) as personas() gives them, from the persona tensors alone.
    @staticmethod
    def split_personas(
        n_personas: int,
        item_space: npt.NDArray[np.float32],
        item_cluster: npt.NDArray[np.int32],
        centroids: npt.NDArray[np.float32],
        user_items: _Csr,
    ) -> tuple[_Ids, _Scores, _Ids]: ...

@final
class Popularity(Model):
    @staticmethod
    def count(user_items: _Csr) -> npt.NDArray[np.float32]: ...

def load(path: str | PathLike[str]) -> Model: ...
def from_bytes(manifest: bytes, weights: bytes) -> Model: ...
def build(manifest: str, tensors: dict[str, npt.NDArray[Any]]) -> Model: ...
def sha256_hex(data: bytes) -> str: ...

# (items x categories CSR, lambda, prior or None, normalize_rows)
_Attribute = tuple[_Csr, float, npt.NDArray[np.float64] | None, bool]
_Target = _Csr | Sequence[npt.NDArray[np.float32]]

@final
class Reranker:
    def __new__(
        cls,
        attributes: Sequence[_Attribute],
        smoothing: float,
        normalize: str,
        rank_weighting: bool,
        min_history: int,
        prior_weight: float,
    ) -> Reranker: ...
    @property
    def n_items(self) -> int: ...
    @property
    def n_categories(self) -> list[int]: ...
    @property
    def priors(self) -> list[list[float]]: ...
    def rerank(
        self,
        candidates: _Ids,
        scores: _Scores,
        target: _Target,
        n: int,
        lam: Sequence[float] | None = None,
        num_threads: int | None = None,
    ) -> tuple[_Ids, _Scores, npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def target(self, target: _Target) -> list[npt.NDArray[np.float64]]: ...
    def miscalibration(self, ids: _Ids, target: _Target) -> npt.NDArray[np.float64]: ...
    def interest_recall(
        self, ids: _Ids, target: _Target, threshold: float, exclude_top: bool
    ) -> npt.NDArray[np.float64]: ...
    def taste_recall(
        self, ids: _Ids, target: _Target, truth: _Csr, k: int, threshold: float
    ) -> npt.NDArray[np.float64]: ...

def ranking_metrics(ids: _Ids, k: int, truth: _Csr) -> dict[str, npt.NDArray[np.float64]]: ...
def coverage(ids: _Ids, n_items: int) -> float: ...
def top_n(
    scores: _Scores,
    n: int,
    seen: _Csr | None = None,
    exclude_items: _ItemSet | None = None,
    num_threads: int | None = None,
) -> tuple[_Ids, _Scores]: ...
def graph_votes(
    user_items: _Csr,
    post: npt.NDArray[np.float64],
    keep: int | None = None,
    rows: npt.NDArray[np.float64] | None = None,
    cols: npt.NDArray[np.float64] | None = None,
    rows_after: npt.NDArray[np.float64] | None = None,
    num_threads: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
def gemm_kernel(force: str | None = None) -> str: ...
def first_pass(force: str | None = None) -> str: ...
def rerank_first_pass() -> str: ...
def gemm_a_bt(
    a: npt.NDArray[np.float32], bt: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]: ...
