"""Round-trip readers and writers for the keyed formats: JSON, TOML and YAML.

Each keeps what an operator wrote as far as its format allows: TOML (tomlkit) and YAML
(ruamel.yaml, round-trip mode) keep comments, key order, quoting and layout; JSON has no
comments, so it keeps key order, the indentation it finds and the final newline.
"""

from __future__ import annotations

import io
import json
import re
import tomllib
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol

import tomlkit
import tomlkit.exceptions
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.util import load_yaml_guess_indent
from tomlkit.container import Container
from tomlkit.items import AoT, Item, Table

from stairway.configfiles.jsontext import strict_loads
from stairway.configfiles.keys import PlainDicts, Shape
from stairway.configfiles.migration import Format, Key, parse_key, show_key
from stairway.configfiles.problems import Unreadable, Unrepresentable
from stairway.parsing import number_problem


class KeyedFormat(Shape, Protocol):
    """A round-trip reader and writer for one keyed format, and its ``Shape``."""

    def load(self, text: str) -> MutableMapping[str, Any]:
        """Parse ``text`` into a mutable document; raises ``Unreadable`` with a line if known."""

    def dump(self, document: MutableMapping[str, Any]) -> str:
        """The document as text again, in the layout ``load`` found."""

    def value(self, value: object) -> object:
        """``value`` as this format stores it in a document (a tomlkit item for TOML)."""


class JsonFile(PlainDicts):
    """JSON as plain dicts, keeping key order, indentation and the final newline."""

    def __init__(self) -> None:
        self._indent: int | str | None = 2
        self._newline = True

    def load(self, text: str) -> MutableMapping[str, Any]:
        """Parse strict JSON whose top level is an object, remembering its layout."""
        document = strict_loads(text)
        if not isinstance(document, dict):
            raise Unreadable("the top level is not an object", 1)
        self._indent = _json_indent(text)
        self._newline = text.endswith("\n")
        return document

    def dump(self, document: MutableMapping[str, Any]) -> str:
        """The document in the indentation read; raises ``Unrepresentable`` for NaN or infinity."""
        try:
            text = json.dumps(document, indent=self._indent, ensure_ascii=False, allow_nan=False)
        except ValueError as err:  # NaN or infinity, from a migration's value
            raise Unrepresentable(f"cannot be written as JSON: {err}", None) from None
        return text + "\n" if self._newline else text

    def value(self, value: object) -> object:
        """The value unchanged: JSON documents hold plain values."""
        return value


def _json_indent(text: str) -> int | str | None:
    """The indentation of the first indented line: spaces, a tab, or None for one-line JSON."""
    found = re.search(r"\n([ \t]+)\S", text)
    if found is None:
        return None
    unit = found.group(1)
    return unit if "\t" in unit else len(unit)


class TomlFile:
    """TOML through tomlkit, keeping comments, key order, quoting and layout."""

    def load(self, text: str) -> MutableMapping[str, Any]:
        """Parse ``text`` as a tomlkit document; raises ``Unreadable`` with the line if known."""
        try:
            document: MutableMapping[str, Any] = tomlkit.parse(text)
            return document
        except tomlkit.exceptions.ParseError as err:
            raise Unreadable(str(err), err.line) from None
        except tomlkit.exceptions.TOMLKitError as err:  # e.g. a key defined twice
            raise Unreadable(str(err), _toml_line(text)) from None

    def dump(self, document: MutableMapping[str, Any]) -> str:
        """The document as TOML text, with the comments and layout it was read with."""
        return tomlkit.dumps(document)

    def table(self) -> MutableMapping[str, Any]:
        """A new, empty TOML table."""
        return tomlkit.table()

    def value(self, value: object) -> object:
        """``value`` as a tomlkit item."""
        return tomlkit.item(value)

    def moved(self, value: object, old: Key, new: Key) -> None:
        """A table header repeats its path (``[old.sub]``): give it and those below the new one."""
        if isinstance(value, AoT):
            for table in value.body:
                self.moved(table, old, new)
        if not isinstance(value, Table):
            return
        if value.display_name is not None:
            title = parse_key(value.display_name)
            if title[: len(old)] == old:
                value.display_name = show_key(new + title[len(old) :])
        for _, item in value.value.body:
            self.moved(item, old, new)

    def rename_in_place(self, mapping: MutableMapping[str, Any], old: str, new: str) -> None:
        """Same position, same comment and spacing: the body entry gets the new key."""
        container = mapping.value if isinstance(mapping, Table) else mapping
        assert isinstance(container, Container)
        item = container.item(old)
        assert isinstance(item, Item)
        container._replace(old, new, item)
        if not isinstance(item, Table):  # tomlkit re-indexes only tables under the new name
            dict.__setitem__(container, new, item.value)


def _toml_line(text: str) -> int | None:
    """Where tomllib stops reading ``text``: tomlkit names a key given twice, not its line."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        found = re.search(r"\(at line (\d+), column \d+\)", str(err))
        return int(found.group(1)) if found else None
    except (RecursionError, ValueError):
        return None
    return None


class YamlFile:
    """YAML through ruamel.yaml in round-trip mode, keeping comments and indentation."""

    def __init__(self) -> None:
        self._yaml = _round_trip()

    def load(self, text: str) -> MutableMapping[str, Any]:
        """Parse ``text`` with the indentation it uses; an empty file is an empty mapping.

        Raises:
            Unreadable: The text does not parse, or its top level is not a mapping.
        """
        try:
            _, indent, offset = load_yaml_guess_indent(text)
            # A dash is followed by one space: the item's content sits two past the dash.
            dash = offset or 0
            self._yaml.indent(mapping=indent or 2, sequence=dash + 2, offset=dash)
            document = self._yaml.load(text)
        except MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            raise Unreadable(err.problem or str(err), mark.line + 1 if mark else None) from None
        except YAMLError as err:
            raise Unreadable(str(err), None) from None
        except ValueError as err:  # a constructor's: a date out of range, a huge integer
            raise Unreadable(number_problem(err), None) from None
        if document is None:
            return CommentedMap()
        if not isinstance(document, MutableMapping):
            raise Unreadable("the top level is not a mapping", 1)
        found: MutableMapping[str, Any] = document
        return found

    def dump(self, document: MutableMapping[str, Any]) -> str:
        """The document as YAML text, indented as it was read and never re-wrapped."""
        out = io.StringIO()
        self._yaml.dump(document, out)
        return out.getvalue()

    def table(self) -> MutableMapping[str, Any]:
        """A new, empty YAML mapping that can carry comments."""
        return CommentedMap()

    def value(self, value: object) -> object:
        """The value unchanged: ruamel.yaml writes plain values as they are."""
        return value

    def moved(self, value: object, old: Key, new: Key) -> None:
        """Nothing in a YAML value repeats its own path."""

    def rename_in_place(self, mapping: MutableMapping[str, Any], old: str, new: str) -> None:
        """Same position, and the end-of-line comment goes with the key."""
        assert isinstance(mapping, CommentedMap)
        position = list(mapping).index(old)
        comment = mapping.ca.items.pop(old, None)
        mapping.insert(position, new, mapping.pop(old))
        if comment is not None:
            mapping.ca.items[new] = comment


def _round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap an operator's long line
    return yaml


KEYED: dict[Format, Callable[[], KeyedFormat]] = {
    Format.JSON: JsonFile,
    Format.TOML: TomlFile,
    Format.YAML: YamlFile,
}


def keyed(fmt: Format) -> KeyedFormat:
    """A fresh reader/writer: JSON and YAML remember the layout of the text they read."""
    return KEYED[fmt]()
