"""A migration compiled into a step: one small function run on every document of its type.

The parse path runs several steps per document at orjson speed, so each step is a closure
specialised for its operation and for keys at the top level, the common case. A step answers
with what happened; ``migrate`` turns that into the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

from stairway.objects import paths
from stairway.objects.migration import Document, ObjectMigration, Op


class Result(IntEnum):
    """What one step found or did in a document."""

    ABSENT = 0  # the path is not there: nothing to do or report
    APPLIED = 1
    TARGET_SET = 2  # rename/move: the new path already holds a value
    TARGET_BLOCKED = 3  # move: the way to the new path crosses a non-object
    NEEDS_HAND = 4  # manual or dead-end: present, never applied


Step = Callable[[Document], Result]


def compile_step(migration: ObjectMigration) -> Step:
    """The step that carries out ``migration``, or only checks the path is present.

    Manual and dead-end migrations and transforms are only checked here: a transform's
    handler runs in ``migrate``.
    """
    if not migration.transition.applied:
        return _present(migration.path)
    if migration.op == Op.REMOVE:
        return _remove(migration.path)
    if migration.op == Op.TRANSFORM:
        return _present(migration.path)  # the handler runs in ``migrate``, which owns errors
    return _relocate(migration.path, migration.target)


def _present(path: tuple[str, ...]) -> Step:
    def step(document: Document) -> Result:
        return Result.NEEDS_HAND if paths.contains(document, path) else Result.ABSENT

    return step


def _remove(path: tuple[str, ...]) -> Step:
    if len(path) == 1:
        key = path[0]

        def remove_top(document: Document) -> Result:
            if key in document:
                del document[key]
                return Result.APPLIED
            return Result.ABSENT

        return remove_top

    def remove(document: Document) -> Result:
        holder = paths.parent(document, path)
        if holder is None or path[-1] not in holder:
            return Result.ABSENT
        del holder[path[-1]]
        return Result.APPLIED

    return remove


def _relocate(path: tuple[str, ...], target: tuple[str, ...]) -> Step:
    if len(path) == 1 and len(target) == 1:
        key, new = path[0], target[0]

        def rename_top(document: Document) -> Result:
            if key not in document:
                return Result.ABSENT
            if new in document:
                return Result.TARGET_SET
            document[new] = document.pop(key)
            return Result.APPLIED

        return rename_top

    head, last = path[:-1], path[-1]
    target_head, target_last = target[:-1], target[-1]

    def relocate(document: Document) -> Result:
        holder: object = document
        for key in head:  # inline walks: this runs for every document of the type
            holder = holder.get(key) if type(holder) is dict else None
        if type(holder) is not dict or last not in holder:
            return Result.ABSENT
        destination: object = document
        for key in target_head:
            if type(destination) is not dict:
                break
            destination = destination.get(key)
        if type(destination) is dict and target_last in destination:
            return Result.TARGET_SET
        value = holder.pop(last)
        if not paths.put(document, target, value):
            holder[last] = value  # the way to the target is blocked: undo
            return Result.TARGET_BLOCKED
        return Result.APPLIED

    return relocate
