"""Migrating documents while they are parsed (midPoint's schema progress, DESIGN MP-1, MP-9).

Pure: documents in, documents out, no database. A caller that gets ``stale`` back knows the stored
form is older than the code and may write the migrated form back.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from stairway.errors import ObjectMigrationError
from stairway.objects import paths
from stairway.objects.migration import Document, ObjectMigration, Op, Transition
from stairway.versions import Version


@dataclass(frozen=True)
class Attention:
    """A migration that hit a document but was not (or not entirely) applied, and why."""

    migration: ObjectMigration
    reason: str
    blocked: bool = False  # a conflict: later migrations of the object wait until it is fixed

    def describe(self) -> str:
        return f"{self.migration.describe()}: {self.reason}"


@dataclass(frozen=True)
class Outcome:
    document: Document
    applied: tuple[ObjectMigration, ...] = ()
    attention: tuple[Attention, ...] = ()

    @property
    def stale(self) -> bool:
        """True when the stored form differs from the migrated one and should be written back."""
        return bool(self.applied)


class Migrator:
    """The catalog's object migrations, indexed for the many-documents-per-second parse path."""

    def __init__(
        self, migrations: Iterable[ObjectMigration], subtype_path: tuple[str, ...] | None = None
    ) -> None:
        self._by_type: dict[str, list[ObjectMigration]] = {}
        for migration in sorted(migrations, key=lambda m: (m.since, m.number)):
            self._by_type.setdefault(migration.type, []).append(migration)
        self._subtype_path = subtype_path
        self._due: dict[tuple[str, object, str | None], tuple[ObjectMigration, ...]] = {}

    def types(self) -> list[str]:
        return sorted(self._by_type)

    def parse(self, type_: str, raw: bytes | str, written_by: Version | None) -> Outcome:
        """Parse a stored JSON body and migrate it; the parsed document is ours to change."""
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise ObjectMigrationError(
                f"a stored {type_} is not valid JSON: {err}",
                hint="restore the object from a backup or fix it by hand",
            ) from None
        if not isinstance(document, dict):
            raise ObjectMigrationError(
                f"a stored {type_} is not a JSON object", hint="fix the object by hand"
            )
        return self.migrate(type_, document, written_by)

    def migrate(self, type_: str, document: Document, written_by: Version | None) -> Outcome:
        """Migrate ``document`` in place; returns it with what was applied and what needs a hand."""
        due = self.due(type_, self._subtype_of(document), written_by)
        if not due:
            return Outcome(document)
        applied: list[ObjectMigration] = []
        attention: list[Attention] = []
        for migration in due:
            document = _run(migration, document, applied, attention)
            if attention and attention[-1].blocked:
                break  # the object is inconsistent: running later migrations could lose data
        return Outcome(document, tuple(applied), tuple(attention))

    def due(
        self, type_: str, subtype: object, written_by: Version | None
    ) -> tuple[ObjectMigration, ...]:
        key = (type_, subtype if isinstance(subtype, str) else None, _text(written_by))
        found = self._due.get(key)
        if found is None:
            candidates = self._by_type.get(type_, ())
            found = tuple(m for m in candidates if m.concerns(type_, key[1], written_by))
            self._due[key] = found
        return found

    def _subtype_of(self, document: Document) -> object:
        if self._subtype_path is None:
            return None
        holder = paths.parent(document, self._subtype_path)
        return None if holder is None else holder.get(self._subtype_path[-1])


def migrate_document(
    type_: str,
    document: Document,
    written_by: Version | str | None,
    migrations: Iterable[ObjectMigration],
    subtype_path: tuple[str, ...] | None = None,
) -> Outcome:
    """The migrated copy of ``document`` (the argument is left as it was)."""
    version = Version(written_by) if isinstance(written_by, str) else written_by
    return Migrator(migrations, subtype_path).migrate(type_, copy.deepcopy(document), version)


def _text(version: Version | None) -> str | None:
    return None if version is None else str(version)


def _run(
    migration: ObjectMigration,
    document: Document,
    applied: list[ObjectMigration],
    attention: list[Attention],
) -> Document:
    if not paths.contains(document, migration.path):
        return document  # absent: nothing to do, and nothing to report
    if not migration.transition.applied:
        attention.append(Attention(migration, f"needs a hand ({migration.transition})"))
        return document
    if migration.op == Op.TRANSFORM:
        return _transform(migration, document, applied)
    target = migration.target
    if target and paths.contains(document, target):
        reason = f"{'.'.join(target)} is already set; kept both"
        attention.append(Attention(migration, reason, blocked=True))
        return document
    value = paths.take(document, migration.path)
    if target and not paths.put(document, target, value):
        paths.put(document, migration.path, value)  # the way to the target is blocked: undo
        reason = f"{'.'.join(target)} is not inside an object"
        attention.append(Attention(migration, reason, blocked=True))
        return document
    applied.append(migration)
    if migration.transition == Transition.SEMI_AUTOMATIC:
        attention.append(Attention(migration, "applied; an administrator should review it"))
    return document


def _transform(
    migration: ObjectMigration, document: Document, applied: list[ObjectMigration]
) -> Document:
    assert migration.handler is not None  # the loader resolves every handler
    before = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    try:
        result = migration.handler(document)
    except Exception as err:
        raise ObjectMigrationError(
            f"{migration.label} ({migration.handler_name}) raised {type(err).__name__}: {err}",
            hint="fix the handler in the catalog; no object was written",
        ) from err
    document = document if result is None else result
    if orjson.dumps(document, option=orjson.OPT_SORT_KEYS) != before:
        applied.append(migration)
    return document
