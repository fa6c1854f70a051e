"""The schema each change of a history finds: the shape its earlier changes left, replayed from
their SQL only when a phase rule asks for it, and once.

A change whose SQL cannot be known without running it (a Python change, an Alembic revision
that works on rows) may have done anything: the shape after it knows no table, so the rules
after it keep their conservative verdicts until later changes create tables again.
"""

from __future__ import annotations

from stairway.schema.change import Change
from stairway.schema.shape import Shape
from stairway.schema.sql_of import opaque_sql, sql_of


class Earlier:
    """Changes in the order they run, each added once it has been checked."""

    def __init__(self) -> None:
        self._changes: list[Change] = []
        self._shape = Shape.empty()
        self._replayed = 0

    def add(self, change: Change) -> None:
        """``change`` runs after every change added before it."""
        self._changes.append(change)

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every change added, in order."""
        return tuple(self._changes)

    def shape(self) -> Shape:
        """The schema after every change added so far."""
        for change in self._changes[self._replayed :]:
            known = not opaque_sql(change)
            self._shape = self._shape.after(sql_of(change)) if known else Shape.empty()
        self._replayed = len(self._changes)
        return self._shape
