"""A config-file migration as a value: what it changes in an operator's file, not how it runs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatch
from pathlib import Path

from stairway.versions import Version

Key = tuple[str, ...]
_SEGMENT = re.compile(r'"((?:[^"\\]|\\.)*)"|([^."]+)')


class Format(StrEnum):
    """The formats config-file migrations read and write."""

    JSON = "json"
    TOML = "toml"
    YAML = "yaml"
    XML = "xml"

    @classmethod
    def of(cls, path: Path) -> Format | None:
        """The format a file's extension says, or None when it says nothing we read."""
        suffix = path.suffix.lower().lstrip(".")
        return {"yml": cls.YAML}.get(suffix) or next((f for f in cls if f.value == suffix), None)


class ConfigOp(StrEnum):
    """What a config-file migration does; which formats allow each is noted per member."""

    RENAME = "rename"  # keyed formats: the value moves to `to` (another name or another table)
    REMOVE = "remove"  # keyed formats: a key; XML: every element or attribute the XPath selects
    SET_DEFAULT = "set-default"  # keyed formats: set `value` only where the key is absent
    SET_ATTRIBUTE = "set-attribute"  # XML: set `attribute` to `value` on every selected element
    SET_TEXT = "set-text"  # XML: replace the text of every selected element with `value`


KEYED_OPS = frozenset({ConfigOp.RENAME, ConfigOp.REMOVE, ConfigOp.SET_DEFAULT})
XML_OPS = frozenset({ConfigOp.REMOVE, ConfigOp.SET_ATTRIBUTE, ConfigOp.SET_TEXT})


class ConfigTransition(StrEnum):
    """Whether a migration is applied by Stairway or left to the operator."""

    AUTOMATIC = "automatic"  # applied by `config migrate` and by the upgrade
    MANUAL = "manual"  # never applied: reported wherever it would change the file


def parse_key(text: str) -> Key:
    """``server."log.level".port`` → ``("server", "log.level", "port")``; quotes allow dots.

    Raises ValueError naming the problem, which the catalog loader reports with its line.
    """
    segments: list[str] = []
    position = 0
    while position < len(text):
        match = _SEGMENT.match(text, position)
        if match is None:
            raise ValueError(f"key {text!r} has an empty segment at character {position + 1}")
        quoted, bare = match.groups()
        segments.append(bare.strip() if bare is not None else re.sub(r"\\(.)", r"\1", quoted))
        position = match.end()
        if position < len(text) and text[position] != ".":
            raise ValueError(f"key {text!r}: expected '.' at character {position + 1}")
        position += 1 if position < len(text) else 0
        if position == len(text) and text.endswith("."):
            raise ValueError(f"key {text!r} ends with '.'")
    if not segments or any(not s for s in segments):
        raise ValueError(f"key {text!r} has an empty segment")
    return tuple(segments)


def show_key(key: Key) -> str:
    """The inverse of ``parse_key``: parts joined by dots, quoted where they need it."""
    return ".".join(f'"{k}"' if "." in k or not k else k for k in key)


@dataclass(frozen=True)
class ConfigMigration:
    """One declared change to the operator's config files named by ``file``."""

    number: int  # position in config.toml, for stable ordering and messages
    file: str  # a file name or glob, matched against the name of each of the site's files
    since: Version  # applied by upgrades that cross into this release from below it
    op: ConfigOp
    format: Format  # from `format`, or else the extension of `file`
    key: Key = ()
    to: Key = ()
    value: object = None
    xpath: str = ""
    namespaces: tuple[tuple[str, str], ...] = ()
    attribute: str = ""
    transition: ConfigTransition = ConfigTransition.AUTOMATIC
    note: str = ""
    source: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        """The file pattern and the migration's number, as in ``app.toml#3``."""
        return f"{self.file}#{self.number}"

    def matches(self, path: Path) -> bool:
        """Whether ``path`` is one of the files this migration is for.

        A pattern with a slash matches the whole path (or its tail); one without, the name.
        """
        if "/" in self.file:
            return fnmatch(str(path), self.file) or fnmatch(str(path), f"*/{self.file}")
        return fnmatch(path.name, self.file)

    def action(self) -> str:
        """What the migration does to the file, in a few words."""
        return {
            ConfigOp.RENAME: f"rename {show_key(self.key)} to {show_key(self.to)}",
            ConfigOp.REMOVE: f"remove {self.xpath or show_key(self.key)}",
            ConfigOp.SET_DEFAULT: f"set {show_key(self.key)} to {self.value!r} where absent",
            ConfigOp.SET_ATTRIBUTE: f"set @{self.attribute}={self.value!r} on {self.xpath}",
            ConfigOp.SET_TEXT: f"set the text of {self.xpath} to {self.value!r}",
        }[self.op]

    def describe(self) -> str:
        """The file, the release and the action on one line; manual ones are marked."""
        manual = " [manual]" if self.transition == ConfigTransition.MANUAL else ""
        return f"{self.file} since {self.since}: {self.action()}{manual}"

    @property
    def takes(self) -> Key:
        """The key this migration takes away (keyed formats), or ()."""
        return self.key if self.op in (ConfigOp.RENAME, ConfigOp.REMOVE) else ()

    @property
    def writes(self) -> Key:
        """The key this migration writes (keyed formats), or ()."""
        return {ConfigOp.RENAME: self.to, ConfigOp.SET_DEFAULT: self.key}.get(self.op, ())

    def crosses(self, current: Version, target: Version) -> bool:
        """Whether an upgrade from ``current`` to ``target`` reaches this migration's release."""
        return current < self.since <= target


def unsettled_pairs(
    migrations: Sequence[ConfigMigration],
) -> list[tuple[ConfigMigration, ConfigMigration]]:
    """Pairs (earlier, later) that would undo each other when a file is migrated again.

    A file carries no version stamp, so every run applies every due migration: it must be a
    no-op the second time. It is not when a later migration writes a key an earlier one takes
    away (the next run takes it away again), or takes away a key an earlier set-default writes
    (the next run sets the default again). Each pair is a catalog error.
    """
    found = []
    for index, later in enumerate(migrations):
        for earlier in migrations[:index]:
            if _same_files(earlier, later) and (
                _overlap(earlier.takes, later.writes)
                or (earlier.op == ConfigOp.SET_DEFAULT and _overlap(earlier.key, later.takes))
            ):
                found.append((earlier, later))
    return found


def _same_files(a: ConfigMigration, b: ConfigMigration) -> bool:
    wildcard = any(c in a.file + b.file for c in "*?[")
    return a.format == b.format and (a.file == b.file or wildcard)


def _overlap(a: Key, b: Key) -> bool:
    shorter = min(len(a), len(b))
    return shorter > 0 and a[:shorter] == b[:shorter]
