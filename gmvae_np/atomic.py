"""Atomic file writes: a reader, or a crash, never sees half a file.

Every file the package writes that someone may read while it is being written, or rely on after a crash
(checkpoints, config.json, metrics.jsonl rewrites, snapshot.npz, figures, the MNIST cache), goes through
:func:`write_atomic`:

1. write to a temporary file in the same folder (so the final rename never crosses file systems),
2. flush and ``fsync`` it, so its bytes are on disk before its name is,
3. ``os.replace`` it over the target: readers see the old file or the new one, nothing in between,
4. ``fsync`` the folder, so the rename itself survives a power cut.

If anything fails on the way, the temporary file is removed and the old target is left untouched.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path, write) -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes owner-only files; the result gets the permissions any new file would
            os.chmod(tmp, 0o666 & ~_current_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)
    return path


def _current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
