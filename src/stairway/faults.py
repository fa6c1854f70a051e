"""Fault points for fault tests: ``STAIRWAY_FAULT`` names a point where this process fails.

A point is a journal record (``"<step>:<event>"``, written by the journal) or a side effect
(``"before:release-swap"``, ``"after:db-swap"``, ``"before:file-write"``; a restore passes
``"before:stage-write"`` before each part it stages beside the live ones): the code calls
:func:`point` immediately before and after each irreversible action and before each write.
``name#n`` fails at the n-th time the point is reached, for actions that repeat (one per config
file, one per schema change). Unset, it costs one lookup.

How it fails is ``STAIRWAY_FAULT_ACTION``: ``kill`` (the default) kills the process by SIGKILL;
``enospc``, ``eio`` or ``erofs`` raise that ``OSError`` at the point, as the write after it
would; ``fill:<dir>`` fills the file system holding ``<dir>`` and carries on, so that the
process meets the full disk for real.
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter
from pathlib import Path

FAULT = "STAIRWAY_FAULT"
ACTION = "STAIRWAY_FAULT_ACTION"
TRACE = "STAIRWAY_FAULT_TRACE"  # a file: every point reached is appended to it, one a line
FILLER = ".stairway-filler"  # the file ``fill:<dir>`` writes; removing it frees the space
ERRORS = {"enospc": errno.ENOSPC, "eio": errno.EIO, "erofs": errno.EROFS}
_reached: Counter[str] = Counter()


def point(name: str) -> None:
    """Fail here as ``STAIRWAY_FAULT_ACTION`` says when ``STAIRWAY_FAULT`` names this point
    (or its n-th time)."""
    wanted, trace = os.environ.get(FAULT), os.environ.get(TRACE)
    if not wanted and not trace:
        return
    _reached[name] += 1
    numbered = f"{name}#{_reached[name]}"
    if trace:
        with open(trace, "a", encoding="utf-8") as out:
            out.write(numbered + "\n")
    if wanted in (name, numbered):
        act(os.environ.get(ACTION) or "kill")


def named(name: str) -> bool:
    """Whether ``STAIRWAY_FAULT`` names this point (for a point that fails its own way)."""
    return os.environ.get(FAULT) == name


def act(action: str) -> None:
    """Do what ``STAIRWAY_FAULT_ACTION`` asks for at the chosen point."""
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action in ERRORS:
        code = ERRORS[action]
        raise OSError(code, os.strerror(code))
    elif action.startswith("fill:"):
        fill(Path(action.removeprefix("fill:")))
    else:
        raise ValueError(f"{ACTION}={action!r}: expected kill, enospc, eio, erofs or fill:<dir>")


def fill(directory: Path) -> Path:
    """Write ``FILLER`` in ``directory`` until its file system is full; returns its path.

    Smaller and smaller chunks, so that not even a page is left for the next write."""
    filler = directory / FILLER
    with filler.open("ab", buffering=0) as out:
        for chunk in (1 << 20, 1 << 12, 1):
            _write_until_full(out.fileno(), b"\0" * chunk)
    return filler


def _write_until_full(descriptor: int, chunk: bytes) -> None:
    try:
        while os.write(descriptor, chunk):
            pass
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise


def around(action: str) -> tuple[str, str]:
    """The two points of one side effect."""
    return f"before:{action}", f"after:{action}"
