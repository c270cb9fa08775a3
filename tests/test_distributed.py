"""Batch scoring on Ray Data equals single-process recommend."""

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is installed by .ci/run (the dev extra)")

import personae  # noqa: E402
from personae import distributed  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def history_rows(inter) -> list[dict]:
    """One (user, items) row per user: the input format of distributed.recommend."""
    m = inter.matrix
    return [
        {"user": int(u), "items": inter.item_ids[m[r].indices].tolist()}
        for r, u in enumerate(inter.user_ids)
    ]


def test_ray_equals_single_process(local_ray, tiny_model, tiny_data, tmp_path):
    path = tiny_model.save(tmp_path / "model")
    inter = tiny_data.interactions
    m = inter.matrix
    rows = history_rows(inter)
    ds = ray.data.from_items(rows)
    out = distributed.recommend(ds, path, n=7, batch_size=64, concurrency=2).to_pandas()
    ids, scores = personae.load(path).recommend(m, 7)
    out = out.sort_values(["user", "rank"])
    assert len(out) == (ids >= 0).sum()
    got = out.pivot(index="user", columns="rank", values="item").loc[inter.user_ids]
    got = got.to_numpy().astype(np.int64)
    np.testing.assert_array_equal(got, inter.item_ids[ids])
    got_s = out.pivot(index="user", columns="rank", values="score").loc[inter.user_ids]
    np.testing.assert_allclose(got_s.to_numpy().astype(np.float32), scores, rtol=1e-6)
    # Long-format (user, item) pairs give the same lists.
    pairs = ray.data.from_items([{"user": r["user"], "item": i} for r in rows for i in r["items"]])
    out2 = distributed.recommend(pairs, path, n=7, item_col="item", batch_size=64).to_pandas()
    out2 = out2.sort_values(["user", "rank"])
    np.testing.assert_array_equal(out2["item"].to_numpy(), out["item"].to_numpy())
    out_path = tmp_path / "recs"
    distributed.recommend(ds, path, n=3).write_parquet(str(out_path))
    assert any(out_path.iterdir())


def test_ray_runs_calibrated_reranking_in_the_same_pass(local_ray, tiny_model, tiny_data, tmp_path):
    path = tiny_model.save(tmp_path / "model")
    inter = tiny_data.interactions
    m = inter.matrix
    rows = history_rows(inter)
    cats = np.eye(4, dtype=np.float32)[np.arange(inter.n_items) % 4]
    rr = personae.CalibratedReranker(cats, lam=0.7)
    out = distributed.recommend(
        ray.data.from_items(rows), path, n=30, batch_size=64, rerank=rr, n_final=5
    ).to_pandas()
    ids, scores = personae.load(path).recommend(m, 30)
    want = rr.rerank(ids, scores, history=m, n=5)
    out = out.sort_values(["user", "rank"])
    got = out.pivot(index="user", columns="rank", values="item").loc[inter.user_ids]
    np.testing.assert_array_equal(got.to_numpy().astype(np.int64), inter.item_ids[want.ids])
    plain = personae.load(path).recommend(m, 5)[0]
    assert (want.ids != plain).any()  # the reranker changed something
