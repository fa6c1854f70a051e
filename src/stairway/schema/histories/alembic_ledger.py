"""``alembic_version``, written as ``alembic upgrade`` and ``alembic downgrade`` leave it: one
row per head, in a table of that name with a primary key named ``<table>_pkc``."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    insert,
    select,
)

from stairway.schema.change import Change, HistoryTool
from stairway.schema.histories.ledger import LedgerState


def version_table(name: str) -> Table:
    """The table as Alembic creates it."""
    return Table(
        name,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )


class AlembicLedger:
    """``alembic_version``: the heads of the applied revisions."""

    def read(self, conn: Connection, table: str) -> LedgerState:
        """The heads the table names."""
        rows = conn.execute(select(version_table(table).c.version_num)).scalars()
        return LedgerState(tuple(sorted(rows)), heads=True)

    def record(self, conn: Connection, change: Change, duration_ms: int) -> None:
        """The heads after ``change``."""
        assert change.origin is not None
        self._write(conn, change.origin.table, change.origin.heads_after)

    def forget(self, conn: Connection, change: Change) -> None:
        """The heads before ``change``: an empty table once the first revision is reverted."""
        assert change.origin is not None
        self._write(conn, change.origin.table, change.origin.heads_before)

    def _write(self, conn: Connection, name: str, heads: tuple[str, ...]) -> None:
        table = version_table(name)
        table.create(conn, checkfirst=True)
        conn.execute(delete(table))
        if heads:
            conn.execute(insert(table), [{"version_num": head} for head in heads])


LEDGERS = {HistoryTool.ALEMBIC: AlembicLedger()}
