"""The adopted tool's own bookkeeping table, kept as the tool itself would leave it.

After Stairway applies or reverts a change of an adopted history, in the same transaction, the
tool's table is written as the tool would have written it (``alembic_version``,
``flyway_schema_history``, golang-migrate's or dbmate's ``schema_migrations``), so the product's
own startup check and its own tool keep working. Reading the table tells what an installation
the tool migrated holds (``recognition.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Protocol

from sqlalchemy import Connection

from stairway.schema.change import Change, HistoryTool


@dataclass(frozen=True)
class LedgerState:
    """What a tool's table says. ``heads``: the rows name the newest applied migrations (Alembic,
    golang-migrate); otherwise every applied one (Flyway, dbmate). ``problem``: the table says a
    migration failed half-way (Flyway's ``success = false``, golang-migrate's ``dirty``).
    ``baseline``: Flyway's ``BASELINE`` row, which stands for every migration up to its version."""

    rows: tuple[str, ...]
    heads: bool
    problem: str | None = None
    baseline: str | None = None


class Ledger(Protocol):
    """One tool's bookkeeping table."""

    def read(self, conn: Connection, table: str) -> LedgerState:
        """What the table says; called only when it exists."""
        ...

    def record(self, conn: Connection, change: Change, duration_ms: int) -> None:
        """Write what the tool writes after it applied ``change``."""
        ...

    def forget(self, conn: Connection, change: Change) -> None:
        """Write what the tool writes after it reverted ``change``."""
        ...


# tool -> the module whose ``LEDGER`` keeps its table
LEDGERS = {
    HistoryTool.ALEMBIC: "stairway.schema.histories.alembic_ledger",
    HistoryTool.FLYWAY: "stairway.schema.histories.sql_ledgers",
    HistoryTool.GOLANG_MIGRATE: "stairway.schema.histories.sql_ledgers",
    HistoryTool.DBMATE: "stairway.schema.histories.sql_ledgers",
}


def ledger_of(tool: HistoryTool) -> Ledger:
    """The ledger that keeps ``tool``'s table."""
    module = import_module(LEDGERS[tool])
    ledger: Ledger = module.LEDGERS[tool]
    return ledger


def read(conn: Connection, tool: HistoryTool, table: str) -> LedgerState | None:
    """What ``tool``'s ``table`` says; None when the database has no such table."""
    if not conn.dialect.has_table(conn, table):
        return None
    return ledger_of(tool).read(conn, table)


def after_apply(conn: Connection, change: Change, duration_ms: int) -> None:
    """Keep the adopted tool's table true after ``change`` ran (nothing for Stairway's own)."""
    if change.origin is not None:
        ledger_of(change.origin.tool).record(conn, change, duration_ms)


def after_revert(conn: Connection, change: Change) -> None:
    """Keep the adopted tool's table true after ``change`` was reverted."""
    if change.origin is not None:
        ledger_of(change.origin.tool).forget(conn, change)


def stamp(conn: Connection, changes: Sequence[Change]) -> None:
    """The adopted tool's table as the tool leaves it after applying ``changes`` in order, none
    of which Stairway ran: a site built from a schema snapshot. Written row by row as after
    each change, so it is what a replay writes; Flyway's ``installed_on`` is now and its
    ``execution_time`` 0, as no migration ran."""
    for change in changes:
        after_apply(conn, change, 0)
