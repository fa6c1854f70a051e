"""How big the site's tables are: rows, heap bytes and index count, read cheaply.

PostgreSQL: ``pg_class.reltuples`` (the planner's row estimate, kept by ANALYZE and autovacuum)
and ``pg_relation_size``; a table never analyzed is counted. SQLite: ``count(*)`` and the
``dbstat`` virtual table where it is compiled in.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import OperationalError

AVERAGE_ROW = 100  # bytes, when SQLite cannot say


@dataclass(frozen=True)
class TableSize:
    """A table's rows, heap bytes and number of indexes."""

    rows: int
    bytes: int
    indexes: int


def table_sizes(engine: Engine) -> dict[str, TableSize]:
    """The size of every table of the site's database, by name."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return _postgres(conn)
        return _sqlite(conn)


_PG_SIZES = """
SELECT c.relname, c.reltuples::bigint, pg_relation_size(c.oid),
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()
"""


def _postgres(conn: Connection) -> dict[str, TableSize]:
    found = {}
    for name, rows, size, indexes in conn.execute(text(_PG_SIZES)):
        if rows < 0:  # never analyzed: count it once
            rows = conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
        found[str(name)] = TableSize(int(rows), int(size), int(indexes))
    return found


def _sqlite(conn: Connection) -> dict[str, TableSize]:
    found = {}
    inspector = inspect(conn)
    for name in inspector.get_table_names():
        rows = int(conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one())
        try:
            size = conn.execute(
                text("SELECT sum(pgsize) FROM dbstat WHERE name = :n"), {"n": name}
            ).scalar_one()
        except OperationalError:
            size = None
        indexes = len(inspector.get_indexes(name)) + 1  # the rowid / primary key
        found[name] = TableSize(rows, int(size or rows * AVERAGE_ROW), indexes)
    return found
