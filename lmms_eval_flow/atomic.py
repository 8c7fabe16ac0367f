"""Writing result files so that a reader never sees half of one.

A run killed mid-write (SIGTERM at a job's time limit, a full disk) must leave either the old
file or the new one. Each writer here writes a temporary file beside the target, flushes it to
disk and renames it into place: a rename within one folder is atomic on POSIX file systems.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` all at once (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` all at once."""
    return atomic_write_bytes(path, text.encode("utf-8"))
