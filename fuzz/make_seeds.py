"""Writes seed inputs for the checkpoint fuzzer: real Mult-VAE and AMP-CF files of several
shapes (AMP-CF with dense and sparse votes, with and without the low-rank part), framed as
[u32 LE manifest length][manifest][weights], plus a few hand-made broken ones.

Usage: python fuzz/make_seeds.py fuzz/corpus/checkpoint
"""

import struct
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import personae


def frame(manifest: bytes, weights: bytes) -> bytes:
    return struct.pack("<I", len(manifest)) + manifest + weights


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (items, h, z) in enumerate([(3, 2, 1), (5, 4, 2), (1, 1, 1), (7, 3, 2)]):
        t = {
            "enc_item": rng.standard_normal((items, h)),
            "enc_b": rng.standard_normal(h),
            "mu_w": rng.standard_normal((h, z)),
            "mu_b": rng.standard_normal(z),
            "dec_w": rng.standard_normal((z, h)),
            "dec_b": rng.standard_normal(h),
            "dec_item": rng.standard_normal((items, h)),
            "dec_item_b": rng.standard_normal(items),
        }
        m, w = personae.MultVAE.from_tensors(t).to_bytes()
        (out / f"multvae-{i}.bin").write_bytes(frame(m, w))
        (out / f"truncated-{i}.bin").write_bytes(frame(m, w[: len(w) // 2]))
    for i, (items, k, c, a, r, sparse) in enumerate(
        [
            (3, 2, 2, 2, 1, False),
            (5, 1, 3, 2, 0, True),
            (4, 3, 1, 1, 2, True),
            (1, 2, 1, 1, 0, False),
        ]
    ):
        z = rng.standard_normal((items, a))
        t = {
            "item_space": z / np.linalg.norm(z, axis=1, keepdims=True),
            "item_cluster": (np.arange(items) % (c + 1) - 1).astype(np.int32),
            "centroids": rng.standard_normal((c, a)),
        }
        votes = rng.standard_normal((items, items)) * (rng.random((items, items)) < 0.5)
        if sparse:
            s = sp.csr_matrix(votes)
            t.update(
                votes_indptr=s.indptr.astype(np.int64),
                votes_indices=s.indices.astype(np.int32),
                votes_data=s.data,
            )
        else:
            t["votes"] = votes
        if r:
            t["low_left"] = rng.standard_normal((items, r))
            t["low_right"] = rng.standard_normal((items, r))
        m, w = personae.AMPCF.from_tensors(t, n_personas=k, mix=0.5, delta=0.3).to_bytes()
        (out / f"ampcf2-{i}.bin").write_bytes(frame(m, w))
        (out / f"ampcf2-truncated-{i}.bin").write_bytes(frame(m, w[: len(w) // 2]))
    counts = rng.random(6)
    m, w = personae.Popularity.from_tensors({"item_count": counts}).to_bytes()
    (out / "popularity-0.bin").write_bytes(frame(m, w))
    (out / "empty-json.bin").write_bytes(frame(b"{}", b""))
    (out / "bad-len.bin").write_bytes(struct.pack("<I", 2**31) + b"{}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
