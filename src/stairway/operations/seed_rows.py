"""The rows a release's changes create, as SQL a schema snapshot carries beside its DDL: seed
data such as default roles and settings, and where each sequence stands, so that a site built
from the snapshot holds what replaying the changes would have left, and its next insert takes
the id replaying would have given it.

Taken from a scratch database the changes were just replayed into, never from a site: a site's
own rows are its users' data. Stairway's ``stairway_*`` tables are left out.

PostgreSQL: ``pg_dump --data-only --column-inserts`` of the tables holding rows and of every
sequence the changes advanced (its ``setval``), in pg_dump's order (referenced tables first).
SQLite: one ``INSERT`` per row, tables in the order they were created and rows in rowid order,
then the ``sqlite_sequence`` counter of each ``AUTOINCREMENT`` table.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from stairway.backup.database import client_tool, libpq_of
from stairway.operations.ddl import dumped, exactly, replayable

_PG_SEQUENCES = text(
    "SELECT schemaname, sequencename FROM pg_sequences WHERE last_value IS NOT NULL "
    "AND schemaname = current_schema() AND sequencename NOT LIKE 'stairway%' "
    "ORDER BY sequencename"
)
_SQLITE_TABLES = text(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
    "AND name NOT LIKE 'stairway_%' ORDER BY rowid"
)


def seed_rows(engine: Engine, tables: list[str]) -> list[str]:
    """The statements that put back the rows of ``tables`` (those holding some) and the
    sequences' values; empty when the changes left neither."""
    if engine.dialect.name == "postgresql":
        return _pg_rows(engine, tables)
    with engine.connect() as conn:
        return _sqlite_rows(conn, set(tables))


def _pg_rows(engine: Engine, tables: list[str]) -> list[str]:
    with engine.connect() as conn:
        schema = str(conn.execute(text("SELECT current_schema()")).scalar_one())
        sequences = [f"{exactly(s)}.{exactly(n)}" for s, n in conn.execute(_PG_SEQUENCES)]
    wanted = [f"{exactly(schema)}.{exactly(t)}" for t in tables] + sequences
    return replayable(_pg_dump(engine, wanted)) if wanted else []


def _pg_dump(engine: Engine, patterns: list[str]) -> str:
    conninfo, env = libpq_of(engine.url)
    command = [
        client_tool("pg_dump", engine),
        "--data-only",
        "--column-inserts",
        "--no-owner",
        "--no-privileges",
        *(f"--table={p}" for p in patterns),
        f"--dbname={conninfo}",
    ]
    return dumped(command, env, "the scratch database")


def _sqlite_rows(conn: Connection, wanted: set[str]) -> list[str]:
    order = [str(n) for (n,) in conn.execute(_SQLITE_TABLES) if str(n) in wanted]
    statements = [s for table in order for s in _sqlite_table(conn, table)]
    return statements + _sqlite_counters(conn)


def _sqlite_table(conn: Connection, table: str) -> list[str]:
    columns = [str(row[1]) for row in conn.execute(text(f"PRAGMA table_info({exactly(table)})"))]
    names = ", ".join(exactly(c) for c in columns)
    by_value = ", ".join(str(i + 1) for i in range(len(columns)))
    order = "rowid" if _has_rowid(conn, table) else by_value
    rows = conn.execute(text(f"SELECT {names} FROM {exactly(table)} ORDER BY {order}"))
    into = f"INSERT INTO {exactly(table)} ({names}) VALUES "
    return [into + "(" + ", ".join(sqlite_literal(v) for v in row) + ")" for row in rows]


def _has_rowid(conn: Connection, table: str) -> bool:
    sql = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": table},
    ).scalar_one()
    return "WITHOUT ROWID" not in " ".join(str(sql).upper().split())


def _sqlite_counters(conn: Connection) -> list[str]:
    """Each AUTOINCREMENT table's counter, which rows deleted by a change leave above its
    highest id: set as replaying left it, so the next id is the same."""
    present = conn.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'")
    ).first()
    if present is None:
        return []
    counters = conn.execute(
        text("SELECT name, seq FROM sqlite_sequence WHERE name NOT LIKE 'stairway_%' ORDER BY name")
    )
    statements: list[str] = []
    for name, seq in counters:
        named = sqlite_literal(str(name))
        statements.append(f"DELETE FROM sqlite_sequence WHERE name = {named}")
        statements.append(f"INSERT INTO sqlite_sequence (name, seq) VALUES ({named}, {int(seq)})")
    return statements


def sqlite_literal(value: object) -> str:
    """``value``, as SQLite returns it, written as an SQL literal that reads back the same."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else _odd_float(value)
    if isinstance(value, bytes):
        return "X'" + value.hex().upper() + "'"
    return "'" + str(value).replace("'", "''") + "'"


def _odd_float(value: float) -> str:
    if value != value:  # SQLite stores NaN as NULL
        return "NULL"
    return "9e999" if value > 0 else "-9e999"
