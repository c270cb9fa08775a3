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

import inspect
import os

import numpy as np
import scipy.sparse as sp

__all__ = ["BatchScorer", "recommend"]


class BatchScorer:
    """A Ray Data callable class: loads the model once per actor, scores Arrow batches.

    Input batch columns: `user_col` (any ids) and `items_col` (per row, a list of external item
    ids: the user's history). Output: long format ``user, item, score, rank`` (rank from 1),
    padding dropped. History items unknown to the model are dropped (a warning says how many).
    The list column's offsets and values become the CSR rows directly: no Python work per user.
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
        from personae.data import Vocabulary

        self.model = personae.load(model_path)
        self.vocab = Vocabulary(self.model.item_ids)
        self.n, self.user_col, self.items_col = n, user_col, items_col
        self.exclude_seen, self.num_threads = exclude_seen, num_threads
        self.rerank, self.n_final = rerank, n_final

    def _rows(self, histories) -> sp.csr_matrix:
        """A list column (Arrow) as a CSR matrix on the model's items (implicit weights)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(histories, pa.ChunkedArray):
            histories = histories.combine_chunks()
        # A null list is an empty history: flatten() skips its values (Arrow lets a null entry
        # span values), so the lengths are taken per entry, not from the offsets.
        lengths = pc.fill_null(pc.list_value_length(histories), 0).to_numpy()
        flat = histories.flatten().to_numpy(zero_copy_only=False)
        rows = np.repeat(np.arange(len(histories)), lengths)
        cols, known = self.vocab.lookup(flat, column=self.items_col, drop_unknown=True)
        m = sp.csr_matrix(
            (np.ones(int(known.sum()), np.float32), (rows[known], cols[known])),
            shape=(len(histories), len(self.vocab)),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def __call__(self, batch) -> dict:
        users = batch.column(self.user_col).to_numpy(zero_copy_only=False)
        x = self._rows(batch.column(self.items_col))
        ids, scores = self.model.recommend(
            x, self.n, exclude_seen=self.exclude_seen, num_threads=self.num_threads
        )[:2]
        if self.rerank is not None:
            ids, scores = self.rerank(ids, scores, x, self.n_final or self.n)
        from personae.data import long_format

        return long_format(users, self.model.item_ids, ids, scores).to_dict("list")


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

    # Every argument named as one of BatchScorer's goes to each actor's constructor.
    scorer = inspect.signature(BatchScorer).parameters
    actor = {k: v for k, v in locals().items() if k in scorer}
    actor["model_path"] = str(model_path)
    if item_col is not None:
        import pyarrow as pa

        def collect(group: pa.Table) -> pa.Table:
            # One list per user, built from the group's column without a Python loop.
            items = group.column(item_col).combine_chunks()
            offsets = pa.array([0, len(items)], type=pa.int32())
            return pa.table(
                {
                    user_col: group.column(user_col).slice(0, 1),
                    items_col: pa.ListArray.from_arrays(offsets, items),
                }
            )

        dataset = dataset.groupby(user_col).map_groups(collect, batch_format="pyarrow")
    return dataset.map_batches(
        BatchScorer,
        fn_constructor_kwargs=actor,
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
    )
