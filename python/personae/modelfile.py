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
  ``flock``): a second process saving into the same directory waits for the first, up to
  ``lock_timeout`` seconds (60 by default), then raises ``TimeoutError`` naming the lock file
  (a process holding it forever would otherwise block every save).
- Files are readable by whom the umask allows (``mkstemp`` alone would make them 0600, and
  workers on other nodes must read the model directory).
- A model can also travel as one archive (:func:`write_archive` / :func:`read_archive`): a zip
  of the same two files, ``manifest.json`` then the weights, for file objects (``implicit``'s
  ``save(fileobj)``). The loader validates the bytes exactly as it validates a directory.
- Temporary files left by a crashed save (``.*.tmp``) are removed by the next save.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

from personae._core import ModelFormatError
from personae.data import readable

LOCK = ".personae.lock"

try:  # POSIX; elsewhere saves are atomic but concurrent writers are not serialised
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


LOCK_TIMEOUT = 60.0


@contextlib.contextmanager
def _locked(d: Path, timeout: float = LOCK_TIMEOUT):
    with open(d / LOCK, "a+b") as f:
        if fcntl is not None:
            _acquire(f, d / LOCK, timeout)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _acquire(f, path: Path, timeout: float) -> None:
    """Takes the exclusive lock, polling (flock has no timeout of its own) until `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"could not save: another process has held the lock {path} for "
                    f"{timeout:g} s (a save still running, or a stuck process holding it); "
                    "retry later or pass a larger lock_timeout"
                ) from None
            time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * 2, 0.1)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        readable(tmp)
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
    name = m.get("weights_file") if isinstance(m, dict) else None
    return name if isinstance(name, str) else None


def save(
    path: str | os.PathLike,
    manifest: str | bytes,
    weights: bytes,
    lock_timeout: float = LOCK_TIMEOUT,
) -> Path:
    """Atomically writes a model directory (see the module docstring); returns its path.
    Waits at most `lock_timeout` seconds for another writer's lock (``TimeoutError`` after)."""
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    manifest = manifest.encode() if isinstance(manifest, str) else manifest
    wname = _weights_name(manifest)
    if not wname:
        raise ValueError("the manifest to save names no weights file")
    if not lock_timeout >= 0:
        raise ValueError(f"lock_timeout must be >= 0 seconds, got {lock_timeout!r}")
    with _locked(d, float(lock_timeout)):
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


def write_archive(f, manifest: str | bytes, weights: bytes) -> None:
    """Writes the model as one zip archive to the binary file object `f`: ``manifest.json``
    first, then the weights under the name the manifest gives them (stored, not compressed:
    float weights barely compress)."""
    manifest = manifest.encode() if isinstance(manifest, str) else manifest
    wname = _weights_name(manifest)
    if not wname:
        raise ValueError("the manifest to save names no weights file")
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("manifest.json", manifest)
        z.writestr(wname, weights)


def read_archive(f) -> tuple[bytes, bytes]:
    """``(manifest bytes, weights bytes)`` of an archive written by :func:`write_archive`, from
    a binary file object or a path; :class:`personae.ModelFormatError` when it is not one."""
    try:
        with zipfile.ZipFile(f) as z:
            names = z.namelist()
            if "manifest.json" not in names:
                raise ModelFormatError(f"model archive has no manifest.json (holds {names[:5]})")
            packed = [i.filename for i in z.infolist() if i.compress_type != zipfile.ZIP_STORED]
            if packed:
                # Stored entries are never larger than the archive itself; a compressed one
                # could unpack to any size, so only what write_archive writes is accepted.
                raise ModelFormatError(f"model archive has compressed entries ({packed[:3]})")
            manifest = z.read("manifest.json")
            wname = _weights_name(manifest)
            if not wname or wname not in names:
                raise ModelFormatError(
                    f"model archive's manifest names weights {wname!r}, which it does not hold"
                )
            return manifest, z.read(wname)
    except ModelFormatError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        # A damaged central directory: an "encrypted" flag, a newer zip version, a bad offset.
        RuntimeError,
        NotImplementedError,
        ValueError,
    ) as e:
        raise ModelFormatError(f"not a personae model archive (a zip): {e}") from None


def is_file_object(x) -> bool:
    """Whether `x` is an open file-like object rather than a path."""
    return isinstance(x, io.IOBase) or (hasattr(x, "read") or hasattr(x, "write"))
