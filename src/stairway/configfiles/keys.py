"""Keyed edits (rename, remove, set-default) on a parsed JSON, TOML or YAML document.

The document is whatever the format's round-trip parser returned: a plain dict for JSON, a
tomlkit document, a ruamel.yaml CommentedMap. All three are mutable mappings; what differs
(making a table, renaming in place so a key keeps its position and comment, retitling TOML
headers) the format supplies as a ``Shape``.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from enum import Enum
from typing import Any, Protocol

from stairway.configfiles.migration import Key

Mapping = MutableMapping[str, Any]


class Edit(Enum):
    """What one keyed edit did to a document."""

    APPLIED = "applied"
    NOTHING = "nothing"  # already in the new shape, or nothing to do: the migration is idempotent
    CONFLICT = "conflict"  # both shapes present, or the way is blocked by a non-table value


def holder(
    document: Mapping, key: Key, create: Callable[[], Mapping] | None = None
) -> Mapping | None:
    """The mapping that holds ``key``'s last part; tables on the way are made when ``create``."""
    node: Any = document
    for part in key[:-1]:
        if not isinstance(node, MutableMapping):
            return None
        if part not in node and create is not None:
            node[part] = create()
        node = node.get(part)
    return node if isinstance(node, MutableMapping) else None


def has(document: Mapping, key: Key) -> bool:
    """Whether the document holds ``key``."""
    found = holder(document, key)
    return found is not None and key[-1] in found


def remove(document: Mapping, key: Key) -> Edit:
    """Delete ``key`` if it is there; NOTHING when it is not."""
    found = holder(document, key)
    if found is None or key[-1] not in found:
        return Edit.NOTHING
    del found[key[-1]]
    return Edit.APPLIED


def set_default(document: Mapping, key: Key, value: object, shape: Shape) -> Edit:
    """Set ``key`` to ``value`` only where it is absent, making tables on the way.

    CONFLICT when a value that is not a table stands on the way.
    """
    if has(document, key):
        return Edit.NOTHING
    found = holder(document, key, shape.table)
    if found is None:
        return Edit.CONFLICT
    found[key[-1]] = value
    return Edit.APPLIED


class Shape(Protocol):
    """What a format must say about its mappings for keys to be moved about in them."""

    def table(self) -> Mapping:
        """A new, empty table to hold keys on the way to a new one."""

    def moved(self, value: object, old: Key, new: Key) -> None:
        """Adjust a value moved from ``old`` to ``new`` where it repeats its own path."""

    def rename_in_place(self, mapping: Mapping, old: str, new: str) -> None:
        """Rename ``old`` to ``new`` in ``mapping``, keeping its position and comment."""


class PlainDicts:
    """Plain dicts (JSON, and the reference model in tests)."""

    def table(self) -> Mapping:
        """A new, empty dict."""
        return {}

    def moved(self, value: object, old: Key, new: Key) -> None:
        """Nothing in a plain value repeats its own path."""

    def rename_in_place(self, mapping: Mapping, old: str, new: str) -> None:
        """Rename ``old`` to ``new``, keeping the key's position in the dict."""
        items = [(new if k == old else k, v) for k, v in mapping.items()]
        mapping.clear()
        mapping.update(items)


def rename(document: Mapping, key: Key, to: Key, shape: Shape) -> Edit:
    """Move ``key`` to ``to``; in place (same position, same comment) when only the name changes.

    The new key is never overwritten: both present is a conflict for the operator to settle.
    """
    if not has(document, key):
        return Edit.NOTHING
    if has(document, to):
        return Edit.CONFLICT
    source = holder(document, key)
    assert source is not None  # has() just found it
    if key[:-1] == to[:-1]:
        shape.moved(source[key[-1]], key, to)
        shape.rename_in_place(source, key[-1], to[-1])
        return Edit.APPLIED
    target = holder(document, to, shape.table)
    if target is None:
        return Edit.CONFLICT
    shape.moved(source[key[-1]], key, to)
    target[to[-1]] = source.pop(key[-1])
    return Edit.APPLIED
