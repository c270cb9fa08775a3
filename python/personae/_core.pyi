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

class AmpCf:
    """An inference-only AMP-CF model. Immutable; safe to share between threads. Users are
    given as ``users`` (training user indices) or ``personas`` (rows x K x d float32)."""

    @staticmethod
    def load(path: str) -> AmpCf: ...
    @staticmethod
    def from_bytes(manifest: bytes, weights: bytes) -> AmpCf: ...
    @property
    def n_items(self) -> int: ...
    @property
    def n_users(self) -> int: ...
    @property
    def k(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def att_dim(self) -> int: ...
    @property
    def tau(self) -> float: ...
    def recommend(
        self,
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.int32],
        n_cols: int,
        n: int,
        users: npt.NDArray[np.int64] | None = None,
        personas: npt.NDArray[np.float32] | None = None,
        exclude_seen: bool = True,
        exclude_items: npt.NDArray[np.bool_] | None = None,
        num_threads: int | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def score(
        self,
        users: npt.NDArray[np.int64] | None = None,
        personas: npt.NDArray[np.float32] | None = None,
        num_threads: int | None = None,
    ) -> npt.NDArray[np.float32]: ...
    def attention(
        self,
        pair_user: npt.NDArray[np.int64],
        pair_item: npt.NDArray[np.int64],
        users: npt.NDArray[np.int64] | None = None,
        personas: npt.NDArray[np.float32] | None = None,
        num_threads: int | None = None,
    ) -> npt.NDArray[np.float32]: ...
    def tensors(self, names: list[str] | None = None) -> dict[str, npt.NDArray[np.float32]]: ...
    def personas(self, users: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]: ...

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

# -- calibrated reranking (rust/core/src/calibrate.rs); give exactly one of p / hist_* --------

def calibrated_rerank(
    candidates: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    cat_indptr: npt.NDArray[np.int64],
    cat_indices: npt.NDArray[np.int32],
    cat_data: npt.NDArray[np.float32],
    n_categories: int,
    n: int,
    lam: float,
    alpha: float,
    rank_weighting: bool = False,
    normalize: str = "minmax",
    p: npt.NDArray[np.float32] | None = None,
    hist_indptr: npt.NDArray[np.int64] | None = None,
    hist_indices: npt.NDArray[np.int32] | None = None,
    hist_data: npt.NDArray[np.float32] | None = None,
    num_threads: int | None = None,
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.float32],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]:
    """Steck's greedy calibrated reranking: (ids, scores, ckl_before, ckl_after); ids / scores
    are users x n, padded with -1 / -inf. Raises ValueError on malformed input."""

def target_distribution(
    cat_indptr: npt.NDArray[np.int64],
    cat_indices: npt.NDArray[np.int32],
    cat_data: npt.NDArray[np.float32],
    n_categories: int,
    n_users: int,
    p: npt.NDArray[np.float32] | None = None,
    hist_indptr: npt.NDArray[np.int64] | None = None,
    hist_indices: npt.NDArray[np.int32] | None = None,
    hist_data: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float64]: ...
def miscalibration(
    ids: npt.NDArray[np.int64],
    cat_indptr: npt.NDArray[np.int64],
    cat_indices: npt.NDArray[np.int32],
    cat_data: npt.NDArray[np.float32],
    n_categories: int,
    alpha: float,
    rank_weighting: bool = False,
    p: npt.NDArray[np.float32] | None = None,
    hist_indptr: npt.NDArray[np.int64] | None = None,
    hist_indices: npt.NDArray[np.int32] | None = None,
    hist_data: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float64]: ...
def interest_recall(
    ids: npt.NDArray[np.int64],
    cat_indptr: npt.NDArray[np.int64],
    cat_indices: npt.NDArray[np.int32],
    cat_data: npt.NDArray[np.float32],
    n_categories: int,
    threshold: float,
    exclude_top: bool,
    p: npt.NDArray[np.float32] | None = None,
    hist_indptr: npt.NDArray[np.int64] | None = None,
    hist_indices: npt.NDArray[np.int32] | None = None,
    hist_data: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float64]: ...
