"""The one owner of Stairway's bookkeeping tables: ``stairway_changes`` and ``stairway_meta``.

``stairway_meta`` holds the format of these tables, so that a later Stairway can migrate them and an
older one refuses a database it does not understand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

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
    inspect,
    select,
    update,
)

from stairway.errors import SchemaError
from stairway.schema.change import Change, Phase
from stairway.schema.sqltext import CHECKSUM_ALGORITHM

FORMAT = 1
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
    Column("kind", String(20), nullable=False),  # applied | baseline
)

meta_table = Table(
    "stairway_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


@dataclass(frozen=True)
class AppliedChange:
    number: int
    name: str
    checksum: str
    checksum_algorithm: str
    phase: Phase
    release: str
    applied_at: datetime
    duration_ms: int
    kind: str

    @property
    def label(self) -> str:
        return f"{self.number:04d}_{self.name}"


def exists(conn: Connection) -> bool:
    return inspect(conn).has_table("stairway_meta")


def ensure_tables(conn: Connection) -> None:
    """Create the bookkeeping tables on first use; refuse a format from a newer Stairway."""
    if not exists(conn):
        metadata.create_all(conn)
        conn.execute(insert(meta_table).values(key="format", value=str(FORMAT)))
        return
    found = int(get_meta(conn, "format") or FORMAT)
    if found > FORMAT:
        raise SchemaError(
            f"this database was set up by a newer Stairway (bookkeeping format {found}, "
            f"this one knows {FORMAT})",
            hint="upgrade Stairway itself before migrating",
        )


def applied(conn: Connection) -> list[AppliedChange]:
    if not exists(conn):
        return []
    rows = conn.execute(select(changes_table).order_by(changes_table.c.number))
    return [_applied(row._mapping) for row in rows]


def _applied(row: object) -> AppliedChange:
    values = dict(row)  # type: ignore[call-overload]
    values["phase"] = Phase(values["phase"])
    return AppliedChange(**values)


def record(conn: Connection, change: Change, release: str, duration_ms: int, kind: str) -> None:
    conn.execute(insert(changes_table).values(**record_row(change, release, duration_ms, kind)))


def record_row(change: Change, release: str, duration_ms: int, kind: str) -> dict[str, object]:
    """The ``stairway_changes`` row that says ``change`` is present."""
    return {
        "number": change.number,
        "name": change.name,
        "checksum": change.checksum,
        "checksum_algorithm": CHECKSUM_ALGORITHM,
        "phase": change.phase.value,
        "release": release,
        "applied_at": datetime.now(UTC),
        "duration_ms": duration_ms,
        "kind": kind,
    }


def forget(conn: Connection, number: int) -> None:
    conn.execute(delete(changes_table).where(changes_table.c.number == number))


def get_meta(conn: Connection, key: str) -> str | None:
    if not exists(conn):
        return None
    value = conn.execute(select(meta_table.c.value).where(meta_table.c.key == key)).scalar()
    return None if value is None else str(value)


def set_meta(conn: Connection, key: str, value: str) -> None:
    found = conn.execute(update(meta_table).where(meta_table.c.key == key).values(value=value))
    if found.rowcount == 0:
        conn.execute(insert(meta_table).values(key=key, value=value))
