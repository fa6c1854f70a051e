"""Reading an Alembic history where it lies: its revisions, loaded by Alembic's own
``ScriptDirectory``, become changes numbered in one order (``linear.py``).

A revision's phase is declared by the vendor: in ``stairway.toml`` (``[history] phases``, by
revision id, for files the vendor does not edit), or in the revision file by a module-level
``STAIRWAY_PHASE = "expand"`` or a comment line ``# stairway: phase expand``. Undeclared is
offline. An expand revision is proven by the SQL Alembic renders for it offline, for the site's
database (``alembic_render.py``); one whose effect cannot be rendered is refused as expand.

A revision whose code opens an autocommit block is not transactional: it runs in parts, as
Alembic runs it (``executor.py``).
"""

from __future__ import annotations

import re
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from stairway.errors import CatalogError
from stairway.schema.change import Change, ChangeKind, HistoryTool, Origin, Phase
from stairway.schema.histories.alembic_catches import catches_failures
from stairway.schema.histories.alembic_render import autocommits, functions_of, render
from stairway.schema.histories.alembic_runtime import remember
from stairway.schema.histories.linear import NoSingleOrder, heads_after, linearise
from stairway.schema.histories.spec import HistorySpec
from stairway.schema.sqltext import checksum

if TYPE_CHECKING:
    from alembic.script import Script, ScriptDirectory

_PHASE_COMMENT = re.compile(r"^#\s*stairway:\s*phase\s+(\w+)\s*$", re.MULTILINE)


def read(spec: HistorySpec) -> tuple[Change, ...]:
    """The revisions of the Alembic history in ``spec.directory``, in Stairway's order.

    Raises:
        CatalogError: a revision that does not import, a revision named but missing, two
            heads, a cycle: the message names the file.
    """
    scripts = _scripts(spec)
    by_id = {s.revision: s for s in scripts}
    try:
        order = linearise({s.revision: s._all_down_revisions for s in scripts})
    except NoSingleOrder as err:
        raise _graph_error(spec, err, by_id) from None
    revises = {s.revision: s._versioned_down_revisions for s in scripts}
    heads = heads_after(order, revises)
    changes: list[Change] = []
    for number, revision in enumerate(order, start=1):
        before = heads[number - 2] if number > 1 else ()
        changes.append(_change(spec, number, by_id[revision], before, heads[number - 1]))
    return tuple(changes)


def script_directory(spec: HistorySpec) -> ScriptDirectory:
    """Alembic's ``ScriptDirectory`` of the history: the directory holding ``versions/``, or
    the versions directory itself."""
    from alembic.script import ScriptDirectory

    directory = spec.directory
    if (directory / "versions").is_dir():
        return ScriptDirectory(str(directory))
    return ScriptDirectory(str(directory), version_locations=[str(directory)])


def _scripts(spec: HistorySpec) -> list[Script]:
    script = script_directory(spec)
    with _loading(spec):
        scripts = list(script.revision_map._revision_map.values())
    return [s for s in scripts if s is not None]  # type: ignore[misc]


@contextmanager
def _loading(spec: HistorySpec) -> Iterator[None]:
    """Alembic's loading, with its failures and warnings turned into errors naming the file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except Exception as err:  # the product's module raised, or Alembic's graph did
            raise _graph_warning(spec, caught) or _import_error(spec, err) from None
    problem = _graph_warning(spec, caught)
    if problem:
        raise problem


def _graph_warning(spec: HistorySpec, caught: list[warnings.WarningMessage]) -> CatalogError | None:
    """Alembic only warns of a missing or repeated revision, then may fail elsewhere."""
    for warning in caught:
        text = str(warning.message)
        if "is not present" in text or "more than once" in text:
            return CatalogError(
                f"Alembic: {text}",
                path=str(_file_named(spec, text) or spec.directory),
                hint="every down_revision must name a revision of the history, once; "
                "nothing was applied",
            )
    return None


def _import_error(spec: HistorySpec, err: Exception) -> CatalogError:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if _inside(spec, f.filename)]
    where = frames[-1] if frames else None
    if where is None:
        return CatalogError(
            f"Alembic cannot read the history: {type(err).__name__}: {err}",
            path=str(spec.directory),
            hint="fix the revision files; nothing was applied",
        )
    return CatalogError(
        f"the revision does not import: {type(err).__name__}: {err}",
        path=where.filename,
        line=where.lineno,
        hint="fix the revision (or install what it imports); nothing was applied",
    )


def _inside(spec: HistorySpec, filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(spec.directory)
    except OSError:
        return False


def _file_named(spec: HistorySpec, text: str) -> Path | None:
    for word in re.findall(r"[\w.-]+", text):
        for path in sorted(spec.directory.rglob("*.py")):
            if _revision_of(path) == word:
                return path
    return None


def _revision_of(path: Path) -> str | None:
    match = re.search(r"^revision\s*(?::\s*str\s*)?=\s*['\"]([^'\"]+)['\"]", path.read_text(), re.M)
    return match.group(1) if match else None


def _graph_error(spec: HistorySpec, err: NoSingleOrder, by_id: dict[str, Script]) -> CatalogError:
    files = [Path(by_id[r].path).name for r in err.revisions if r in by_id]
    first = by_id.get(err.revisions[0]) if err.revisions else None
    return CatalogError(
        f"{err} ({', '.join(files[:6])}): the history has no single order",
        path=str(Path(first.path)) if first else str(spec.directory),
        hint="merge the heads with `alembic merge`, or fix the down_revision that is wrong; "
        "nothing was applied",
    )


def _change(
    spec: HistorySpec,
    number: int,
    script: Script,
    before: tuple[str, ...],
    after: tuple[str, ...],
) -> Change:
    path = Path(script.path)
    text = path.read_text(encoding="utf-8")
    digest = checksum(text)
    phase = _phase(spec, script.revision, path, text)
    # an expand label is proven now; other revisions' SQL is rendered when asked for (sql_of)
    statements, opaque = (
        render(path, script.module, spec.table, "upgrade", functions_of(path), spec.dialect)
        if phase == Phase.EXPAND
        else ((), "")
    )
    has_down = _has_down(script.module)
    remember(path, digest, script.module)
    return Change(
        number=number,
        name=path.stem,
        path=path,
        kind=ChangeKind.ALEMBIC,
        phase=phase,
        checksum=digest,
        transactional=not autocommits(path, text),  # runs in parts, as Alembic runs it
        statements=statements,
        has_python_down=has_down,  # what it loses is rendered when a downgrade is asked for
        description=" ".join((script.doc or "").split()),
        origin=Origin(HistoryTool.ALEMBIC, script.revision, spec.table, before, after),
        opaque=opaque,
        catches=catches_failures(text),  # its DDL sent one statement at a time (ddl_pipeline)
        dialect=spec.dialect,
    )


def _phase(spec: HistorySpec, revision: str, path: Path, text: str) -> Phase:
    if revision in spec.phases:
        return spec.phases[revision]
    declared = _declared_phase(text)
    if declared is None:
        return Phase.OFFLINE
    try:
        phase = Phase(declared)
    except ValueError:
        phase = None
    if phase is None or phase == Phase.BACKGROUND:
        raise CatalogError(
            f"phase {declared!r} is not one a revision can declare",
            path=str(path),
            hint="declare expand, contract or offline",
        )
    return phase


def _declared_phase(text: str) -> str | None:
    match = re.search(r"^STAIRWAY_PHASE\s*=\s*['\"](\w+)['\"]", text, re.MULTILINE)
    if match is None:
        match = _PHASE_COMMENT.search(text)
    return match.group(1) if match else None


def _has_down(module: ModuleType) -> bool:
    """Whether ``downgrade()`` does something: Alembic writes ``pass`` into new revisions.

    Read from the loaded function's code, not by parsing the file again: a body of ``pass``
    (with or without a docstring) names nothing, holds no constant but ``None`` and its
    docstring, and is as short as :func:`_does_nothing`."""
    down = getattr(module, "downgrade", None)
    code = getattr(down, "__code__", None)
    if code is None:
        return False
    trivial = (None, getattr(down, "__doc__", None))
    return (
        bool(code.co_names)
        or any(constant not in trivial for constant in code.co_consts)
        or len(code.co_code) > len(_does_nothing.__code__.co_code)
    )


def _does_nothing() -> None:
    """A docstring is not code."""
