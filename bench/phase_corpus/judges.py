"""The judges of the corpus: Stairway's phase check and squawk, each timed over all of it.

A judge answers, for every migration, whether it would stop it as an expand change. Both are
timed over the whole corpus in one go, so per-call start-up is counted once for each.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.harness import timed
from bench.phase_corpus.corpus import Migration
from stairway.schema.change import Phase
from stairway.schema.phases import check_phase
from stairway.schema.shape import Shape
from stairway.schema.sqltext import SqlSyntaxError, split_statements


@dataclass(frozen=True)
class Verdicts:
    """Which migrations a judge flagged (by project and revision), and how long it took."""

    flagged: frozenset[tuple[str, str]]
    seconds: float


def refused_as_expand(sql: str, earlier: Callable[[], Shape] | None = None) -> bool:
    """Whether Stairway refuses ``sql`` declared as expand (any blocking finding), after the
    schema ``earlier`` gives."""
    try:
        statements = split_statements(sql)
    except SqlSyntaxError:
        return True  # a change Stairway cannot read is refused before it runs
    findings = check_phase(statements, Phase.EXPAND, dialect="postgres", earlier=earlier)
    return any(finding.blocking for finding in findings)


class _History:
    """One project's migrations before the one judged, replayed only when a rule asks, as a
    catalog's earlier changes are (stairway.schema.earlier)."""

    def __init__(self) -> None:
        self._shape = Shape.empty()
        self._pending: list[Migration] = []

    def add(self, migration: Migration) -> None:
        self._pending.append(migration)

    def shape(self) -> Shape:
        for migration in self._pending:
            try:
                self._shape = self._shape.after(migration.sql)
            except SqlSyntaxError:
                self._shape = Shape.empty()  # what it did is not known
            if migration.method == "failed":
                self._shape = Shape.empty()
        self._pending.clear()
        return self._shape


def stairway(migrations: Sequence[Migration], corpus: Sequence[Migration]) -> Verdicts:
    """Stairway's verdict on every migration of ``migrations``; ``corpus`` is every rendered
    migration of each project in its history's order, so each is judged on the schema the
    ones before it left."""
    wanted = {m.key for m in migrations}

    def judge() -> frozenset[tuple[str, str]]:
        histories: dict[str, _History] = {}
        flagged = set()
        for migration in corpus:
            history = histories.setdefault(migration.project, _History())
            if migration.key in wanted and refused_as_expand(migration.sql, history.shape):
                flagged.add(migration.key)
            history.add(migration)
        return frozenset(flagged)

    flagged, seconds = timed(judge)
    return Verdicts(flagged, seconds)


# squawk's rules asking every file to SET lock_timeout / statement_timeout fire on any migration
# that takes a lock, safe or not; its second baseline runs without them.
TIMEOUT_RULES = ("require-lock-timeout", "require-statement-timeout")


def squawk(
    executable: Path, migrations: Sequence[Migration], exclude: Sequence[str] = ()
) -> Verdicts:
    """squawk's verdict: any violation of its default rules but ``exclude``, each file assumed
    in a transaction."""
    with tempfile.TemporaryDirectory(prefix="phase-corpus-") as directory:
        files = _write_files(Path(directory), migrations)
        command = [str(executable), "--assume-in-transaction", "--reporter", "json"]
        command += [f"--exclude={','.join(exclude)}"] if exclude else []
        done, seconds = timed(
            lambda: subprocess.run([*command, *files], capture_output=True, text=True, check=False)
        )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"squawk failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    names = {Path(f).name: m.key for f, m in zip(files, migrations, strict=True)}
    violations = json.loads(done.stdout or "[]")
    return Verdicts(frozenset(names[Path(v["file"]).name] for v in violations), seconds)


def _write_files(directory: Path, migrations: Sequence[Migration]) -> list[str]:
    files = []
    for migration in migrations:
        path = directory / f"{migration.project}_{migration.revision}.sql"
        path.write_text(migration.sql, encoding="utf-8")
        files.append(str(path))
    return files
