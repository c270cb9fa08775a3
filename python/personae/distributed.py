"""Batch scoring beyond one machine, on Ray Data (``pip install 'personae[ray]'``).

personae does not schedule work itself: it hands Ray Data a scoring actor, and Ray spreads the
batches over whatever cluster ``ray.init`` connected to. The same code runs on a laptop and on a
multi-node cluster; only the address changes::

    import ray, personae.distributed as pd
    ray.init()                                   # local; or ray.init("ray://head:10001")
    ds = ray.data.read_parquet("s3://bucket/histories/")   # rows: user, items (list of ids)
    recs = pd.recommend(ds, "s3-synced/model", n=100, batch_size=4096, concurrency=8)
    recs.write_parquet("s3://bucket/recs/")      # rows: user, item, score, rank

Each actor loads the model once (``personae.load``), then scores whole batches with one fused
Rust call (GIL released, ``num_threads`` Rust threads per actor).
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

__all__ = ["BatchScorer", "recommend"]


class BatchScorer:
    """A Ray Data callable class: loads the model once per actor, scores numpy batches.

    Input batch columns: `user_col` (any ids) and `items_col` (per row, a sequence of external
    item ids: the user's history). Output: long format ``user, item, score, rank`` (rank from 1),
    padding dropped. History items unknown to the model are ignored. AMP-CF models fold in
    each user's personas from their history first (a short optimisation, so workers need torch).
    """

    def __init__(
        self,
        model_path: str,
        n: int,
        user_col: str = "user",
        items_col: str = "items",
        exclude_seen: bool = True,
        num_threads: int | None = None,
        rerank=None,
        n_final: int | None = None,
    ):
        import personae

        self.model = personae.load(model_path)
        self.n, self.user_col, self.items_col = n, user_col, items_col
        self.exclude_seen, self.num_threads = exclude_seen, num_threads
        self.rerank, self.n_final = rerank, n_final
        ids = np.asarray(self.model.item_ids)
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]

    def _rows(self, histories) -> sp.csr_matrix:
        lens = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
        flat = np.concatenate([np.asarray(h) for h in histories]) if lens.sum() else np.array([])
        rows = np.repeat(np.arange(len(histories)), lens)
        if flat.size:
            pos = np.searchsorted(self._sorted, flat.astype(self._sorted.dtype, copy=False))
            pos_c = np.minimum(pos, len(self._sorted) - 1)
            known = self._sorted[pos_c] == flat
            cols, rows = self._order[pos_c[known]], rows[known]
        else:
            cols = np.array([], dtype=np.int64)
        m = sp.csr_matrix(
            (np.ones(len(cols), np.float32), (rows, cols)),
            shape=(len(histories), self.model.n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def __call__(self, batch: dict) -> dict:
        users = np.asarray(batch[self.user_col])
        x = self._rows(list(batch[self.items_col]))
        kw = {}
        if self.model.kind == "ampcf":  # personas from each history (fold-in; needs torch)
            kw["personas"] = self.model.fold_in(x)
        ids, scores = self.model.recommend(
            x, self.n, exclude_seen=self.exclude_seen, num_threads=self.num_threads, **kw
        )
        if self.rerank is not None:
            ids, scores = self.rerank(ids, scores, x, self.n_final or self.n)
        width = ids.shape[1]
        keep = ids.ravel() >= 0
        return {
            "user": np.repeat(users, width)[keep],
            "item": self.model.item_ids[np.maximum(ids.ravel(), 0)][keep],
            "score": scores.ravel()[keep],
            "rank": np.tile(np.arange(1, width + 1), len(users))[keep],
        }


def recommend(
    dataset,
    model_path: str | os.PathLike,
    n: int = 20,
    batch_size: int = 4096,
    *,
    user_col: str = "user",
    items_col: str = "items",
    item_col: str | None = None,
    exclude_seen: bool = True,
    concurrency: int = 1,
    num_threads: int | None = None,
    rerank=None,
    n_final: int | None = None,
):
    """Scores a Ray Dataset of user histories; returns a Ray Dataset of
    ``(user, item, score, rank)`` rows, ready for ``write_parquet``.

    Args:
        dataset: rows of ``(user_col, items_col)`` with a list of item ids per user, or, when
            `item_col` is given, one ``(user_col, item_col)`` pair per interaction (grouped by
            user first).
        model_path: a model directory every worker can read (shared or synced storage).
        n: list length (candidates per user when `rerank` is given).
        batch_size: users per scoring call.
        concurrency: number of scoring actors.
        num_threads: Rust threads per actor (default: the cores the actor may use).
        rerank: optional ``rerank(ids, scores, user_items_csr, n_final) -> (ids, scores)``
            applied to each batch in the same pass (e.g. calibrated reranking).
    """
    import ray  # fails early with a clear ImportError when Ray is missing

    if item_col is not None:

        def collect(group):
            return {
                user_col: np.asarray(group[user_col][:1]),
                items_col: np.asarray([list(group[item_col])], dtype=object),
            }

        dataset = dataset.groupby(user_col).map_groups(collect, batch_format="numpy")
    return dataset.map_batches(
        BatchScorer,
        fn_constructor_kwargs=dict(
            model_path=str(model_path),
            n=n,
            user_col=user_col,
            items_col=items_col,
            exclude_seen=exclude_seen,
            num_threads=num_threads,
            rerank=rerank,
            n_final=n_final,
        ),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
    )
