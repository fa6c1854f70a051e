"""What a failed write means to an operator: a full disk, a failing disk, a read-only one.

A write can fail as an ``OSError`` (ENOSPC, EDQUOT, EIO, EROFS) or, inside SQLite or a tool run
as a subprocess, as an error whose text says the same thing. :func:`trouble` finds either
anywhere in an error's chain, so that the boundary that catches it can say which disk and what
to do about it rather than show a traceback.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from stairway.errors import StagingFailed

FULL = (errno.ENOSPC, errno.EDQUOT)
# SQLite's own words for the same errors (it does not pass the errno on)
SQLITE_SAYS = {
    "database or disk is full": errno.ENOSPC,
    "disk i/o error": errno.EIO,
    "attempt to write a readonly database": errno.EROFS,
}
WATCHED = (*FULL, errno.EIO, errno.EROFS)
# what a tool run as a subprocess (pg_dump, the product's own commands) prints for them
SAID = {**{os.strerror(code).lower(): code for code in WATCHED}, **SQLITE_SAYS}


@dataclass(frozen=True)
class DiskTrouble:
    """A write that failed for the disk's sake: which error, and the file when known."""

    code: int
    path: str | None = None
    directory: str | None = None  # known without a file: the one a restore staged into

    @property
    def said(self) -> str:
        """The system's words for the error, such as ``No space left on device``."""
        return os.strerror(self.code)

    def where(self, fallback: Path | str) -> str:
        """The file system to act on: the failed file's directory, else ``fallback``."""
        if self.directory:
            return self.directory
        return str(Path(self.path).parent) if self.path else str(fallback)

    def advice(self, fallback: Path | str) -> str:
        """What to do before trying again, in a few words."""
        where = self.where(fallback)
        if self.code in FULL:
            return f"free space in {where}"
        if self.code == errno.EROFS:
            return f"make the file system holding {where} writable again"
        return f"check the disk holding {where} ({self.said}; see the kernel log)"


def trouble(error: BaseException | None) -> DiskTrouble | None:
    """The disk trouble behind ``error`` (itself, its cause or its context), if any."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        found = _own(error)
        if found is not None:
            return found
        error = error.__cause__ or error.__context__ or getattr(error, "orig", None)
    return None


def _own(error: BaseException) -> DiskTrouble | None:
    if isinstance(error, StagingFailed):  # it knows the directory; its words would lose it
        return DiskTrouble(error.code, directory=error.where)
    if isinstance(error, OSError) and error.errno in WATCHED:
        return DiskTrouble(error.errno, _written(error))
    text = str(error).lower()
    for words, code in SAID.items():
        if words in text:
            return DiskTrouble(code)
    return None


def _written(error: OSError) -> str | None:
    """The file whose write failed. A copy (``shutil.copyfile``) names its source first and its
    destination second: a full or read-only file system is the destination's, not the source's."""
    names = (error.filename2, error.filename) if error.errno != errno.EIO else (error.filename,)
    return next((name for name in names if isinstance(name, str)), None)
