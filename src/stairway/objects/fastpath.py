"""One generated function per (type, stamp): parse and apply every due migration inline.

Reading objects is the hot path of a continuous migration (every read, every bulk rewrite, every
export), and at orjson's speed the cost of calling one closure per migration, and of building
the outcome, is larger than the edits themselves. So when all migrations due for a type are
automatic or semi-automatic renames, moves and removes, their code is written out as the body
of one function: a walk of dict lookups per migration and a bit per migration that applied.

Anything off the straight road (a target already set, a way blocked by a non-object, a body
that is not an object) makes the generated function hand the raw text to the general path,
which parses it afresh and reports exactly as it always does: the two give the same outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from stairway.objects.migration import ObjectMigration, Op, Transition

Parser = Callable[[bytes | str], Any]
_SIMPLE_OPS = (Op.RENAME, Op.MOVE, Op.REMOVE)


def compilable(migrations: Sequence[ObjectMigration]) -> bool:
    """Whether every migration is an applied rename, move or remove, written out as one function."""
    return all(m.op in _SIMPLE_OPS and m.transition.applied for m in migrations)


def compile_parser(
    migrations: Sequence[ObjectMigration],
    general: Parser,
    outcome: type,
    review: Callable[[ObjectMigration], object],
) -> Parser:
    """The generated parser; ``general(raw)`` takes over off the straight road."""
    lines = ["def parse(raw):", "    try:", "        d = loads(raw)", "    except Invalid:", _BAIL]
    lines += ["    if type(d) is not dict:", _BAIL]
    lines += ["    mask = 0"]
    for bit, migration in enumerate(migrations):
        lines += _emit(migration, 1 << bit)
    every = (1 << len(migrations)) - 1
    lines += [
        f"    if mask == {every}:",  # the common case: an old object, every migration applies
        "        return new(Outcome, (d, every[0], every[1]))",
        "    if not mask:",
        "        return new(Outcome, (d, (), ()))",
        "    found = made.get(mask)",
        "    if found is None:",
        "        found = made[mask] = make(mask)",
        "    return new(Outcome, (d, found[0], found[1]))",
    ]

    def make(mask: int) -> tuple[tuple[ObjectMigration, ...], tuple[object, ...]]:
        applied = tuple(m for bit, m in enumerate(migrations) if mask & (1 << bit))
        semi = Transition.SEMI_AUTOMATIC
        return applied, tuple(review(m) for m in applied if m.transition is semi)

    namespace: dict[str, Any] = {
        "loads": orjson.loads,
        "Invalid": orjson.JSONDecodeError,
        "new": tuple.__new__,
        "Outcome": outcome,
        "general": general,
        "made": {},
        "make": make,
        "every": make(every),
    }
    exec(compile("\n".join(lines), "<stairway object parser>", "exec"), namespace)
    return namespace["parse"]  # type: ignore[no-any-return]


_BAIL = "        return general(raw)"


def _emit(migration: ObjectMigration, bit: int) -> list[str]:
    path = migration.path
    lines = _walk("h", path[:-1])
    lines.append(f"    if {_holds('h', path)}:")
    if migration.op == Op.REMOVE:
        return [*lines, f"        del h[{path[-1]!r}]", f"        mask |= {bit}"]
    target = migration.target
    if len(target) == 2:
        return lines + _emit_one_level(path[-1], target, bit)
    lines += ["    " + line for line in _walk("t", target[:-1])]
    lines += [
        f"        if {_holds('t', target)}:",
        "    " + _BAIL,
        f"        v = h.pop({path[-1]!r})",
        "        t = d",
    ]
    for key in target[:-1]:
        lines += [
            f"        t = t.setdefault({key!r}, {{}})",
            "        if type(t) is not dict:",
            "    " + _BAIL,
        ]
    return [*lines, f"        t[{target[-1]!r}] = v", f"        mask |= {bit}"]


def _emit_one_level(key: str, target: Sequence[str], bit: int) -> list[str]:
    """A move into a top-level object (the common case): one lookup, made if absent."""
    head, last = target
    return [
        f"        if {head!r} in d:",
        f"            t = d[{head!r}]",
        f"            if type(t) is not dict or {last!r} in t:",
        "        " + _BAIL,
        f"            t[{last!r}] = h.pop({key!r})",
        "        else:",
        f"            d[{head!r}] = {{{last!r}: h.pop({key!r})}}",
        f"        mask |= {bit}",
    ]


def _walk(name: str, keys: Sequence[str]) -> list[str]:
    """``name`` ends as the object at ``keys`` below the document, or anything else if absent.

    The document itself is known to be a dict: its first lookup needs no check.
    """
    if not keys:
        return [f"    {name} = d"]
    lines = [f"    {name} = d.get({keys[0]!r})"]
    lines += [f"    {name} = {name}.get({k!r}) if type({name}) is dict else None" for k in keys[1:]]
    return lines


def _holds(name: str, path: Sequence[str]) -> str:
    """The test that the walked-to ``name`` holds the last key of ``path``."""
    if len(path) == 1:
        return f"{path[-1]!r} in {name}"
    return f"type({name}) is dict and {path[-1]!r} in {name}"
