"""Writes seed inputs for the checkpoint fuzzer: real Mult-VAE and AMP-CF files of several
shapes, framed as [u32 LE manifest length][manifest][weights], plus a few hand-made broken ones.

Usage: python fuzz/make_seeds.py fuzz/corpus/checkpoint
"""

import struct
import sys
from pathlib import Path

import numpy as np

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
    for i, (users, items, k, d, a) in enumerate(
        [(2, 3, 2, 2, 2), (1, 5, 1, 3, 2), (3, 4, 3, 1, 1)]
    ):
        t = {
            "personas": rng.standard_normal((users, k, d)),
            "item_emb": rng.standard_normal((items, d)),
            "item_bias": rng.standard_normal(items),
            "proj_user": rng.standard_normal((d, a)),
            "proj_item": rng.standard_normal((d, a)),
        }
        m, w = personae.AMPCF.from_tensors(t, tau=0.5).to_bytes()
        (out / f"ampcf-{i}.bin").write_bytes(frame(m, w))
        (out / f"ampcf-truncated-{i}.bin").write_bytes(frame(m, w[: len(w) // 2]))
    counts = rng.random(6)
    m, w = personae.Popularity.from_tensors({"item_count": counts}).to_bytes()
    (out / "popularity-0.bin").write_bytes(frame(m, w))
    (out / "empty-json.bin").write_bytes(frame(b"{}", b""))
    (out / "bad-len.bin").write_bytes(struct.pack("<I", 2**31) + b"{}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
