"""Every object of a database's schema, read through SQLAlchemy's inspector, and how two such
inventories differ: tables, columns (type, nullability, default), primary keys, foreign keys,
unique and check constraints, indexes, views and (PostgreSQL) sequences. Stairway's own
``stairway_*`` objects are left out.

Reading is the only I/O here; :func:`differences` is pure. An object is known by its kind, its
table and its name (or, unnamed, its columns), so a difference names the object.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine.reflection import Inspector

OWN_PREFIX = "stairway_"
_PG_SEQUENCES = text(
    "SELECT sequence_name, data_type, start_value, increment, minimum_value, maximum_value, "
    "cycle_option FROM information_schema.sequences WHERE sequence_schema = current_schema()"
)


@dataclass(frozen=True)
class Inventory:
    """A schema's objects: ``"index users_email on users"`` -> what defines it."""

    objects: Mapping[str, str]

    def __len__(self) -> int:
        return len(self.objects)


class DifferenceKind(StrEnum):
    """How an object differs between the expected schema and the actual one."""

    MISSING = "missing"  # expected, not there
    EXTRA = "extra"  # there, not expected
    CHANGED = "changed"  # both, defined otherwise


@dataclass(frozen=True)
class Difference:
    """One object that differs: its name, and its definition on each side."""

    kind: DifferenceKind
    name: str
    expected: str | None
    actual: str | None

    def describe(self, expected_as: str = "expected", actual_as: str = "actual") -> str:
        """One line naming the object and, for a changed one, both definitions."""
        if self.kind is DifferenceKind.MISSING:
            return f"{self.name}: only in the {expected_as}: {self.expected}"
        if self.kind is DifferenceKind.EXTRA:
            return f"{self.name}: only in the {actual_as}: {self.actual}"
        return f"{self.name}: {expected_as} {self.expected}, {actual_as} {self.actual}"


def differences(expected: Inventory, actual: Inventory) -> list[Difference]:
    """Every object missing from, extra in or defined otherwise in ``actual``, by name."""
    found: list[Difference] = []
    for name in sorted(set(expected.objects) | set(actual.objects)):
        want, have = expected.objects.get(name), actual.objects.get(name)
        if want == have:
            continue
        kind = (
            DifferenceKind.MISSING
            if have is None
            else DifferenceKind.EXTRA
            if want is None
            else DifferenceKind.CHANGED
        )
        found.append(Difference(kind, name, want, have))
    return found


def inventory_of(engine: Engine, leave_out: Collection[str] = ()) -> Inventory:
    """Every object of the database's schema, without Stairway's own nor the tables in
    ``leave_out``."""
    objects: dict[str, str] = {}
    inspector = inspect(engine)
    for table in inspector.get_table_names():
        if not table.startswith(OWN_PREFIX) and table not in leave_out:
            objects.update(_table(inspector, engine, table))
    for view in inspector.get_view_names():
        if not view.startswith(OWN_PREFIX):
            objects[f"view {view}"] = " ".join(str(inspector.get_view_definition(view)).split())
    if engine.dialect.name == "postgresql":
        objects.update(_sequences(engine))
    return Inventory(objects)


def _table(inspector: Inspector, engine: Engine, table: str) -> dict[str, str]:
    found = {f"table {table}": "table"}
    for column in inspector.get_columns(table):
        found[f"column {table}.{column['name']}"] = _column(engine, column)
    primary = inspector.get_pk_constraint(table)
    if primary.get("constrained_columns"):
        found[f"primary key of {table}"] = _named(primary, _cols(primary["constrained_columns"]))
    for key in inspector.get_foreign_keys(table):
        target = f"{key['referred_table']}{_cols(key['referred_columns'])}"
        options = _options(key.get("options", {}))
        found[_key("foreign key", table, key)] = f"{_cols(key['constrained_columns'])} -> " + (
            f"{target}{options}"
        )
    for unique in inspector.get_unique_constraints(table):
        found[_key("unique constraint", table, unique)] = _cols(unique["column_names"])
    for check in inspector.get_check_constraints(table):
        found[_key("check constraint", table, check, "sqltext")] = " ".join(
            str(check["sqltext"]).split()
        )
    for index in inspector.get_indexes(table):
        found[f"index {index['name']} on {table}"] = _index(index)
    return found


def _column(engine: Engine, column: Any) -> str:
    kind = column["type"].compile(dialect=engine.dialect)
    null = "NULL" if column["nullable"] else "NOT NULL"
    default = column.get("default")
    identity = " identity" if column.get("identity") else ""
    return f"{kind} {null}" + (f" DEFAULT {default}" if default is not None else "") + identity


def _key(kind: str, table: str, item: Any, by: str = "constrained_columns") -> str:
    """Named: by its name; unnamed (SQLite), by its columns or text."""
    name = item.get("name")
    if name:
        return f"{kind} {name} on {table}"
    columns = item.get(by) if by != "sqltext" else None
    what = _cols(columns) if columns else _cols(item.get("column_names") or [item.get(by)])
    return f"{kind} {what} on {table}"


def _named(item: Any, body: str) -> str:
    return f"{body} named {item['name']}" if item.get("name") else body


def _cols(columns: Iterable[Any]) -> str:
    return "(" + ", ".join(str(c) for c in columns) + ")"


def _options(options: Mapping[str, Any]) -> str:
    return "".join(f" {k} {v}" for k, v in sorted(options.items()) if v)


def _index(index: Any) -> str:
    columns = [c if c is not None else "<expr>" for c in index["column_names"]]
    expressions = index.get("expressions")
    body = _cols(expressions if expressions else columns)
    unique = "unique " if index.get("unique") else ""
    extra = _options({k: str(v) for k, v in (index.get("dialect_options") or {}).items()})
    return f"{unique}{body}{extra}"


def _sequences(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(_PG_SEQUENCES).all()
    return {
        f"sequence {name}": " ".join(str(v) for v in rest)
        for name, *rest in rows
        if not str(name).startswith(OWN_PREFIX)
    }
