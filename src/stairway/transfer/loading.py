"""Putting a checked, migrated chunk of objects into the site's object table.

PostgreSQL takes the chunk by ``COPY`` straight into the table; when some of its objects are
already there (a second import of the same file, or objects the site had), the COPY fails as a
whole, is rolled back to a savepoint, and the chunk goes through a staging table and one
``INSERT ... ON CONFLICT DO NOTHING`` instead. SQLite takes one batched insert that skips
objects already present. Either way the caller's transaction holds the chunk's checkpoint too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from sqlalchemy import JSON, Connection
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stairway.objects.store import ObjectStore

# One object as it goes in: id, type, migrated document, release stamp (None: no stamp column).
Row = tuple[Any, str, dict[str, Any], str | None]
STAGE = "stairway_import_stage"


def load(conn: Connection, store: ObjectStore, rows: Sequence[Row]) -> int:
    """Insert the rows that are not there yet; returns how many were new."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return _copy(conn, store, rows)
    return _insert_sqlite(conn, store, rows)


def _insert_sqlite(conn: Connection, store: ObjectStore, rows: Sequence[Row]) -> int:
    spec = store.spec
    native = isinstance(store.table.c[spec.body].type, JSON)  # SQLAlchemy encodes it
    values = []
    for oid, type_, document, stamp in rows:
        row = {spec.id: oid, spec.type: type_, spec.body: document if native else _json(document)}
        if spec.version:
            row[spec.version] = stamp
        values.append(row)
    statement = (
        sqlite_insert(store.table)
        .on_conflict_do_nothing(index_elements=[spec.id])
        .returning(store.id_column)
    )
    return len(conn.execute(statement, values).all())


def _copy(conn: Connection, store: ObjectStore, rows: Sequence[Row]) -> int:
    quote = conn.dialect.identifier_preparer.quote
    spec = store.spec
    columns = [spec.id, spec.type, spec.body] + ([spec.version] if spec.version else [])
    names = ", ".join(quote(c) for c in columns)
    table = quote(spec.table)
    data = b"".join(_copy_line(row, bool(spec.version)) for row in rows)
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    with raw.cursor() as cursor:
        cursor.execute("SAVEPOINT stairway_import")
        try:
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                copy.write(data)
        except psycopg.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT stairway_import")
        else:
            cursor.execute("RELEASE SAVEPOINT stairway_import")
            return len(rows)
        return _copy_staged(cursor, table, names, quote(spec.id), data)


def _copy_staged(cursor: psycopg.Cursor[Any], table: str, names: str, key: str, data: bytes) -> int:
    """COPY alone cannot skip rows already present; a staging table and one INSERT can."""
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (LIKE {table} INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    with cursor.copy(f"COPY {STAGE} ({names}) FROM STDIN") as copy:
        copy.write(data)
    cursor.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {STAGE} "
        f"ON CONFLICT ({key}) DO NOTHING RETURNING 1"
    )
    inserted = len(cursor.fetchall())
    cursor.execute(f"TRUNCATE {STAGE}")
    return inserted


def _copy_line(row: Row, stamped: bool) -> bytes:
    """One line of COPY's text format: tab-separated, backslash-escaped, ``\\N`` for NULL."""
    oid, type_, document, stamp = row
    body = orjson.dumps(document).replace(b"\\", b"\\\\")
    fields = [_copy_text(str(oid)), _copy_text(type_), body]
    if stamped:
        fields.append(b"\\N" if stamp is None else _copy_text(stamp))
    return b"\t".join(fields) + b"\n"


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = re.compile(r"[\\\t\n\r]")


def _copy_text(value: str) -> bytes:
    # orjson never writes a raw tab, newline or carriage return; ids and types might hold one.
    if _SPECIAL.search(value) is None:
        return value.encode()
    return value.translate(_ESCAPES).encode()


def _json(document: dict[str, Any]) -> str:
    return orjson.dumps(document).decode()
