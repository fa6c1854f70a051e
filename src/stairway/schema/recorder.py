"""The one owner of Stairway's bookkeeping tables: ``stairway_changes``, ``stairway_patches``
and ``stairway_meta``.

``stairway_meta`` holds the format of these tables, so that a later Stairway can migrate them and an
older one refuses a database it does not understand. Format 2 added ``stairway_patches``: the
patch changes N.K of an LTS line, keyed by (number, patch), so ``stairway_changes`` keeps one row
per mainline number as before.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from psycopg import sql
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import CompoundSelect

from stairway.errors import SchemaError
from stairway.schema.change import Change, Phase, change_code, change_label
from stairway.schema.sqltext import CHECKSUM_ALGORITHM

FORMAT = 2
metadata = MetaData()

changes_table = Table(
    "stairway_changes",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("checksum_algorithm", String(40), nullable=False),
    Column("phase", String(20), nullable=False),
    Column("release", String(64), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("kind", String(20), nullable=False),  # a RecordKind
)

patches_table = Table(
    "stairway_patches",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("patch", Integer, primary_key=True, autoincrement=False),
    *(Column(c.name, c.type, nullable=False) for c in changes_table.columns if c.name != "number"),
)

meta_table = Table(
    "stairway_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


class RecordKind(StrEnum):
    """How a change came to be recorded: stored in the ``kind`` column as its value."""

    APPLIED = "applied"  # Stairway ran it
    BASELINE = "baseline"  # found in place when an existing database was adopted


@dataclass(frozen=True)
class AppliedChange:
    """A change as the bookkeeping tables record it: its checksum then, the release that applied it,
    when, how long it took, and whether it ran or was adopted by a baseline.
    """

    number: int
    name: str
    checksum: str
    checksum_algorithm: str
    phase: Phase
    release: str
    applied_at: datetime
    duration_ms: int
    kind: RecordKind
    patch: int = 0

    @property
    def key(self) -> tuple[int, int]:
        """Where the change sorts: a patch N.K after N, before N+1."""
        return (self.number, self.patch)

    @property
    def code(self) -> str:
        """The change as messages name it: ``3``, or ``3.1`` for a patch change."""
        return change_code(self.number, self.patch)

    @property
    def label(self) -> str:
        """The change as lists show it: ``0003_add_email``, or ``0003.1_fix_index`` for a patch."""
        return change_label(self.number, self.patch, self.name)


def exists(conn: Connection) -> bool:
    """Whether Stairway has set up its bookkeeping tables in this database."""
    return conn.dialect.has_table(conn, "stairway_meta")  # no inspector: one catalog query


def ensure_tables(conn: Connection) -> bool:
    """Create the bookkeeping tables on first use (True when it did); refuse a format from a
    newer Stairway."""
    if current_tables(conn):
        return False
    create_tables(conn)
    return True


def current_tables(conn: Connection) -> bool:
    """Whether the bookkeeping tables are there, brought to this Stairway's format when they are;
    False leaves the database untouched (``create_tables`` sets them up).

    Raises:
        SchemaError: the tables are in the format of a newer Stairway.
    """
    if not exists(conn):
        return False
    found = int(get_meta(conn, "format") or 1)
    if found > FORMAT:
        raise SchemaError(
            f"this database was set up by a newer Stairway (bookkeeping format {found}, "
            f"this one knows {FORMAT})",
            hint="upgrade Stairway itself before migrating",
        )
    if found < 2:  # format 1 had no patch changes
        patches_table.create(conn, checkfirst=True)
        set_meta(conn, "format", str(FORMAT))
    return True


def create_tables(conn: Connection) -> None:
    """The bookkeeping tables and the format row, on a database that has none of them yet."""
    if conn.dialect.name != "postgresql":
        metadata.create_all(conn, checkfirst=False)
        conn.execute(insert(meta_table).values(key="format", value=str(FORMAT)))
        return
    # One round trip instead of one per table: it is the first thing every new site does.
    conn.exec_driver_sql(_creation_sql(conn.dialect))


_CREATION: dict[str, str] = {}


def _creation_sql(dialect: Dialect) -> str:
    """The tables and the format row as one script, compiled once per process and dialect
    (each new engine brings a dialect object of its own)."""
    if dialect.name not in _CREATION:
        tables = [str(CreateTable(t).compile(dialect=dialect)) for t in metadata.sorted_tables]
        row = f"INSERT INTO {meta_table.name} (key, value) VALUES ('format', '{FORMAT}')"
        _CREATION[dialect.name] = ";\n".join([*tables, row])
    return _CREATION[dialect.name]


def applied(conn: Connection) -> list[AppliedChange]:
    """Every change recorded, mainline and patches, in the order of their numbers."""
    if not exists(conn):
        return []
    rows = conn.execute(select(changes_table).order_by(changes_table.c.number))
    found = [_applied(row._mapping) for row in rows]
    if conn.dialect.has_table(conn, patches_table.name):
        rows = conn.execute(select(patches_table))
        found += [_applied(row._mapping) for row in rows]
    return sorted(found, key=lambda a: a.key)


def _applied(row: object) -> AppliedChange:
    values = dict(row)  # type: ignore[call-overload]
    values["phase"] = Phase(values["phase"])
    values["kind"] = RecordKind(values["kind"])
    return AppliedChange(**values)


def table_of(change: Change) -> Table:
    """The table recording ``change``: a patch change has its own."""
    return patches_table if change.patch else changes_table


def record(
    conn: Connection, change: Change, release: str, duration_ms: int, kind: RecordKind
) -> None:
    """Record ``change`` as present: applied for ``release`` in ``duration_ms`` (0: a baseline)."""
    row = record_row(change, release, duration_ms, kind)
    conn.execute(insert(table_of(change)).values(**row))


def record_row(
    change: Change, release: str, duration_ms: int, kind: RecordKind
) -> dict[str, object]:
    """The ``stairway_changes`` row that says ``change`` is present."""
    patch = {"patch": change.patch} if change.patch else {}
    return {
        "number": change.number,
        **patch,
        "name": change.name,
        "checksum": change.checksum,
        "checksum_algorithm": CHECKSUM_ALGORITHM,
        "phase": change.phase.value,
        "release": release,
        "applied_at": datetime.now(UTC),
        "duration_ms": duration_ms,
        "kind": kind.value,
    }


def as_applied(change: Change, release: str, kind: RecordKind) -> AppliedChange:
    """The record of ``change`` as :func:`record` would write it, without writing it."""
    return _applied(record_row(change, release, 0, kind))


def record_sql(change: Change, release: str, duration_ms: int, kind: RecordKind) -> sql.Composed:
    """The same row as :func:`record` writes, as one PostgreSQL ``INSERT`` that a caller sends
    together with its ``COMMIT`` (one round trip fewer per change)."""
    row = record_row(change, release, duration_ms, kind)
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table_of(change).name),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(map(sql.Literal, row.values())),
    )


def forget(conn: Connection, change: Change) -> None:
    """Remove the record of ``change``, which was reverted."""
    conn.execute(delete(table_of(change)).where(*_is(change)))


def set_checksum(conn: Connection, change: Change) -> None:
    """Record ``change``'s current text as the one applied (``stairway repair``)."""
    conn.execute(update(table_of(change)).where(*_is(change)).values(checksum=change.checksum))


def _is(change: Change) -> list[ColumnElement[bool]]:
    table = table_of(change)
    found = [table.c.number == change.number]
    return [*found, table.c.patch == change.patch] if change.patch else found


def get_meta(conn: Connection, key: str) -> str | None:
    """The value of ``key`` in ``stairway_meta``; None when unset or before the table exists."""
    if not exists(conn):
        return None
    value = conn.execute(select(meta_table.c.value).where(meta_table.c.key == key)).scalar()
    return None if value is None else str(value)


def meta_with_prefix(conn: Connection, prefix: str) -> list[tuple[str, str]]:
    """Every ``stairway_meta`` row whose key starts with ``prefix``, as (key, value)."""
    if not exists(conn):
        return []
    query = select(meta_table.c.key, meta_table.c.value).where(meta_table.c.key.startswith(prefix))
    return [(str(k), str(v)) for k, v in conn.execute(query)]


def delete_meta(conn: Connection, key: str) -> None:
    """Remove ``key`` from ``stairway_meta``, if it is there."""
    if exists(conn):
        conn.execute(delete(meta_table).where(meta_table.c.key == key))


def guard_rows(conn: Connection, flag: str, with_patches: bool) -> list[tuple[int, int, str]]:
    """In one round trip: each applied change as (number, patch, phase), and the value of meta
    ``flag`` as (-1, 0, value) when it is set. Raises the driver's error when a table is missing
    (``with_patches`` False reads a database that predates patch changes)."""
    return [
        (int(r[0]), int(r[1]), str(r[2])) for r in conn.execute(_guard_query(flag, with_patches))
    ]


@functools.cache
def _guard_query(flag: str, with_patches: bool) -> CompoundSelect[Any]:
    """Built once: guard() runs on every start, and building the statement anew cost it more
    than the round trip itself (SQLAlchemy's cache key is computed from the built object)."""
    flagged = select(literal(-1), literal(0), meta_table.c.value).where(meta_table.c.key == flag)
    parts = [select(changes_table.c.number, literal(0), changes_table.c.phase), flagged]
    if with_patches:
        parts.append(select(patches_table.c.number, patches_table.c.patch, patches_table.c.phase))
    return union_all(*parts)


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Set ``key`` to ``value`` in ``stairway_meta``."""
    found = conn.execute(update(meta_table).where(meta_table.c.key == key).values(value=value))
    if found.rowcount == 0:
        conn.execute(insert(meta_table).values(key=key, value=value))
