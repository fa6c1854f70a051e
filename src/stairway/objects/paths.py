"""Dotted paths into JSON documents: find, take out and put in, without copying the document.

A path is a tuple of keys (``("connection", "host")``). Lists are not traversed: a path names
keys of nested objects only, which is what stored objects' schemas evolve by.
"""

from __future__ import annotations

from stairway.objects.migration import Document

_ABSENT = object()


def parse_path(text: str) -> tuple[str, ...]:
    """``"a.b.c"`` → ``("a", "b", "c")``; an empty segment is an error for the caller to report."""
    return tuple(text.split("."))


def parent(document: Document, path: tuple[str, ...]) -> dict[str, object] | None:
    """The object holding the last key of ``path``, or None when the way there is missing."""
    node: object = document
    for key in path[:-1]:
        if not isinstance(node, dict):
            return None
        node = node.get(key, _ABSENT)
    return node if isinstance(node, dict) else None


def contains(document: Document, path: tuple[str, ...]) -> bool:
    """Whether ``document`` has a value at ``path``."""
    holder = parent(document, path)
    return holder is not None and path[-1] in holder


def take(document: Document, path: tuple[str, ...]) -> object:
    """Remove and return the value at ``path``; ``None`` when absent (check ``contains`` first)."""
    holder = parent(document, path)
    return None if holder is None else holder.pop(path[-1], None)


def put(document: Document, path: tuple[str, ...], value: object) -> bool:
    """Set ``path`` to ``value``, creating missing parent objects; False if a non-object blocks."""
    node: dict[str, object] = document
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            return False
        node = child
    node[path[-1]] = value
    return True
