"""Recognising an installation the adopted tool migrated: which change its table says it holds.

A database with no Stairway bookkeeping but with the tool's table (``alembic_version``,
``flyway_schema_history``, ``schema_migrations``) was migrated by the product's own tool. What the
table says is matched against the catalog's history: it must name one point of it (Alembic's
heads after some change, or exactly the first K migrations), or the database is refused with
what the table says and what the catalog ships.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from stairway.errors import SchemaError
from stairway.schema.change import Change, HistoryTool
from stairway.schema.histories import ledger
from stairway.schema.histories.sql_names import flyway_key


@dataclass(frozen=True)
class Recognised:
    """An installation the tool migrated: its table's rows, and the change they amount to."""

    tool: HistoryTool
    table: str
    rows: tuple[str, ...]
    level: int  # changes 1..level are applied
    ident: str  # the history's own identifier of change ``level``; empty at 0

    def describe(self) -> str:
        """What was recognised, in one sentence."""
        if not self.level:
            return f"{self.tool} history table {self.table} is empty: no migration applied"
        return f"{self.tool} history in {self.table} at {self.ident} (change {self.level})"


def adopted(changes: Sequence[Change]) -> list[Change]:
    """The mainline changes that come from an adopted history, in order."""
    return [c for c in changes if c.origin is not None and not c.patch]


def recognise(conn: Connection, changes: Sequence[Change]) -> Recognised | None:
    """What the adopted tool's table says, as a point of the history; None when the catalog's
    history is Stairway's own or the database has no such table.

    Raises:
        SchemaError: the table records a half-applied migration, or names no point of the
            catalog's history (a migration the catalog does not ship, or not a prefix of its order).
    """
    history = adopted(changes)
    if not history:
        return None
    origin = history[0].origin
    assert origin is not None
    state = ledger.read(conn, origin.tool, origin.table)
    if state is None:
        return None
    if state.problem:
        raise SchemaError(
            f"{origin.table} says {state.problem}",
            hint=f"repair the database with {origin.tool}'s own tool first, then run again",
        )
    level = _level(state, history)
    ident = history[level - 1].origin.ident if level else ""  # type: ignore[union-attr]
    return Recognised(origin.tool, origin.table, state.rows, level, ident)


def _level(state: ledger.LedgerState, history: Sequence[Change]) -> int:
    idents = [c.origin.ident for c in history if c.origin]
    unknown = sorted(set(state.rows) - set(idents))
    if unknown:
        raise SchemaError(
            f"{history[0].origin.table if history[0].origin else ''} names "
            f"{', '.join(unknown)}, which this catalog's history does not ship: a newer "
            "release of the product migrated this database",
            hint="use the catalog of the release the database was migrated to, or a newer one",
        )
    if state.heads:
        return _level_of_heads(state.rows, history)
    return _level_of_applied(state.rows + _baselined(state, history), idents)


def _baselined(state: ledger.LedgerState, history: Sequence[Change]) -> tuple[str, ...]:
    """The migrations a Flyway ``BASELINE`` row stands for: every version up to its own."""
    if state.baseline is None:
        return ()
    limit = flyway_key(state.baseline)
    return tuple(
        c.origin.ident for c in history if c.origin and flyway_key(c.origin.ident) <= limit
    )


def _level_of_heads(rows: tuple[str, ...], history: Sequence[Change]) -> int:
    if not rows:
        return 0
    for change in history:
        if change.origin and set(change.origin.heads_after) == set(rows):
            return change.number
    raise SchemaError(
        f"the heads {', '.join(rows)} are no point of the catalog's order of the history: "
        "branches were applied in another order than the one Stairway runs",
        hint="bring the database to a single head with the product's own tool (merge point or "
        "head), then run again; docs/adopting.md explains the order",
    )


def _level_of_applied(rows: tuple[str, ...], idents: Sequence[str]) -> int:
    applied = set(rows)
    level = len(applied)
    if set(idents[:level]) != applied:
        missing = [i for i in idents[:level] if i not in applied]
        raise SchemaError(
            f"the history table records {level} migrations, but not {', '.join(missing[:5])}, "
            "which come before others it records: they were applied out of order",
            hint="apply the missing migrations with the product's own tool, then run again",
        )
    return level
