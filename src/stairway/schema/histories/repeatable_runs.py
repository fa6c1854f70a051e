"""Running Flyway's repeatable migrations as ``flyway migrate`` does, and keeping their record.

After the versioned migrations of a run, every repeatable whose checksum differs from the latest
successful row ``flyway_schema_history`` holds for its description (or that has none) is applied,
in the order of their descriptions, each in one transaction with the row Flyway writes (version
NULL, type SQL). Stairway's own record of each is a ``stairway_meta`` row
``repeatable:<description>`` = ``<checksum> <level>``: the checksum applied and the numbered change
the schema stood at then, so going down below that level restores a backup (a repeatable has no
down).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from stairway.errors import SchemaError
from stairway.schema import recorder
from stairway.schema.histories.repeatables import Repeatable
from stairway.schema.histories.sql_ledgers import flyway_row, flyway_table

PREFIX = "repeatable:"


@dataclass(frozen=True)
class RepeatableRecord:
    """Stairway's record of a repeatable: the checksum applied, at which numbered change."""

    description: str
    checksum: int
    level: int


def latest_checksums(conn: Connection, table: str) -> dict[str, int]:
    """Each repeatable's checksum as Flyway's table last records it applied, by description."""
    if not conn.dialect.has_table(conn, table):
        return {}
    t = flyway_table(table)
    query = (
        select(t.c.description, t.c.checksum)
        .where(t.c.version.is_(None), t.c.type == "SQL", t.c.success.is_(True))
        .order_by(t.c.installed_rank)
    )
    return {str(d): int(c) for d, c in conn.execute(query) if c is not None}


def due(repeatables: Iterable[Repeatable], applied: dict[str, int]) -> list[Repeatable]:
    """The repeatables to (re)apply: never applied, or changed since (pure)."""
    return [r for r in repeatables if applied.get(r.description) != r.checksum]


@dataclass(frozen=True)
class DueRepeatable:
    """A repeatable the next migration applies, and why: never applied, or changed since."""

    repeatable: Repeatable
    changed: bool  # applied before with another checksum; False: never applied

    @property
    def reason(self) -> str:
        """``new`` or ``changed``, as ``--json`` says it."""
        return "changed" if self.changed else "new"

    def describe(self) -> str:
        """The repeatable, its phase and why it runs, as lists show it."""
        why = "re-apply, checksum changed" if self.changed else "new"
        return f"{self.repeatable.describe()}: {why}"


def why_due(repeatables: Iterable[Repeatable], applied: dict[str, int]) -> list[DueRepeatable]:
    """The repeatables :func:`due` finds, each with why (pure)."""
    return [DueRepeatable(r, r.description in applied) for r in due(repeatables, applied)]


def pending(engine: Engine, repeatables: Sequence[Repeatable]) -> list[DueRepeatable]:
    """The repeatables the next migration applies, read from Flyway's table as the run reads
    it; nothing is written."""
    if not repeatables:
        return []
    with engine.connect() as conn:
        return why_due(repeatables, latest_checksums(conn, repeatables[0].table))


def run_due(engine: Engine, repeatables: Sequence[Repeatable], level: int) -> list[Repeatable]:
    """Apply the due repeatables in order, each in its own transaction with Flyway's row and
    Stairway's record; the ones applied.

    Raises:
        SchemaError: a statement failed; that repeatable was rolled back, those before it stay.
    """
    if not repeatables:
        return []
    with engine.connect() as conn:
        todo = due(repeatables, latest_checksums(conn, repeatables[0].table))
    for repeatable in todo:
        with engine.begin() as conn:
            started = time.monotonic()
            _run(conn, repeatable)
            duration_ms = int((time.monotonic() - started) * 1000)
            r = repeatable
            flyway_row(conn, r.table, None, r.description, r.script, r.checksum, duration_ms)
            remember(conn, RepeatableRecord(repeatable.description, repeatable.checksum, level))
    return todo


def _run(conn: Connection, repeatable: Repeatable) -> None:
    cursor = conn.connection.cursor()
    try:
        for statement in repeatable.statements:
            try:
                cursor.execute(statement.text)
            except Exception as err:
                raise SchemaError(
                    f"repeatable {repeatable.script} failed at line {statement.line} "
                    f"({statement.describe()}): {err}",
                    hint="it was rolled back; fix it in a new release of the catalog",
                ) from err
    finally:
        cursor.close()


def remember(conn: Connection, record: RepeatableRecord) -> None:
    """Write Stairway's record of a repeatable."""
    value = f"{record.checksum} {record.level}"
    recorder.set_meta(conn, PREFIX + record.description, value)


def adopt(conn: Connection, table: str, level: int) -> None:
    """Record the repeatables Flyway's table says are applied, as found at ``level`` (a
    database Flyway migrated, taken over)."""
    for description, checksum in latest_checksums(conn, table).items():
        remember(conn, RepeatableRecord(description, checksum, level))


def records(conn: Connection) -> list[RepeatableRecord]:
    """Stairway's records of repeatables, by description."""
    rows = recorder.meta_with_prefix(conn, PREFIX)
    found = []
    for key, value in rows:
        checksum, level = value.split()
        found.append(RepeatableRecord(key.removeprefix(PREFIX), int(checksum), int(level)))
    return sorted(found, key=lambda r: r.description)


def refuse_going_below(conn: Connection, to: int) -> None:
    """Refuse going down to ``to`` when a repeatable was applied above it: it has no down.

    Raises:
        SchemaError: naming the repeatables, with the backup to restore.
    """
    above = [r.description for r in records(conn) if r.level > to]
    if above:
        raise SchemaError(
            f"no down direction for the repeatable migration(s) {', '.join(above)}, applied "
            f"after change {to}",
            hint="restore a backup taken before the upgrade instead",
        )
