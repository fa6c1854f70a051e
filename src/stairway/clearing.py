"""Transient paths of the data directory removed before a new release starts (a transaction
store, a compiled cache): found, checked to stay inside the data directory, and removed.

The catalog has refused absolute paths and ``..`` already; what only the site can tell is where
its symbolic links lead, so every path is resolved here, each component as the kernel would
follow it, and one that lands outside the data directory is refused before anything is removed.
A path already gone is no error: removing is idempotent, so a resumed upgrade repeats it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from stairway import faults
from stairway.errors import StairwayError

POINT = "clear-path"  # fault points around each removal: before:clear-path, after:clear-path


class ClearRefused(StairwayError):
    """A path to clear leads out of the data directory (through a symbolic link)."""


def outside(data_dir: Path, relative: str) -> str | None:
    """Why ``relative`` may not be removed from ``data_dir``; None when it stays inside."""
    top = Path(os.path.realpath(data_dir))
    lexical = top / PurePosixPath(relative)
    resolved = Path(os.path.realpath(lexical))
    if resolved == top or not resolved.is_relative_to(top):
        return f"{data_dir / relative} leads to {resolved}, outside the data directory {top}"
    return None


def present(data_dir: Path, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` that exist now (a dangling link counts: it is removed too)."""
    return [p for p in paths if os.path.lexists(data_dir / PurePosixPath(p))]


def clear(data_dir: Path, paths: Sequence[str]) -> list[str]:
    """Remove ``paths`` (relative to ``data_dir``) whole; returns those that were there.

    Raises:
        ClearRefused: One of them leads out of the data directory; nothing was removed.
    """
    for path in paths:
        reason = outside(data_dir, path)
        if reason is not None:
            raise ClearRefused(
                f"will not clear {path}: {reason}",
                hint="replace the link with a directory of the data directory's own; "
                "nothing was removed",
            )
    found = present(data_dir, paths)
    before, after = faults.around(POINT)
    for path in found:
        faults.point(before)
        _remove(data_dir / PurePosixPath(path))
        faults.point(after)
    return found


def _remove(target: Path) -> None:
    """A link is removed itself, never what it points at; a directory with all it holds."""
    if target.is_symlink() or not target.is_dir():
        target.unlink(missing_ok=True)
    else:
        shutil.rmtree(target)
