"""Which processes hold a file or a directory's files open (Linux ``/proc/<pid>/fd``).

A restore swaps the database file and the data directory by renames: a process still holding
the old ones keeps serving them, deleted, and loses every write. Before anything is swapped,
no other process may hold them; this module finds who does. Elsewhere it finds nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
DELETED = " (deleted)"


@dataclass(frozen=True)
class Holder:
    """A process holding a file open: its pid, command name and the path it holds."""

    pid: int
    command: str
    path: str  # what it holds, " (deleted)" when it was replaced since

    def describe(self) -> str:
        """The process and the file it holds, for a refusal message."""
        return f"pid {self.pid} ({self.command}) holds {self.path}"


def holders(files: Iterable[Path], directories: Iterable[Path] = ()) -> list[Holder]:
    """Other processes holding one of ``files`` (or a replaced copy) or anything under
    ``directories``; this process and its threads are not counted."""
    exact = {str(f) for f in files}
    roots = [str(d).rstrip("/") + "/" for d in directories]
    found = []
    for pid, target in _open_files():
        name = target.removesuffix(DELETED)
        if name in exact or any(name.startswith(root) or name + "/" == root for root in roots):
            found.append(Holder(pid, _command(pid), target))
    return found


def sqlite_files(database: Path) -> list[Path]:
    """The database file and the files SQLite keeps beside it."""
    beside = ("-wal", "-shm", "-journal")
    return [database, *(database.with_name(database.name + suffix) for suffix in beside)]


def _open_files() -> Iterator[tuple[int, str]]:
    if not PROC.is_dir():
        return
    own = os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:  # gone meanwhile, or not ours to read
            continue
        for descriptor in descriptors:
            try:
                yield int(entry.name), os.readlink(descriptor)
            except OSError:
                continue


def _command(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    words = raw.rstrip(b"\0").split(b"\0")
    return " ".join(w.decode(errors="replace") for w in words)[:200] or "?"
