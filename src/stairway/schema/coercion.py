"""Column types as PostgreSQL stores them, and which type changes it makes without a rewrite.

``ALTER COLUMN ... TYPE`` rewrites the table and rebuilds its indexes under ``ACCESS EXCLUSIVE``
unless the old type is binary-coercible to the new one and the change cannot alter any stored
value. PostgreSQL then changes the catalog only: "changing the type of an existing column will
normally cause the entire table and its indexes to be rewritten. As an exception, when changing
the type of an existing column, if the USING clause does not change the column contents and the
old type is either binary coercible to the new type or an unconstrained domain over the new
type, a table rewrite is not needed" (https://www.postgresql.org/docs/current/sql-altertable.html,
Notes). The length, precision or scale limit is a type modifier; raising it keeps every value
valid, so the support functions of ``varchar``, ``numeric``, ``varbit`` and the time types let
the length check go.

:func:`widens` accepts only such changes after which the running release reads exactly the
values it read before. Some binary-coercible changes are left out on purpose:

- ``char(n)`` to ``text`` or ``varchar``: the cast strips ``char``'s trailing blanks, so it
  rewrites, and readers see shorter strings.
- ``cidr`` to ``inet``: no rewrite, but a host address prints differently (``10.1.2.3/32``
  becomes ``10.1.2.3``) and drivers return another kind of object.
- ``timestamp`` to ``timestamptz``: no rewrite when the session's time zone is UTC, but every
  value now reads as another type with another meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

_DT = exp.DataType.Type
# sqlglot's type to PostgreSQL's own name for it (pg_type.typname, information_schema udt_name).
_TYPE_NAMES: dict[object, str] = {
    _DT.VARCHAR: "varchar",
    _DT.CHAR: "bpchar",
    _DT.BPCHAR: "bpchar",
    _DT.TEXT: "text",
    _DT.DECIMAL: "numeric",
    _DT.SMALLINT: "int2",
    _DT.INT: "int4",
    _DT.BIGINT: "int8",
    _DT.SMALLSERIAL: "int2",
    _DT.SERIAL: "int4",
    _DT.BIGSERIAL: "int8",
    _DT.FLOAT: "float4",
    _DT.DOUBLE: "float8",
    _DT.BOOLEAN: "bool",
    _DT.DATE: "date",
    _DT.TIME: "time",
    _DT.TIMETZ: "timetz",
    _DT.TIMESTAMP: "timestamp",
    _DT.TIMESTAMPTZ: "timestamptz",
    _DT.UUID: "uuid",
    _DT.JSON: "json",
    _DT.JSONB: "jsonb",
    _DT.VARBINARY: "bytea",
    _DT.INET: "inet",
    _DT.BIT: "bit",
    _DT.XML: "xml",
    _DT.MONEY: "money",
}
# Types sqlglot does not know read as user-defined; these are PostgreSQL's own.
_BUILT_IN_NAMES = frozenset({"varbit", "cidr", "macaddr", "macaddr8", "citext"})
# A bare ``char`` or ``bit`` means length 1, unlike a bare ``varchar``, which has no limit.
_LENGTH_ONE = frozenset({_DT.CHAR, _DT.BIT})
# Types whose modifier is an upper limit: a higher one (or none) accepts every value unchanged.
_LIMITED = frozenset({"varchar", "varbit", "timestamp", "timestamptz", "time", "timetz"})


@dataclass(frozen=True)
class ColumnType:
    """A column's type as PostgreSQL records it: its type name and its modifiers.

    ``name`` is PostgreSQL's name (``varchar``, ``int4``, ``numeric``; ``_varchar`` for an
    array). ``modifiers`` are the length, the precision and scale, or the fractional-second
    digits, empty when unconstrained. A type it does not know is kept as its SQL text.
    """

    name: str
    modifiers: tuple[int, ...] = ()

    def describe(self) -> str:
        """The type as SQL, PostgreSQL's name with its modifiers: ``varchar(20)``."""
        if not self.modifiers:
            return self.name
        return f"{self.name}({', '.join(str(m) for m in self.modifiers)})"


def column_type(dtype: exp.DataType) -> ColumnType:
    """``dtype`` (as sqlglot parsed it) under PostgreSQL's name, with its modifiers."""
    if dtype.this == _DT.ARRAY and dtype.expressions:
        element = dtype.expressions[0]
        if isinstance(element, exp.DataType):
            return ColumnType("_" + column_type(element).name, column_type(element).modifiers)
    name = _TYPE_NAMES.get(dtype.this) or _user_defined_name(dtype)
    modifiers = _modifiers(dtype)
    if modifiers is None:
        return ColumnType(dtype.sql("postgres").lower())
    if not modifiers and dtype.this in _LENGTH_ONE:
        modifiers = (1,)
    if name == "numeric" and len(modifiers) == 1:
        modifiers = (modifiers[0], 0)  # numeric(p) is numeric(p, 0)
    return ColumnType(name, modifiers)


def _user_defined_name(dtype: exp.DataType) -> str:
    kind = str(dtype.args.get("kind") or "").lower()
    return kind if kind in _BUILT_IN_NAMES else dtype.sql("postgres").lower()


def _modifiers(dtype: exp.DataType) -> tuple[int, ...] | None:
    """The integer modifiers of ``dtype``; None when it has others (``interval day``)."""
    values: list[int] = []
    for param in dtype.expressions:
        literal = param.this if isinstance(param, exp.DataTypeParam) else param
        if not isinstance(literal, exp.Literal) or literal.is_string:
            return None
        values.append(int(literal.this))
    return tuple(values)


def widens(old: ColumnType, new: ColumnType) -> bool:
    """Whether changing a column from ``old`` to ``new`` needs no rewrite and changes no value.

    True for the same type, a higher limit on ``varchar``, ``varbit`` or a time type's
    fractional digits (or dropping the limit), ``varchar`` to ``text`` and ``text`` to an
    unlimited ``varchar``, and a higher precision at the same scale of ``numeric`` (or
    dropping both). False for everything else, including every change that converts values.
    """
    if old == new:
        return True
    if {old.name, new.name} <= {"varchar", "text"}:
        return _text_widens(old, new)
    if old.name != new.name or not old.modifiers:
        return False
    if old.name in _LIMITED:
        return not new.modifiers or new.modifiers[0] >= old.modifiers[0]
    if old.name == "numeric":
        return _numeric_widens(old.modifiers, new.modifiers)
    return False


def _text_widens(old: ColumnType, new: ColumnType) -> bool:
    # varchar without a limit and text are the same values under two names.
    if new.name == "text" or not new.modifiers:
        return True
    return bool(old.modifiers) and new.modifiers[0] >= old.modifiers[0]


def _numeric_widens(old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    if not new:
        return True
    # Another scale rounds or pads every value: only the precision may grow.
    return new[1] == old[1] and new[0] >= old[0]
