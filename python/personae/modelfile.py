"""Writing model directories: ``manifest.json`` + a safetensors weights file. Never pickle.

Saving is atomic. The weights file is named by its content hash
(``weights-<sha256 prefix>.safetensors``) and written first (temporary file, fsync, rename);
only then is ``manifest.json`` replaced the same way, which switches the directory from the old
model to the new one in a single rename. A crash at any point leaves a manifest that names a
complete weights file with the recorded hash: the old model or the new one, never a mix. Weights
files that no manifest names any more are removed last.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save as _st_save

from personae._core import FORMAT_VERSION, sha256_hex

FORMAT = "personae-model"


def _jsonable_ids(ids: np.ndarray) -> list:
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return [int(x) for x in ids]
    if ids.dtype.kind == "f":
        return [float(x) for x in ids]
    return [str(x) for x in ids]


def _json_safe(obj):
    """Non-finite floats become null: JSON has no NaN, and strict readers reject it."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def encode(
    kind: str,
    tensors: dict[str, np.ndarray],
    *,
    n_items: int,
    item_ids,
    config: dict,
    extra: dict | None = None,
) -> tuple[bytes, bytes]:
    """Serialises a model to (manifest bytes, weights bytes) without touching the disk."""
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    weights = _st_save(arrays)
    sha = sha256_hex(weights)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "n_items": int(n_items),
        "weights_file": f"weights-{sha[:16]}.safetensors",
        "weights_sha256": sha,
        "tensors": {k: {"dtype": "F32", "shape": list(v.shape)} for k, v in arrays.items()},
        "config": config,
        "item_ids": _jsonable_ids(item_ids),
        **(extra or {}),
    }
    return json.dumps(_json_safe(manifest), indent=1, allow_nan=False).encode(), weights


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(path: str | os.PathLike, manifest: bytes, weights: bytes) -> Path:
    """Atomically writes a model directory (see the module docstring); returns its path."""
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    m = json.loads(manifest)
    wname = m["weights_file"]
    _write_atomic(d / wname, weights)
    _fsync_dir(d)
    _write_atomic(d / "manifest.json", manifest)
    _fsync_dir(d)
    for old in d.glob("weights-*.safetensors"):
        if old.name != wname:
            old.unlink(missing_ok=True)
    return d


def read_manifest(path: str | os.PathLike) -> dict:
    """The parsed manifest of a model directory (no validation; loading validates)."""
    from personae._core import ModelFormatError

    p = Path(path) / "manifest.json"
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise ModelFormatError(f"no model at {path}: {p} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{p} is not valid JSON: {e}") from None
