"""The shape of a PostgreSQL schema as earlier changes left it, replayed from their statements.

A phase check that sees one change alone cannot know what a column was before it: ``ALTER
COLUMN email TYPE text`` is harmless on a ``varchar(200)`` and a rewrite on an ``integer``. The
shape follows the catalog's earlier changes (``CREATE TABLE``, ``ALTER TABLE``, ``CREATE
INDEX`` ...) so the check can tell a widening or a no-op from a real change.

PostgreSQL changes a column's type without a rewrite when the old type is binary-coercible to
the new one (https://www.postgresql.org/docs/current/sql-altertable.html, Notes); which changes
qualify, and which of those also leave every value as readers knew it, is :mod:`coercion`'s.

The shape only ever knows less, never wrongly more. A table is known from the ``CREATE TABLE``
that made it; a statement the replay cannot follow (a parse failure, ``INHERITS``, a constraint
name it did not see given, ``CREATE TABLE IF NOT EXISTS`` of a table it does not know) forgets
the table, and a ``DO`` block, ``CALL``, a ``search_path`` change or a cascading drop of
another kind of object forgets every table. A forgotten table answers None to every question,
so the check keeps its conservative verdict. Nothing here touches a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from stairway.schema import replay
from stairway.schema.coercion import ColumnType, column_type, widens
from stairway.schema.relations import ColumnShape, Key, KeyKind, TableShape, covering
from stairway.schema.sqltext import Statement, split_statements

__all__ = [
    "ColumnShape",
    "ColumnType",
    "Key",
    "KeyKind",
    "Shape",
    "TableShape",
    "set_not_null_is_noop",
    "type_change_is_safe",
    "widens",
]


@dataclass(frozen=True)
class Shape:
    """Every table the replay knows, by normalised name (``users``, ``audit.events``)."""

    tables: Mapping[str, TableShape]

    @classmethod
    def empty(cls) -> Shape:
        """The shape before any change: no table known."""
        return cls(MappingProxyType({}))

    def after(self, statements: Iterable[Statement | str] | str) -> Shape:
        """A new shape: this one with ``statements`` (or the statements of a script) applied."""
        if isinstance(statements, str):
            statements = split_statements(statements)
        tables = dict(self.tables)
        for statement in statements:
            replay.apply(tables, statement.text if isinstance(statement, Statement) else statement)
        return Shape(MappingProxyType(tables))

    def table(self, table: str | exp.Expression) -> TableShape | None:
        """The table named by ``table`` (SQL text such as ``"Users"``, or a sqlglot node)."""
        return self.tables.get(replay.table_key(_as_table(table)))

    def column(
        self, table: str | exp.Expression, column: str | exp.Expression
    ) -> ColumnShape | None:
        """The column, or None when the table or the column is not known."""
        known = self.table(table)
        return known.column(_column_name(column)) if known else None

    def unique_index_covering(
        self, table: str | exp.Expression, columns: Iterable[str | exp.Expression]
    ) -> Key | None:
        """A unique index or constraint that makes ``columns`` unique together, if known.

        Only a key on plain columns without a WHERE counts; its columns must all be among
        ``columns`` (a unique ``email`` makes ``(email, name)`` unique too).
        """
        known = self.table(table)
        wanted = frozenset(_column_name(column) for column in columns)
        return covering(known.keys, wanted) if known else None

    def describe(self) -> str:
        """Every known table, as :meth:`TableShape.describe` lists it."""
        return "\n".join(self.tables[name].describe() for name in sorted(self.tables))


def _as_table(table: str | exp.Expression) -> exp.Expression:
    return exp.to_table(table, dialect="postgres") if isinstance(table, str) else table


def _column_name(column: str | exp.Expression) -> str:
    node = exp.to_identifier(column) if isinstance(column, str) else column
    if isinstance(column, str) and column.startswith('"') and column.endswith('"'):
        node = exp.to_identifier(column[1:-1].replace('""', '"'), quoted=True)
    if isinstance(node, exp.Column):
        node = node.this
    return str(normalize_identifiers(node.copy(), dialect="postgres").name)


def already_not_null(shape: Shape, table: str | exp.Expression, column: str) -> bool:
    """Whether the column is known to be NOT NULL already (declared, or in the primary key)."""
    known = shape.column(table, column)
    return known is not None and known.not_null


def set_not_null_is_noop(shape: Shape, table: str | exp.Expression, column: str) -> bool:
    """Whether ``ALTER COLUMN column SET NOT NULL`` changes nothing: it is NOT NULL already."""
    return already_not_null(shape, table, column)


def type_change_is_safe(
    shape: Shape,
    table: str | exp.Expression,
    column: str | exp.Expression,
    new_type: exp.DataType,
    *,
    using: exp.Expression | None = None,
    collate: exp.Expression | None = None,
) -> bool:
    """Whether ``ALTER COLUMN column TYPE new_type`` is safe while the old release serves.

    Safe means PostgreSQL changes only its catalog and every value reads as before: the column
    is known, the change :func:`widens` its type, no ``USING`` expression computes new values,
    and the collation stays (a new one reorders comparisons and rebuilds indexes).
    """
    known = shape.column(table, column)
    if known is None or using is not None:
        return False
    if replay.collation_name(collate) != known.collation:
        return False
    return widens(known.type, column_type(new_type))
