"""What differs between a database and an earlier copy of it, table by table, row by row.

Tables with a primary key are read on both sides in key order, streamed in batches, and merged:
a key only now is a row added, a key only then a row removed, a key on both sides whose row
differs a row changed (PostgreSQL sends an md5 of each row, not the row). Only the columns both
sides have are compared: a column a schema change added does not make every row "changed";
but a column added since that holds values is named with how many rows hold one, since those
values go with it.
A table without a primary key, or whose keys do not compare, is counted on both sides instead.
A table on one side only was created or dropped since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, inspect, text
from sqlalchemy.sql import sqltypes

BATCH = 2_000
Keyed = Iterator[tuple[tuple[Any, ...], Any]]


class TableChangeKind(StrEnum):
    """How a table was compared, which says which of a ``TableChange``'s counts mean something."""

    ROWS = "rows"  # row by row, by primary key
    COUNTED = "counted"  # only counted on both sides
    CREATED = "created"  # only now
    DROPPED = "dropped"  # only then


@dataclass(frozen=True)
class TableChange:
    """One table's difference since the copy; ``kind`` says which counts mean something."""

    table: str
    kind: TableChangeKind
    added: int = 0
    removed: int = 0
    changed: int = 0
    rows_then: int = 0
    rows_now: int = 0
    note: str = ""  # why a table was only counted
    new_columns: tuple[tuple[str, int], ...] = ()  # added since: (column, rows holding a value)

    @property
    def differs(self) -> bool:
        """Whether the table differs at all from the copy."""
        if self.kind in (TableChangeKind.CREATED, TableChangeKind.DROPPED):
            return True
        return bool(
            self.added
            or self.removed
            or self.changed
            or self.rows_then != self.rows_now
            or self.new_columns
        )

    def describe(self) -> str:
        """The table's difference as a loss report line: what goes or comes back."""
        if self.kind is TableChangeKind.CREATED:
            return f"table {self.table}: created since ({_rows(self.rows_now)}); it goes"
        if self.kind is TableChangeKind.DROPPED:
            return f"table {self.table}: dropped since ({_rows(self.rows_then)}); it comes back"
        if self.kind is TableChangeKind.COUNTED:
            return (
                f"table {self.table} ({self.note}): {_rows(self.rows_then)} then, "
                f"{self.rows_now} now"
            )
        counts = [(self.added, "added"), (self.removed, "removed"), (self.changed, "changed")]
        parts = [f"{n} {what}" for n, what in counts if n]
        said = [f"rows {', '.join(parts)}"] if parts else []
        said += [
            f"column {name} added since, {_rows(held)} holding a value (they go)"
            for name, held in self.new_columns
        ]
        return f"table {self.table}: {'; '.join(said)}"


def compare(
    now: Connection, then: Connection, count_only: Callable[[str], bool]
) -> list[TableChange]:
    """Every table of ``now`` and ``then`` (``then``: the earlier copy) that differs;
    ``count_only`` names tables whose rows need no merge (they are counted)."""
    tables_now = set(inspect(now).get_table_names())
    tables_then = set(inspect(then).get_table_names())
    found = [
        TableChange(t, TableChangeKind.CREATED, rows_now=_count(now, t))
        for t in tables_now - tables_then
    ]
    found += [
        TableChange(t, TableChangeKind.DROPPED, rows_then=_count(then, t))
        for t in tables_then - tables_now
    ]
    for table in tables_now & tables_then:
        if count_only(table):
            found.append(_counted(now, then, table, "counted"))
        else:
            found.append(_table(now, then, table))
    return sorted((c for c in found if c.differs), key=lambda c: c.table)


def _table(now: Connection, then: Connection, table: str) -> TableChange:
    key = inspect(now).get_pk_constraint(table)["constrained_columns"]
    if not key or inspect(then).get_pk_constraint(table)["constrained_columns"] != key:
        return _counted(now, then, table, "no primary key to compare rows by")
    columns_then = {c["name"] for c in inspect(then).get_columns(table)}
    columns_now = inspect(now).get_columns(table)
    columns = [c for c in columns_now if c["name"] in columns_then]
    new = tuple(
        (c["name"], held)
        for c in columns_now
        if c["name"] not in columns_then and (held := _held(now, table, c["name"]))
    )
    textual = {c["name"] for c in columns if isinstance(c["type"], sqltypes.String)}
    values = [c["name"] for c in columns if c["name"] not in key]
    try:
        added, removed, changed = _merge(
            _ordered(_keyed(now, table, key, values, textual)),
            _ordered(_keyed(then, table, key, values, textual)),
        )
    except (_Unordered, TypeError):  # keys Python does not order as the database did
        return _counted(now, then, table, "its keys do not compare row by row")
    return TableChange(table, TableChangeKind.ROWS, added, removed, changed, new_columns=new)


def _held(conn: Connection, table: str, column: str) -> int:
    """Rows whose ``column`` holds a value (not NULL)."""
    quote = conn.dialect.identifier_preparer.quote
    query = f"SELECT count(*) FROM {quote(table)} WHERE {quote(column)} IS NOT NULL"
    return int(conn.execute(text(query)).scalar_one())


def _counted(now: Connection, then: Connection, table: str, note: str) -> TableChange:
    return TableChange(
        table,
        TableChangeKind.COUNTED,
        rows_then=_count(then, table),
        rows_now=_count(now, table),
        note=note,
    )


def _count(conn: Connection, table: str) -> int:
    quoted = conn.dialect.identifier_preparer.quote(table)
    return int(conn.execute(text(f"SELECT count(*) FROM {quoted}")).scalar_one())


def _keyed(
    conn: Connection, table: str, key: list[str], values: list[str], textual: set[str]
) -> Keyed:
    """(key, row digest) in key order, fetched ``BATCH`` rows at a time."""
    quote = conn.dialect.identifier_preparer.quote
    postgres = conn.dialect.name == "postgresql"
    collation = ' COLLATE "C"' if postgres else " COLLATE BINARY"  # byte order: Python's
    order = ", ".join(quote(k) + (collation if k in textual else "") for k in key)
    if postgres:
        row = f"md5(ROW({', '.join(quote(v) for v in values)})::text)" if values else "''"
    else:
        row = ", ".join(quote(v) for v in values) or "''"
    query = f"SELECT {', '.join(quote(k) for k in key)}, {row} FROM {quote(table)} ORDER BY {order}"
    result = conn.execution_options(yield_per=BATCH).execute(text(query))
    width = len(key)
    for found in result:
        yield tuple(found[:width]), tuple(found[width:])


class _Unordered(Exception):
    """The database's key order is not Python's: a merge would miscount."""


def _ordered(rows: Keyed) -> Keyed:
    last: tuple[Any, ...] | None = None
    for key, value in rows:
        if last is not None and not last < key:
            raise _Unordered(key)
        last = key
        yield key, value


def _merge(now: Keyed, then: Keyed) -> tuple[int, int, int]:
    """Rows added, removed and changed, merging two key-ordered streams."""
    added = removed = changed = 0
    a, b = next(now, None), next(then, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            added, a = added + 1, next(now, None)
        elif a is None or b[0] < a[0]:
            removed, b = removed + 1, next(then, None)
        else:
            changed += a[1] != b[1]
            a, b = next(now, None), next(then, None)
    return added, removed, changed


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"
