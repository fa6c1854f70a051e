"""Applying config-file migrations to a file's bytes: pure, nothing is written here.

``migrate_bytes`` turns the original into the migrated text and says what it applied and what
needs a hand. Running it on its own output changes nothing more: every operation checks first
whether the file is already in the new shape.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stairway.configfiles import keys
from stairway.configfiles.formats import KeyedFormat, keyed
from stairway.configfiles.keys import Edit
from stairway.configfiles.migration import ConfigMigration, ConfigOp, ConfigTransition, Format
from stairway.configfiles.problems import Unreadable, Unrepresentable
from stairway.configfiles.xmlfile import XmlFile
from stairway.errors import ConfigFileError
from stairway.parsing import too_deep

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Attention:
    """A migration the operator must carry out by hand, or settle first."""

    migration: ConfigMigration
    reason: str

    def describe(self) -> str:
        """The migration, why it needs the operator, and its note, on one line."""
        note = f": {self.migration.note}" if self.migration.note else ""
        return f"{self.migration.describe()} — {self.reason}{note}"


@dataclass(frozen=True)
class FileOutcome:
    """One config file before and after its due migrations, with what needs a hand."""

    path: Path
    before: bytes
    after: bytes
    applied: tuple[ConfigMigration, ...]
    attention: tuple[Attention, ...]

    @property
    def changed(self) -> bool:
        """Whether the migrations changed the file's bytes."""
        return self.before != self.after

    def diff(self) -> str:
        """A unified diff of the change, for ``--dry-run`` and reports."""
        old = self.before.decode("utf-8", "replace").splitlines(keepends=True)
        new = self.after.decode("utf-8", "replace").splitlines(keepends=True)
        name = str(self.path)
        return "".join(difflib.unified_diff(old, new, name, f"{name} (migrated)"))


def migrate_bytes(path: Path, raw: bytes, migrations: Sequence[ConfigMigration]) -> FileOutcome:
    """The file ``path`` holding ``raw`` after ``migrations`` (all meant for it), in order."""
    fmt = _format(path, migrations)
    try:
        after, applied, attention = _migrate(fmt, raw, migrations)
    except Unrepresentable as err:
        raise ConfigFileError(
            err.message,
            path=str(path),
            line=err.line,
            hint=f"write one value per key, each as {fmt.value.upper()} holds it; "
            "the file was left untouched",
        ) from None
    except Unreadable as err:
        raise ConfigFileError(
            f"does not parse as {fmt.value.upper()}: {err.message}",
            path=str(path),
            line=err.line,
            hint="fix the file (it was left untouched) and run again",
        ) from None
    return FileOutcome(path, raw, after if applied else raw, tuple(applied), tuple(attention))


def _format(path: Path, migrations: Sequence[ConfigMigration]) -> Format:
    formats = {m.format for m in migrations}
    own = Format.of(path)
    if len(formats) > 1 or (own is not None and formats and own not in formats):
        said = ", ".join(sorted(f.value for f in formats | ({own} if own else set())))
        raise ConfigFileError(
            f"config-file migrations treat this file as different formats ({said})",
            path=str(path),
            hint="give the migrations for this file one `format`, matching its content",
        )
    return next(iter(formats), own or Format.TOML)


Applied = tuple[bytes, list[ConfigMigration], list[Attention]]


def _migrate(fmt: Format, raw: bytes, migrations: Sequence[ConfigMigration]) -> Applied:
    try:
        if fmt == Format.XML:
            return _migrate_xml(raw, migrations)
        return _migrate_keyed(fmt, raw, migrations)
    except RecursionError:  # a parser, an edit or a writer walking a deeply nested value
        raise Unreadable(too_deep(), None) from None


def _migrate_keyed(fmt: Format, raw: bytes, migrations: Sequence[ConfigMigration]) -> Applied:
    bom, text = _decode(raw)
    reader = keyed(fmt)
    document = reader.load(text)
    applied: list[ConfigMigration] = []
    attention: list[Attention] = []
    for index, migration in enumerate(migrations):
        if migration.transition == ConfigTransition.MANUAL:
            scratch = keyed(fmt).load(text)
            if _edit_keyed(reader, scratch, migration) == Edit.APPLIED:
                attention.append(Attention(migration, "needs a hand"))
            continue
        edit = _edit_keyed(reader, document, migration)
        _record(edit, migration, applied, attention)
        if edit == Edit.CONFLICT:
            # Later migrations may build on this one: running them now would leave the file in
            # a shape the next run changes again. They wait until the operator settles this.
            attention += [_held(later, migration) for later in migrations[index + 1 :]]
            break
    return bom + _encoded(reader.dump(document)), applied, attention


def _encoded(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:  # JSON's "\ud800": an escape UTF-8 has no bytes for
        said = (
            f"a string holds U+{ord(err.object[err.start]):04X}, a lone surrogate UTF-8 cannot hold"
        )
        raise Unrepresentable(said, None) from None


def _held(migration: ConfigMigration, conflict: ConfigMigration) -> Attention:
    return Attention(migration, f"held back until {conflict.label} is settled")


def _edit_keyed(reader: KeyedFormat, document: keys.Mapping, migration: ConfigMigration) -> Edit:
    if migration.op == ConfigOp.RENAME:
        return keys.rename(document, migration.key, migration.to, reader)
    if migration.op == ConfigOp.REMOVE:
        return keys.remove(document, migration.key)
    value = reader.value(migration.value)
    return keys.set_default(document, migration.key, value, reader)


def _migrate_xml(raw: bytes, migrations: Sequence[ConfigMigration]) -> Applied:
    document = XmlFile(raw)
    applied: list[ConfigMigration] = []
    attention: list[Attention] = []
    for migration in migrations:
        if migration.transition == ConfigTransition.MANUAL:
            if XmlFile(raw).apply(migration) == Edit.APPLIED:
                attention.append(Attention(migration, "needs a hand"))
            continue
        _record(document.apply(migration), migration, applied, attention)
    return document.dump(), applied, attention


def _record(
    edit: Edit,
    migration: ConfigMigration,
    applied: list[ConfigMigration],
    attention: list[Attention],
) -> None:
    if edit == Edit.APPLIED:
        applied.append(migration)
    elif edit == Edit.CONFLICT:
        attention.append(Attention(migration, _conflict(migration)))


def _conflict(migration: ConfigMigration) -> str:
    if migration.op == ConfigOp.RENAME:
        return "both the old and the new key are set: keep one, then run again"
    return "a value that is not a table stands where a table is needed"


def _decode(raw: bytes) -> tuple[bytes, str]:
    bom = _BOM if raw.startswith(_BOM) else b""
    try:
        return bom, raw[len(bom) :].decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: len(bom) + err.start].count(b"\n") + 1
        raise Unreadable(f"not valid UTF-8 (byte {err.start})", line) from None
