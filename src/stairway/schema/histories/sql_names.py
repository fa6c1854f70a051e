"""Finding a SQL history's migrations by their file names, as the tool itself finds them
(docs/adopting-sql.md), before any file is read.

Flyway: ``V<version>__<description>.sql``, an undo ``U<version>__<description>.sql``, a repeatable
``R__<description>.sql`` (``find_repeatables``), searched
in subdirectories too; versions are compared part by part as numbers. golang-migrate:
``<version>_<title>.up.sql`` and ``.down.sql``. dbmate: ``<version>_<name>.sql``, both
directions in one file. A ``.sql`` file that does not follow the tool's naming is refused rather
than skipped: the tool would skip it too, and a migration nobody runs is a lost one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from stairway.errors import CatalogError
from stairway.schema.change import HistoryTool


@dataclass(frozen=True)
class Found:
    """One migration found by name: its identifier as the tool records it, where it sorts, and
    its files (``down`` is None when it has none, or when both directions share ``up``)."""

    ident: str
    key: tuple[int, ...]
    name: str
    up: Path
    down: Path | None = None
    description: str = ""  # Flyway's description: the name's words, underscores as spaces
    script: str = ""  # the up file relative to the history's directory


_FLYWAY = re.compile(r"^(?P<kind>[VUR])(?P<version>.*?)__(?P<description>.*)\.sql$")
_FLYWAY_VERSION = re.compile(r"^\d+(?:[._]\d+)*$")
_GOLANG = re.compile(r"^(?P<version>\d+)_(?P<title>.*)\.(?P<direction>up|down)\.sql$")
_DBMATE = re.compile(r"^(?P<version>\d+)(?P<rest>.*)\.sql$")


def flyway_key(version: str) -> tuple[int, ...]:
    """Where a Flyway version sorts: its parts as numbers, trailing zeros dropped, so ``1.0``
    is ``1`` and ``1.10`` comes after ``1.9`` (Flyway's own comparison).

    Raises:
        ValueError: not a version of digits separated by ``.`` or ``_``.
    """
    if not _FLYWAY_VERSION.match(version):
        raise ValueError(f"{version!r} is not a Flyway version")
    parts = [int(p) for p in re.split(r"[._]", version)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def find(tool: HistoryTool, directory: Path) -> list[Found]:
    """The migrations of ``directory`` in ``tool``'s layout, in the order they apply.

    Raises:
        CatalogError: a misnamed file, a duplicate version, a down without its up, a Flyway
            integer version missing from 1..N; the message names the file.
    """
    finders: dict[HistoryTool, Callable[[Path], list[Found]]] = {
        HistoryTool.FLYWAY: _flyway,
        HistoryTool.GOLANG_MIGRATE: _golang_migrate,
        HistoryTool.DBMATE: _dbmate,
    }
    return sorted(finders[tool](directory), key=lambda f: f.key)


def _sql_files(directory: Path, recursive: bool) -> list[Path]:
    found = directory.rglob("*.sql") if recursive else directory.glob("*.sql")
    hidden = [p for p in found if not any(part.startswith(".") for part in p.parts)]
    return sorted(p for p in hidden if p.is_file())


def _misnamed(path: Path, pattern: str, hint: str) -> CatalogError:
    return CatalogError(
        f"{path.name} is not named as a migration: {pattern}",
        path=str(path),
        hint=hint,
    )


def _twice(what: str, path: Path, other: str) -> CatalogError:
    return CatalogError(
        f"{what} is used twice: {path.name} and {other}",
        path=str(path),
        hint="give every migration its own version; the tool itself would refuse this history",
    )


def _flyway(directory: Path) -> list[Found]:
    versioned: dict[tuple[int, ...], Found] = {}
    undo: dict[tuple[int, ...], Path] = {}
    for path in _sql_files(directory, recursive=True):
        match = _flyway_match(path)
        if match["kind"] == "R":
            continue  # read by find_repeatables
        key = flyway_key(match["version"])
        table = versioned if match["kind"] == "V" else undo
        if key in table:
            other = table[key]
            raise _twice(f"Flyway version {match['version']}", path, _relative(other, directory))
        if match["kind"] == "U":
            undo[key] = path
        else:
            versioned[key] = _flyway_found(directory, path, match, key)
    _refuse_lone_undo(undo, versioned)
    _refuse_gap(versioned.values())
    return [_with_undo(f, undo.get(f.key)) for f in versioned.values()]


def _relative(item: Found | Path, directory: Path) -> str:
    path = item.up if isinstance(item, Found) else item
    return path.relative_to(directory).as_posix()


def _flyway_match(path: Path) -> re.Match[str]:
    match = _FLYWAY.match(path.name)
    hint = (
        "name it V<version>__<description>.sql (two underscores, a capital V; version digits "
        "separated by . or _), or U<version>__... for its undo; move Flyway callbacks "
        "(beforeMigrate.sql ...) and other SQL out of the history: Stairway does not run them"
    )
    if match is None:
        raise _misnamed(path, "Flyway's V<version>__<description>.sql", hint)
    if match["kind"] == "R" and match["version"]:
        raise _misnamed(
            path,
            "Flyway's R__<description>.sql: a repeatable migration has no version",
            "name it R__<description>.sql, or V<version>__... for a versioned migration",
        )
    if match["kind"] == "R":
        return match
    if not _FLYWAY_VERSION.match(match["version"]):
        raise _misnamed(
            path, f"version {match['version']!r} is not digits separated by . or _", hint
        )
    return match


def _flyway_found(directory: Path, path: Path, match: re.Match[str], key: tuple[int, ...]) -> Found:
    return Found(
        ident=match["version"].replace("_", "."),  # the version column, as Flyway writes it
        key=key,
        name=path.stem,
        up=path,
        description=match["description"].replace("_", " "),
        script=_relative(path, directory),
    )


def _with_undo(found: Found, undo: Path | None) -> Found:
    if undo is None:
        return found
    return Found(
        found.ident, found.key, found.name, found.up, undo, found.description, found.script
    )


def _refuse_lone_undo(
    undo: dict[tuple[int, ...], Path], versioned: dict[tuple[int, ...], Found]
) -> None:
    for key, path in sorted(undo.items()):
        if key not in versioned:
            raise CatalogError(
                f"{path.name} undoes a version no V file has",
                path=str(path),
                hint="an undo file U<version>__... sits beside its V<version>__...; remove it "
                "or restore the migration it undoes",
            )


def _refuse_gap(versioned: Iterable[Found]) -> None:
    """Versions 1, 2, 3 ... written as plain integers must have none missing: a hole there
    usually means a lost file. Dotted versions and other sequences are only ordered."""
    found = sorted(versioned, key=lambda f: f.key)
    if not found or any(len(f.key) != 1 or "." in f.ident for f in found) or found[0].key != (1,):
        return
    for before, after in pairwise(found):
        if after.key[0] != before.key[0] + 1:
            raise CatalogError(
                f"Flyway versions run 1, 2, 3 ... but {before.key[0] + 1} is missing "
                f"(before {after.up.name})",
                path=str(after.up),
                hint="restore the missing migration file; a sequence of plain integers with "
                "a hole usually means one was lost",
            )


def _golang_migrate(directory: Path) -> list[Found]:
    ups: dict[int, Path] = {}
    downs: dict[int, Path] = {}
    for path in _sql_files(directory, recursive=False):
        match = _GOLANG.match(path.name)
        if match is None:
            raise _misnamed(
                path,
                "golang-migrate's <version>_<title>.up.sql or .down.sql",
                "name it e.g. 000001_create_users.up.sql (and .down.sql for its down "
                "direction), or move it out of the migrations directory",
            )
        version = int(match["version"])
        table = ups if match["direction"] == "up" else downs
        if version in table:
            raise _twice(f"golang-migrate version {version}", path, table[version].name)
        table[version] = path
    for version, path in sorted(downs.items()):
        if version not in ups:
            raise CatalogError(
                f"{path.name} has no {_up_name(path)}: a down migration without its up",
                path=str(path),
                hint="add the up file of the same version, or remove the down file",
            )
    return [_golang_found(v, p, downs.get(v)) for v, p in ups.items()]


def _up_name(path: Path) -> str:
    """The up file a golang-migrate down file pairs with."""
    return path.name.removesuffix(".down.sql") + ".up.sql"


def _golang_found(version: int, up: Path, down: Path | None) -> Found:
    name = up.name.removesuffix(".up.sql")
    return Found(str(version), (version,), name, up, down, script=up.name)


def _dbmate(directory: Path) -> list[Found]:
    found: dict[int, Found] = {}
    for path in _sql_files(directory, recursive=False):
        match = _DBMATE.match(path.name)
        if match is None:
            raise _misnamed(
                path,
                "dbmate's <version>_<name>.sql",
                "name it e.g. 20240101120000_create_users.sql, or move it out of the "
                "migrations directory",
            )
        key = int(match["version"])
        if key in found:
            raise _twice(f"dbmate version {match['version']}", path, found[key].up.name)
        found[key] = Found(match["version"], (key,), path.stem, path, script=path.name)
    return list(found.values())


def find_repeatables(directory: Path) -> list[Found]:
    """Flyway's repeatable migrations ``R__<description>.sql`` of ``directory`` (searched in
    subdirectories too), in the order Flyway applies them: by description.

    Raises:
        CatalogError: a misnamed file, or two repeatables with one description.
    """
    found: dict[str, Found] = {}
    for path in _sql_files(directory, recursive=True):
        match = _flyway_match(path)
        if match["kind"] != "R":
            continue
        description = match["description"].replace("_", " ")
        if description in found:
            raise _twice(
                f"the repeatable description {description!r}", path, found[description].script
            )
        script = _relative(path, directory)
        found[description] = Found("", (), path.stem, path, description=description, script=script)
    return [found[d] for d in sorted(found)]
