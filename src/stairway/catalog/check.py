"""Checking a whole catalog for its vendor: every problem of every file, not the first one.

``load_catalog`` stops at the first problem, which is right before an upgrade. A vendor's CI
wants them all at once. This runs the same readers and the same rules (``loader``'s
``*_problems`` generators), keeping what each yields; a file that cannot be read at all (bad
TOML, bad SQL syntax) is one problem, and the checks that need its content skip it.
No site and no database are needed.

An adopted Alembic history is judged for every database the product runs on (``dialects.py``),
or the one asked for: a revision's SQL is rendered per dialect, and an ``expand`` label proven
on PostgreSQL may be a table rebuild on SQLite. A problem found for some of the dialects judged,
not all, names them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TypeVar

from stairway.catalog import loader
from stairway.catalog.config_migrations import load_config_migrations
from stairway.catalog.deltas import read_deltas
from stairway.catalog.dialects import supported_dialects
from stairway.catalog.history import adopted_changes, identifiers, points
from stairway.catalog.manifest import ENGINES, Manifest, load_manifest
from stairway.catalog.object_migrations import read_object_migrations
from stairway.catalog.snapshots import read_snapshots
from stairway.errors import CatalogError
from stairway.schema.change import Change, HistoryTool
from stairway.schema.earlier import Earlier
from stairway.schema.reader import parse_file_name, read_change_problems
from stairway.versions import Release

T = TypeVar("T")


class CatalogSeverity(StrEnum):
    """Whether a catalog problem keeps the catalog from loading."""

    ERROR = "error"  # the catalog does not load
    WARNING = "warning"  # reported, but the catalog still loads


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or, for a warning, worth knowing) in one file of the catalog."""

    path: str
    line: int | None
    cause: str
    fix: str
    severity: CatalogSeverity = CatalogSeverity.ERROR
    dialects: tuple[str, ...] = ()  # found only for these databases; empty: for every one judged

    @classmethod
    def of(cls, error: CatalogError) -> Problem:
        """The problem a CatalogError reports, as an error."""
        return cls(error.path, error.line, error.cause, error.hint)

    def where(self) -> str:
        """``path:line``, or the path alone when the line is not known."""
        return f"{self.path}:{self.line}" if self.line else self.path

    def describe(self) -> str:
        """The cause, after the databases it holds for when it does not hold for all."""
        return f"on {' and '.join(self.dialects)}: {self.cause}" if self.dialects else self.cause

    def as_json(self) -> dict[str, object]:
        """The problem as ``stairway check --json`` prints it."""
        return {
            "file": self.path,
            "line": self.line,
            "severity": self.severity,
            "cause": self.cause,
            "fix": self.fix,
            "dialects": list(self.dialects),
        }


@dataclass
class Report:
    """What ``check_catalog`` found, in the order of the files."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    dialects: tuple[str, ...] = ()  # the databases an adopted Alembic history was judged for

    @property
    def errors(self) -> list[Problem]:
        """The problems that stop the catalog from loading."""
        return [p for p in self.problems if p.severity is CatalogSeverity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        """The problems reported that still let the catalog load."""
        return [p for p in self.problems if p.severity is CatalogSeverity.WARNING]

    def add(self, errors: Iterable[CatalogError]) -> None:
        """Keep every problem each error reports, its ``others`` included."""
        for error in errors:
            self.problems.extend(Problem.of(e) for e in (error, *error.others))

    def attempt(self, read: Callable[[], T]) -> T | None:
        """``read()``, or None with its error kept."""
        try:
            return read()
        except CatalogError as error:
            self.add([error])
            return None


def check_catalog(root: Path, dialects: Sequence[str] = ()) -> Report:
    """Every problem of the catalog at ``root``; an empty ``errors`` means it loads. An adopted
    Alembic history is judged for ``dialects``, or (none given) every database the catalog
    says its product runs on."""
    report = Report(root)
    if not root.is_dir():
        report.add([CatalogError("no catalog directory here", path=str(root), hint=_WHERE)])
        return report
    path = root / loader.MANIFEST
    manifest = report.attempt(lambda: load_manifest(path))
    judged = tuple(dialects) or (supported_dialects(manifest) if manifest else ENGINES)
    adopted = _check_history(root, manifest, judged, report) if manifest else None
    idents = identifiers(adopted or ())
    releases = (
        report.attempt(lambda: loader.releases_of(manifest, idents, path)) if manifest else None
    )
    if releases is not None:
        report.add(loader.release_problems(releases, root / loader.MANIFEST))
    if manifest is not None and manifest.history is not None:
        shipped = [c.key for c in adopted or ()]
    else:
        shipped = _check_changes(root / "schema", report)
    if releases is not None:
        mainline = sum(1 for key in shipped if not key[1])
        report.add(loader.schema_level_problems(releases, mainline, root / loader.MANIFEST))
        report.add(loader.patch_problems(releases, shipped, root / loader.MANIFEST))
    _check_the_rest(root, manifest, releases, report, adopted)
    return report


_WHERE = "pass --catalog DIR, the directory holding stairway.toml"


def _check_changes(directory: Path, report: Report) -> list[tuple[int, int]]:
    """Problems of every change file; the numbers of the files named as changes."""
    if not directory.is_dir():
        return []
    paths = sorted(directory.iterdir())
    files = [f for p in paths if (f := report.attempt(partial(parse_file_name, p)))]
    report.add(loader.numbering_problems(files))
    earlier = Earlier()
    for file in sorted(files, key=lambda f: f.key):
        change, problems = read_change_problems(file)
        report.add(problems)
        if change is not None:
            _check_change(change, earlier, report)
    return sorted({f.key for f in files})


def _check_history(
    root: Path, manifest: Manifest, judged: tuple[str, ...], report: Report
) -> tuple[Change, ...] | None:
    """Problems of an adopted history, each dialect's own for an Alembic one (its SQL is
    rendered per dialect, the others' is read as written); its changes as the first dialect
    that reads them gives them."""
    if manifest.history is None:
        return None
    if HistoryTool(manifest.history.tool) == HistoryTool.ALEMBIC:
        report.dialects = judged
    read: list[tuple[Change, ...]] = []
    found: dict[str, list[Problem]] = {}
    for dialect in report.dialects or judged[:1]:
        part = Report(root)
        read_it = partial(adopted_changes, root, manifest, root / loader.MANIFEST, dialect)
        changes = part.attempt(read_it)
        _check_adopted(changes or (), part)
        read += [changes] if changes is not None else []
        found[dialect] = part.problems
    report.problems.extend(_labelled(found))
    return read[0] if read else None


def _labelled(found: dict[str, list[Problem]]) -> list[Problem]:
    """Each dialect's problems once, in the order first found, naming the dialects it was found
    for when that is not every one of them."""
    seen: dict[Problem, list[str]] = {}
    for dialect, problems in found.items():
        for problem in problems:
            seen.setdefault(problem, []).append(dialect)
    return [
        p if len(where) == len(found) else replace(p, dialects=tuple(where))
        for p, where in seen.items()
    ]


def _check_adopted(changes: tuple[Change, ...], report: Report) -> None:
    """Problems of every change of an adopted history (its reading stopped at the first)."""
    earlier = Earlier()
    for change in changes:
        _check_change(change, earlier, report)


def _check_change(change: Change, earlier: Earlier, report: Report) -> None:
    """One change's problems and warnings, after the changes in ``earlier``; then it joins them."""
    report.add(loader.change_problems(change, earlier))
    report.problems.extend(_warnings(change, earlier))
    earlier.add(change)


def _warnings(change: Change, earlier: Earlier) -> list[Problem]:
    problems = []
    for finding in loader.warning_findings(change, earlier):
        line, where = loader.located(change, finding.line)
        cause = f"[{finding.rule}] {finding.message}{where}"
        problems.append(Problem(str(change.path), line, cause, "", CatalogSeverity.WARNING))
    return problems


def _check_the_rest(
    root: Path,
    manifest: Manifest | None,
    releases: tuple[Release, ...] | None,
    report: Report,
    adopted: tuple[Change, ...] | None,
) -> None:
    grammar = manifest.product.versions if manifest else "pep440"
    migrations, problems = read_object_migrations(root, grammar)
    report.add(problems)
    config = report.attempt(lambda: load_config_migrations(root, grammar))
    deltas, problems = read_deltas(root, grammar)
    report.add(problems)
    if manifest is None or releases is None:
        return
    report.add(loader.object_migration_problems(manifest, releases, migrations, root))
    if config is not None:
        report.add(loader.config_migration_problems(releases, config))
    report.add(loader.delta_problems(manifest, releases, deltas, root))
    if manifest.history is None or adopted is not None:  # else the history's problem is told
        report.add(read_snapshots(root, manifest, releases, points(adopted or ()))[1])
