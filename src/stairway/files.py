"""Crash-safe file writes: a temporary name beside the target, fsync, ``os.replace``, fsync dir.

A reader (or a process started after a crash) sees either the whole old file or the whole new
one, never a mixture.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from stairway import faults


def write_atomic(path: Path, data: bytes, *, like: Path | None = None) -> None:
    """Replace ``path`` with ``data``; permissions and owner are copied from ``like`` if given."""
    faults.point("before:file-write")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            if like is not None and like.exists():
                _copy_owner(like, out.fileno())
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    sync_directory(path.parent)


def remove_stale_temporaries(path: Path) -> None:
    """Remove what a killed ``write_atomic`` of ``path`` (or of a copy beside it) left behind."""
    for leftover in path.parent.glob(f".{path.name}*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def sync_directory(directory: Path) -> None:
    """fsync ``directory``, so the names created or replaced in it survive a crash."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _copy_owner(like: Path, descriptor: int) -> None:
    info = like.stat()
    os.fchmod(descriptor, info.st_mode & 0o7777)
    with contextlib.suppress(PermissionError):  # only root may give a file to someone else
        os.fchown(descriptor, info.st_uid, info.st_gid)
