"""``alembic_version``, written as ``alembic upgrade`` and ``alembic downgrade`` leave it: one
row per head, in a table of that name with a primary key named ``<table>_pkc``."""

from __future__ import annotations

import functools

from psycopg import sql
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


@functools.cache
def version_table(name: str) -> Table:
    """The table as Alembic creates it (one object per name: SQLAlchemy caches what it compiles
    per table object)."""
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


def after_sql(change: Change) -> sql.Composed:
    """What :meth:`AlembicLedger.record` writes, as PostgreSQL statements a caller sends in one
    round trip with Stairway's own record of the change."""
    assert change.origin is not None
    table = sql.Identifier(change.origin.table)
    create = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT {} PRIMARY KEY (version_num));\nDELETE FROM {}"
    ).format(table, sql.Identifier(f"{change.origin.table}_pkc"), table)
    rows = [
        sql.SQL("INSERT INTO {} (version_num) VALUES ({})").format(table, sql.Literal(head))
        for head in change.origin.heads_after
    ]
    return sql.SQL(";\n").join([create, *rows])
