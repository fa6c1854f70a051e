"""Kill points for fault tests: ``STAIRWAY_FAULT`` names a point where this process kills itself.

A point is a journal record (``"<step>:<event>"``, written by the journal) or a side effect
(``"before:release-swap"``, ``"after:db-swap"``): the code calls :func:`point` immediately before
and after each irreversible action. ``name#n`` kills at the n-th time the point is reached, for
actions that repeat (one per config file, one per schema change). Unset, it costs one lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

FAULT = "STAIRWAY_FAULT"
TRACE = "STAIRWAY_FAULT_TRACE"  # a file: every point reached is appended to it, one a line
_reached: Counter[str] = Counter()


def point(name: str) -> None:
    """Die by SIGKILL here when ``STAIRWAY_FAULT`` names this point (or its n-th time)."""
    wanted, trace = os.environ.get(FAULT), os.environ.get(TRACE)
    if not wanted and not trace:
        return
    _reached[name] += 1
    numbered = f"{name}#{_reached[name]}"
    if trace:
        with open(trace, "a", encoding="utf-8") as out:
            out.write(numbered + "\n")
    if wanted in (name, numbered):
        os.kill(os.getpid(), signal.SIGKILL)


def around(action: str) -> tuple[str, str]:
    """The two points of one side effect."""
    return f"before:{action}", f"after:{action}"
