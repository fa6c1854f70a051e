"""Migrating documents while they are parsed: a stored object is read in the shape the running
release expects, whatever release wrote it, without a rewrite of the whole table first.

Pure: documents in, documents out, no database. A caller that gets ``stale`` back knows the stored
form is older than the code and may write the migrated form back.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from stairway.errors import ObjectMigrationError
from stairway.objects import fastpath, paths
from stairway.objects.fastpath import Parser
from stairway.objects.migration import Document, ObjectMigration, Op, Transition
from stairway.objects.steps import Result, Step, compile_step
from stairway.version_grammars import GrammarName
from stairway.versions import Version

REVIEW = "applied; an administrator should review it"


@dataclass(frozen=True)
class Attention:
    """A migration that hit a document but was not (or not entirely) applied, and why.

    Attributes:
        migration: The object migration concerned.
        reason: Why it needs an administrator, in a few words.
        blocked: A conflict (its target already set, or not inside an object): later
            migrations of the object wait until an administrator fixes it.
    """

    migration: ObjectMigration
    reason: str
    blocked: bool = False  # a conflict: later migrations of the object wait until it is fixed

    def describe(self) -> str:
        """The migration and the reason, in one line."""
        return f"{self.migration.describe()}: {self.reason}"


class Outcome(NamedTuple):
    """The migrated document, what was applied, and what needs a hand.

    A named tuple rather than a dataclass: one is built for every document parsed.

    Attributes:
        document: The document in the running release's shape.
        applied: The migrations that changed it, in order.
        attention: The migrations an administrator should review or apply by hand.
    """

    document: Document
    applied: tuple[ObjectMigration, ...] = ()
    attention: tuple[Attention, ...] = ()

    @property
    def stale(self) -> bool:
        """True when the stored form differs from the migrated one and should be written back."""
        return bool(self.applied)


Due = tuple[tuple[ObjectMigration, Step], ...]


class Migrator:
    """The catalog's object migrations, compiled and indexed for the parse path.

    Args:
        migrations: The catalog's object migrations, in any order; they run ordered by their
            ``since`` release, then by their number.
        subtype_path: The path in a document to the value a migration's ``subtype`` is
            compared with; None when the catalog declares none.
        generate: Compile a specialised parser per type and writer where the migrations
            allow it; False always takes the general path.
        grammar: The catalog's version grammar, in which stamps given as text are read; by
            default that of the migrations' ``since`` (PEP 440 when there are none).
    """

    def __init__(
        self,
        migrations: Iterable[ObjectMigration],
        subtype_path: tuple[str, ...] | None = None,
        generate: bool = True,
        grammar: GrammarName | None = None,
    ) -> None:
        ordered = sorted(migrations, key=lambda m: (m.since, m.number))
        self.grammar: GrammarName = grammar or (ordered[0].since.grammar if ordered else "pep440")
        self._by_type: dict[str, list[tuple[ObjectMigration, Step]]] = {}
        for migration in ordered:
            compiled = (migration, compile_step(migration))
            self._by_type.setdefault(migration.type, []).append(compiled)
        self._subtype_path = subtype_path
        self._due: dict[tuple[str, object, object], Due] = {}
        self._generate = generate  # False: always the general path (tests compare the two)
        self._parsers: dict[str, dict[object, Parser]] = {}

    def types(self) -> list[str]:
        """The object types any migration concerns, sorted."""
        return sorted(self._by_type)

    def parse(self, type_: str, raw: bytes | str, written_by: Version | str | None) -> Outcome:
        """Parse a stored JSON body and migrate it; the parsed document is ours to change.

        ``written_by`` may be the stamp as stored (text): versions are parsed once per stamp.

        Args:
            type_: The object type, as the catalog names it.
            raw: The stored JSON body.
            written_by: The release that wrote the object; None when unknown, in which case
                every migration of the type is considered.

        Returns:
            The migrated document, the migrations applied and those needing a hand.

        Raises:
            ObjectMigrationError: The body is not a JSON object, or a transform handler raised.
        """
        # Two lookups of strings whose hashes are cached beat building and hashing a tuple key.
        parsers = self._parsers.get(type_)
        parser = parsers.get(written_by) if parsers is not None else None
        if parser is None:
            parser = self._parser(type_, written_by)
            self._parsers.setdefault(type_, {})[written_by] = parser
        return parser(raw)  # type: ignore[no-any-return]

    def _parser(self, type_: str, written_by: Version | str | None) -> Parser:
        """A generated parser for such objects, or the general path where one cannot be made."""

        def general(raw: bytes | str) -> Outcome:
            return self._parse_general(type_, raw, written_by)

        candidates = [m for m, _ in self._by_type.get(type_, ())]
        subtyped = self._subtype_path is not None and any(m.subtype for m in candidates)
        due = self.due(type_, None, written_by)
        if not self._generate or subtyped or not fastpath.compilable(due):
            return general
        return fastpath.compile_parser(due, general, Outcome, lambda m: Attention(m, REVIEW))

    def _parse_general(
        self, type_: str, raw: bytes | str, written_by: Version | str | None
    ) -> Outcome:
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise ObjectMigrationError(
                f"a stored {type_} is not valid JSON: {err}",
                hint="restore the object from a backup or fix it by hand",
            ) from None
        if type(document) is not dict:
            raise ObjectMigrationError(
                f"a stored {type_} is not a JSON object", hint="fix the object by hand"
            )
        return self.migrate(type_, document, written_by)

    def migrate(self, type_: str, document: Document, written_by: Version | str | None) -> Outcome:
        """Migrate ``document`` in place; returns it with what was applied and what needs a hand.

        A conflict (a migration whose target is already set) stops the migrations of the
        object there: later ones could lose data.

        Args:
            type_: The object type, as the catalog names it.
            document: The parsed document; it is changed.
            written_by: The release that wrote it; None when unknown.

        Raises:
            ObjectMigrationError: A transform handler raised.
        """
        subtype = self._subtype_of(document) if self._subtype_path else None
        due = self._due.get((type_, subtype, written_by))
        if due is None:
            due = self._find_due(type_, subtype, written_by)
        if not due:
            return Outcome(document)
        applied: list[ObjectMigration] = []
        attention: list[Attention] = []
        for migration, step in due:
            result = step(document)
            if result is Result.APPLIED:
                applied.append(migration)
                if migration.transition is Transition.SEMI_AUTOMATIC:
                    attention.append(Attention(migration, REVIEW))
            elif result is not Result.ABSENT:
                document = _settle(migration, result, document, applied, attention)
                if attention and attention[-1].blocked:
                    break  # the object is inconsistent: later migrations could lose data
        return Outcome(document, tuple(applied), tuple(attention) if attention else ())

    def due(
        self, type_: str, subtype: object, written_by: Version | str | None
    ) -> tuple[ObjectMigration, ...]:
        """The migrations that apply to such an object, in order.

        Args:
            type_: The object type.
            subtype: The document's value at the subtype path; a value that is not a string
                counts as none.
            written_by: The release that wrote the object; None when unknown (every
                migration of the type applies).
        """
        return tuple(m for m, _ in self._find_due(type_, subtype, written_by))

    def _find_due(self, type_: str, subtype: object, written_by: Version | str | None) -> Due:
        key = (type_, subtype if isinstance(subtype, str) else None, written_by)
        found = self._due.get(key)
        if found is None:  # once per distinct stamp: the stamp is parsed here only
            version = stamp_version(written_by, self.grammar)
            candidates = self._by_type.get(type_, ())
            found = tuple(c for c in candidates if c[0].concerns(type_, key[1], version))
            self._due[key] = found
            self._due[(type_, subtype, written_by)] = found
        return found

    def _subtype_of(self, document: Document) -> object:
        assert self._subtype_path is not None
        holder = paths.parent(document, self._subtype_path)
        value = None if holder is None else holder.get(self._subtype_path[-1])
        return value if isinstance(value, str) else None


def migrate_document(
    type_: str,
    document: Document,
    written_by: Version | str | None,
    migrations: Iterable[ObjectMigration],
    subtype_path: tuple[str, ...] | None = None,
) -> Outcome:
    """The migrated copy of ``document`` (the argument is left as it was).

    For one document at a time, such as a test; a loop over many builds one ``Migrator``.

    Args:
        type_: The object type.
        document: The parsed document.
        written_by: The release that wrote it, as a version or its text; None when unknown.
        migrations: The catalog's object migrations.
        subtype_path: The path to the value a migration's ``subtype`` is compared with.

    Raises:
        ObjectMigrationError: A transform handler raised.
    """
    return Migrator(migrations, subtype_path).migrate(type_, copy.deepcopy(document), written_by)


def stamp_version(written_by: object, grammar: GrammarName) -> Version | None:
    """The release a stored object's stamp names, read in the catalog's ``grammar``; None when
    there is no stamp or it is not a version of the grammar (unknown: every migration of the
    object's type is considered, as for an object written before stamps)."""
    if isinstance(written_by, Version):
        return written_by
    if written_by is None or written_by == "":
        return None
    try:
        return Version(str(written_by), grammar)
    except ValueError:
        return None


def _settle(
    migration: ObjectMigration,
    result: Result,
    document: Document,
    applied: list[ObjectMigration],
    attention: list[Attention],
) -> Document:
    """What a step's answer other than ABSENT or a plain APPLIED means for the outcome."""
    transform = migration.op == Op.TRANSFORM and migration.transition.applied
    if result is Result.NEEDS_HAND and transform:
        document = _transform(migration, document, applied)
        reviewed = migration.transition is Transition.SEMI_AUTOMATIC
        if reviewed and applied and applied[-1] is migration:
            attention.append(Attention(migration, REVIEW))
        return document
    if result is Result.NEEDS_HAND:
        attention.append(Attention(migration, f"needs a hand ({migration.transition})"))
    elif result is Result.TARGET_SET:
        reason = f"{'.'.join(migration.target)} is already set; kept both"
        attention.append(Attention(migration, reason, blocked=True))
    elif result is Result.TARGET_BLOCKED:
        reason = f"{'.'.join(migration.target)} is not inside an object"
        attention.append(Attention(migration, reason, blocked=True))
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
