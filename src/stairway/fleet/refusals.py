"""Refused requests, counted per source and minute: a rate limit and a bounded audit trail.

Each refusal (a missing, wrong, revoked or wrong-kind token) is tallied under the address it
came from and the minute it came in. A source past ``LIMIT`` refusals in a minute is answered
429 for the rest of that minute, before its token is even looked up. The audit log gets one
``auth.denied`` entry per source and minute, with the count, written once the minute is over
(and when the server stops): however many requests a caller sends, the log grows by at most
``SOURCES + 1`` entries a minute per replica. Past ``SOURCES`` distinct sources in a minute,
the rest share one tally.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LIMIT = 60  # refusals a source may have in a minute before it is answered 429
SOURCES = 100  # distinct sources tallied apart in a minute; the rest share one tally
OTHERS = "other sources"
KEPT = 5  # distinct paths and reasons named in an entry
PATH_CHARS = 200  # a path is the caller's text: kept this long


@dataclass
class Tally:
    """One source's refusals in one minute."""

    count: int = 0
    limited: int = 0  # of which answered 429
    paths: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, path: str, reason: str, limited: bool) -> None:
        """Count one refusal; the first few distinct paths and reasons are kept."""
        self.count += 1
        self.limited += limited
        shown = path[:PATH_CHARS]
        if shown not in self.paths and len(self.paths) < KEPT:
            self.paths.append(shown)
        if reason in self.reasons or len(self.reasons) < KEPT:
            self.reasons[reason] += 1


class Refusals:
    """The tallies of this replica, by minute and source."""

    def __init__(self, limit: int = LIMIT, clock: Any = time.time) -> None:
        self.limit, self.clock = limit, clock
        self.tallies: dict[int, dict[str, Tally]] = {}

    def over(self, source: str) -> bool:
        """Whether ``source`` used up its refusals this minute: answer 429 without looking."""
        tally = self.tallies.get(self._minute(), {}).get(source)
        return tally is not None and tally.count >= self.limit

    def refused(self, source: str, path: str, reason: str, limited: bool = False) -> None:
        """Count a refusal of ``source`` at ``path``, and why."""
        sources = self.tallies.setdefault(self._minute(), {})
        if source not in sources and len(sources) >= SOURCES:
            source = OTHERS
        sources.setdefault(source, Tally()).add(path, reason, limited)

    def due(self, everything: bool = False) -> list[dict[str, Any]]:
        """The audit entries' data of the minutes that are over (every minute, when the server
        stops), each tally once; they are forgotten here."""
        now = self._minute()
        closed = [m for m in sorted(self.tallies) if everything or m < now]
        return [_entry(m, s, t) for m in closed for s, t in self.tallies.pop(m).items()]

    def _minute(self) -> int:
        return int(self.clock() // 60)


def _entry(minute: int, source: str, tally: Tally) -> dict[str, Any]:
    start = datetime.fromtimestamp(minute * 60, UTC).isoformat(timespec="minutes")
    return {
        "from": source,
        "minute": start,
        "count": tally.count,
        "limited": tally.limited,
        "paths": tally.paths,
        "reasons": dict(tally.reasons),
    }
