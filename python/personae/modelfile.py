"""Writing model directories: ``manifest.json`` + a safetensors weights file. Never pickle.

The bytes come from the Rust core (``Model.to_bytes``); this module only puts them on disk,
atomically and safely against concurrent readers and writers:

- The weights file is named by its content hash (``weights-<sha256 prefix>.safetensors``) and
  written first (temporary file, fsync, rename); only then is ``manifest.json`` replaced the
  same way, which switches the directory from the old model to the new one in one rename. A
  crash at any point leaves a manifest naming a complete weights file: the old model or the new
  one, never a mix.
- Readers (``personae.load``) read ``manifest.json`` once and the weights it names. The weights
  of the previous save are kept until the next one, so a reader that read the old manifest just
  before a switch still finds its weights; a reader slower than two saves reads the newer
  manifest again (the Rust loader retries).
- Writers are serialised by an exclusive lock on ``.personae.lock`` in the directory (POSIX
  ``flock``): a second process saving into the same directory waits for the first.
- Temporary files left by a crashed save (``.*.tmp``) are removed by the next save.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

LOCK = ".personae.lock"

try:  # POSIX; elsewhere saves are atomic but concurrent writers are not serialised
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


@contextlib.contextmanager
def _locked(d: Path):
    with open(d / LOCK, "a+b") as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


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


def _weights_name(manifest: bytes | str) -> str | None:
    try:
        m = json.loads(manifest)
    except ValueError:
        return None
    return m.get("weights_file") if isinstance(m, dict) else None


def save(path: str | os.PathLike, manifest: str | bytes, weights: bytes) -> Path:
    """Atomically writes a model directory (see the module docstring); returns its path."""
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    manifest = manifest.encode() if isinstance(manifest, str) else manifest
    wname = _weights_name(manifest)
    if not wname:
        raise ValueError("the manifest to save names no weights file")
    with _locked(d):
        # Under the lock no other save is running: every temporary file is a crash's leftover.
        for stale in d.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        current = d / "manifest.json"
        previous = _weights_name(current.read_bytes()) if current.is_file() else None
        _write_atomic(d / wname, weights)
        _fsync_dir(d)
        _write_atomic(current, manifest)
        _fsync_dir(d)
        keep = {wname, previous}
        for old in d.glob("weights-*.safetensors"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
    return d
