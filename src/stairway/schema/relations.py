"""Tables as the schema's shape records them: columns, and the keys and indexes over them.

Values only: :mod:`replay` builds them from statements, :mod:`shape` answers questions with them.
Names are PostgreSQL's: unquoted identifiers folded to lower case, quoted ones as written.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace

from stairway.schema.coercion import ColumnType

# PostgreSQL truncates longer identifiers; a default name that long is not predicted.
MAX_NAME_LENGTH = 63


class KeyKind(enum.Enum):
    """What a named key of a table is; constraints and indexes share one namespace per table."""

    PRIMARY_KEY = "primary key"
    UNIQUE = "unique constraint"
    UNIQUE_INDEX = "unique index"
    INDEX = "index"
    FOREIGN_KEY = "foreign key"
    CHECK = "check"
    EXCLUDE = "exclusion constraint"

    @property
    def unique(self) -> bool:
        """Whether the key refuses two rows with the same values."""
        return self in (KeyKind.PRIMARY_KEY, KeyKind.UNIQUE, KeyKind.UNIQUE_INDEX)

    @property
    def has_index(self) -> bool:
        """Whether PostgreSQL keeps an index of the same name for it (a relation)."""
        return self not in (KeyKind.FOREIGN_KEY, KeyKind.CHECK)


@dataclass(frozen=True)
class Key:
    """A constraint or index: its kind, its name (None if not predicted), its columns.

    ``plain`` is False when the key also covers expressions or has a WHERE: its ``columns``
    are then only those it mentions, and it makes nothing unique.
    """

    kind: KeyKind
    name: str | None
    columns: tuple[str, ...]
    plain: bool = True

    def describe(self) -> str:
        """The key as ``unique index users_email_key (email)``."""
        partial = "" if self.plain else " (with expressions or WHERE)"
        return f"{self.kind.value} {self.name or '(unnamed)'} ({', '.join(self.columns)}){partial}"


@dataclass(frozen=True)
class ColumnShape:
    """One column: its type, whether it is NOT NULL, whether it is in the primary key.

    ``declared_not_null`` is an explicit NOT NULL (or one SERIAL or IDENTITY implies); the
    primary key makes a column NOT NULL too. ``collation`` is an explicit COLLATE, None for
    the type's default.
    """

    name: str
    type: ColumnType
    declared_not_null: bool = False
    primary_key: bool = False
    collation: str | None = None

    @property
    def not_null(self) -> bool:
        """Whether PostgreSQL refuses NULL in this column."""
        return self.declared_not_null or self.primary_key

    def describe(self) -> str:
        """The column as a line of a table definition: ``email varchar(200) NOT NULL``."""
        null = " NOT NULL" if self.not_null else ""
        return f"{self.name} {self.type.describe()}{null}"


@dataclass(frozen=True)
class TableShape:
    """A table followed from its creation: its columns in order, its keys.

    ``name`` and ``schema`` are PostgreSQL's names; ``schema`` is "" for the default one.
    """

    name: str
    schema: str = ""
    columns: tuple[ColumnShape, ...] = ()
    keys: tuple[Key, ...] = ()

    def column(self, name: str) -> ColumnShape | None:
        """The column called ``name``, if any."""
        return next((column for column in self.columns if column.name == name), None)

    def key(self, name: str) -> Key | None:
        """The constraint or index called ``name``, if any."""
        return next((key for key in self.keys if key.name == name), None)

    def describe(self) -> str:
        """The table as a short multi-line listing of its columns and keys."""
        lines = [f"{self.name}:"] + [f"  {c.describe()}" for c in self.columns]
        return "\n".join(lines + [f"  {key.describe()}" for key in self.keys])


def with_column(table: TableShape, column: ColumnShape) -> TableShape:
    """``table`` with ``column`` in place of the column of that name, or added at the end."""
    if table.column(column.name) is None:
        return replace(table, columns=(*table.columns, column))
    columns = tuple(column if c.name == column.name else c for c in table.columns)
    return replace(table, columns=columns)


def with_key(table: TableShape, key: Key) -> TableShape:
    """``table`` with ``key`` added; a primary key also marks its columns."""
    table = replace(table, keys=(*table.keys, key))
    if key.kind is not KeyKind.PRIMARY_KEY:
        return table
    columns = tuple(
        replace(c, primary_key=True) if c.name in key.columns else c for c in table.columns
    )
    return replace(table, columns=columns)


def without_key(table: TableShape, key: Key) -> TableShape:
    """``table`` without ``key``; dropping the primary key unmarks its columns.

    Its columns then count as nullable unless declared NOT NULL. PostgreSQL may keep them NOT
    NULL (before version 18 it always does): knowing less is the safe side.
    """
    table = replace(table, keys=tuple(k for k in table.keys if k != key))
    if key.kind is not KeyKind.PRIMARY_KEY:
        return table
    return replace(table, columns=tuple(replace(c, primary_key=False) for c in table.columns))


def default_name(table: TableShape, columns: Iterable[str], suffix: str) -> str | None:
    """The name PostgreSQL gives an unnamed key, as ``users_email_key``; None if unsure.

    PostgreSQL truncates long names and numbers clashing ones; rather than imitate that, such
    a key stays unnamed, and a later statement naming it makes the table unknown.
    """
    name = "_".join([table.name, *columns, suffix])
    if len(name.encode()) > MAX_NAME_LENGTH or table.key(name) is not None:
        return None
    return name


def covering(keys: Iterable[Key], columns: frozenset[str]) -> Key | None:
    """A unique plain key whose columns are all among ``columns``, if any."""
    return next((k for k in keys if k.kind.unique and k.plain and set(k.columns) <= columns), None)
