"""Type stubs for the Rust extension ``personae._core`` (rust/python/src/lib.rs)."""

import numpy as np
import numpy.typing as npt

FORMAT_VERSION: int

class ModelFormatError(ValueError):
    """A model file is missing, inconsistent or corrupt."""

class MultVae:
    """An inference-only Mult-VAE. Immutable; safe to share between threads."""

    @staticmethod
    def load(path: str) -> MultVae: ...
    @staticmethod
    def from_bytes(manifest: bytes, weights: bytes) -> MultVae: ...
    @property
    def n_items(self) -> int: ...
    @property
    def hidden(self) -> int: ...
    @property
    def latent(self) -> int: ...
    def recommend(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32] | None,
        n_cols: int,
        n: int,
        exclude_seen: bool = True,
        exclude_items: npt.NDArray[np.bool_] | None = None,
        num_threads: int | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def score(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        data: npt.NDArray[np.float32] | None,
        n_cols: int,
        num_threads: int | None = None,
    ) -> npt.NDArray[np.float32]: ...
    def item_factors(self) -> npt.NDArray[np.float32]: ...

def top_n(
    scores: npt.NDArray[np.float32],
    n: int,
    seen_indptr: npt.NDArray[np.int64] | None = None,
    seen_indices: npt.NDArray[np.int32] | None = None,
    exclude_items: npt.NDArray[np.bool_] | None = None,
    num_threads: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Top-n per row of a dense float32 score matrix, best first; ties go to the lower item
    index; masked items are skipped; rows with fewer than n items left are padded with id -1
    and score -inf. Raises ValueError on NaN scores or malformed masks."""

def ranking_metrics(
    ids: npt.NDArray[np.int64],
    k: int,
    truth_indptr: npt.NDArray[np.int64],
    truth_indices: npt.NDArray[np.int32],
    n_items: int,
) -> dict[str, npt.NDArray[np.float64]]: ...
def coverage(ids: npt.NDArray[np.int64], n_items: int) -> float: ...
def sha256_hex(data: bytes) -> str: ...
