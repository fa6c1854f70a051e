"""Which audit entries one page of the web UI's Audit shows: newest first, a page at a time.

A page is found by position, not by offset: ``before`` is the number of the entry just above
the page (the entries are numbered 1, 2, 3 ... as they are appended), so a page keeps showing
the same entries while new ones arrive, and the database reads only the page from its index.
Pure: the total comes from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from stairway.errors import FleetError

PAGE_SIZE = 50


class CursorRefused(FleetError):
    """A ``before`` that is not the position of an entry of this log: HTTP 400."""

    def __init__(self, given: str, total: int) -> None:
        allowed = f"a whole number from 1 to {total + 1}" if total else "left out (no entry yet)"
        super().__init__(
            f"before={given!r} is not a position in the audit log: it must be {allowed}",
            hint="follow the Older and Newer links of the Audit page, or open /ui/audit",
        )


@dataclass(frozen=True)
class Window:
    """The entries numbered ``below - size`` up to ``below - 1`` (at least 1) of ``total``."""

    below: int  # one past the newest entry shown
    total: int
    size: int = PAGE_SIZE

    @property
    def newest(self) -> int:
        """The number of the first entry shown (the newest)."""
        return self.below - 1

    @property
    def oldest(self) -> int:
        """The number of the last entry shown (the oldest); above ``newest`` when none is."""
        return max(1, self.below - self.size)

    @property
    def older(self) -> int | None:
        """The ``before`` of the next page down, None on the page of entry 1."""
        return self.oldest if self.oldest > 1 else None

    @property
    def newer(self) -> int | None:
        """The ``before`` of the page above, 0 for the newest page, None on the newest page."""
        if self.below > self.total:
            return None
        above = self.below + self.size
        return 0 if above > self.total else above

    def describe(self) -> str:
        """Which entries the page shows, of how many."""
        if self.newest < self.oldest:
            return f"No entries here (the log has {self.total})."
        if self.newest == self.oldest:
            return f"Entry {self.newest} of {self.total}."
        return f"Entries {self.newest} down to {self.oldest} of {self.total}, newest first."


def window(before: str, total: int, size: int = PAGE_SIZE) -> Window:
    """The page that ``before`` (as the query string gave it; empty for the newest) points at."""
    if not before:
        return Window(total + 1, total, size)
    if not before.isdecimal() or not before.isascii() or len(before) > 19:
        raise CursorRefused(before, total)
    below = int(before)
    if not 1 <= below <= total + 1:
        raise CursorRefused(before, total)
    return Window(below, total, size)
