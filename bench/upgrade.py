"""``upgrade``: ``stairway upgrade`` of a PostgreSQL site against the same upgrade done by hand.

A site at 1.0.0 with ~1 KB JSONB objects is built once and copied (``CREATE DATABASE ...
TEMPLATE``) for every run, outside the clock. On one copy, ``stairway upgrade --to 2.0.0`` runs
the whole thing: verify (which reads every object), backup (pg_dump into a checked archive),
maintenance, the expand change, the rewrite of every object, the journal. On another, what an
operator would type instead: ``pg_dump -Fc`` of the database, the change's SQL through
``psql``, and through ``psql`` one ``UPDATE objects SET data = jsonb_set(data - 'old',
'{new}', data -> 'old'), written_by = '2.0.0'`` per renamed key. Both are generated from
``RENAMES``, the one list of object migrations, so they do exactly the same changes.

Runs alternate who goes first, ``MIN_REPEATS`` of each; the ratio is the median whole
upgrade's time over the median by hand. Goal: at most 1.1. The downtime (from the stop step
to a healthy service) is reported apart.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from bench.harness import (
    MIN_REPEATS,
    Result,
    Sizes,
    TempDatabase,
    alternate,
    conninfo,
    require_tool,
    temp_database,
)
from bench.object_rewrite import CREATE
from stairway import context, operations, upgrade
from stairway.database import dispose_all
from stairway.journal import Journal

NAME = "upgrade"
GOAL = 1.1  # of the honest by-hand sum
CHANGE = "ALTER TABLE objects ADD COLUMN note TEXT;"
TABLE = (
    "CREATE TABLE objects (oid TEXT PRIMARY KEY, type TEXT NOT NULL, data JSONB NOT NULL,\n"
    "                      written_by TEXT);\n"
)
MANIFEST = """[product]
name = "bench"

[objects]
version = "written_by"

[[release]]
version = "1.0.0"
schema = 1

[[release]]
version = "2.0.0"
schema = 2
"""
TARGET = "2.0.0"
# The object migrations of 2.0.0: (type, key, new key). Stairway's objects.toml and the
# operator's UPDATEs are both written from this list.
RENAMES = (("User", "fullName", "displayName"),)


@dataclass(frozen=True)
class Workspace:
    """What every run copies: the catalog, and the site database at 1.0.0."""

    root: Path
    catalog: Path
    template: TempDatabase


def objects_toml() -> str:
    return "".join(
        f'[[migration]]\ntype = "{kind}"\nsince = "{TARGET}"\nop = "rename"\n'
        f'path = "{old}"\nto = "{new}"\n\n'
        for kind, old, new in RENAMES
    )


def by_hand_updates() -> list[str]:
    """One UPDATE per renamed key, as an operator would write it."""
    return [
        f"UPDATE objects SET data = jsonb_set(data - '{old}', '{{{new}}}', data -> '{old}'), "
        f"written_by = '{TARGET}' WHERE type = '{kind}' AND data ? '{old}';"
        for kind, old, new in RENAMES
    ]


def run(sizes: Sizes) -> Result:
    require_tool("pg_dump", "postgresql-client")
    require_tool("psql", "postgresql-client")
    with (
        tempfile.TemporaryDirectory(prefix="bench-upgrade-") as scratch,
        temp_database("upgrade_template") as template,
    ):
        space = _workspace(Path(scratch), template, sizes.objects)
        steps: list[dict[str, float]] = []
        downtimes: list[float] = []
        parts: list[dict[str, float]] = []

        def subject() -> float:
            seconds, step, down = _stairway(space, sizes.objects)
            steps.append(step)
            downtimes.append(down)
            return seconds

        def baseline() -> float:
            seconds, part = _by_hand(space, sizes.objects)
            parts.append(part)
            return seconds

        runs = alternate(subject, baseline, MIN_REPEATS)
    return Result(
        name=NAME,
        subject=f"stairway upgrade, {sizes.objects:,} objects on PostgreSQL",
        baseline=f"pg_dump -Fc + the change through psql + {len(RENAMES)} UPDATE ... jsonb_set",
        runs=runs,
        goal=GOAL,
        timings={
            "upgrade_s": list(runs.subject),
            "by_hand_s": list(runs.baseline),
            "downtime_s": downtimes,
            **{f"step_{k}_s": [s[k] for s in steps] for k in steps[0]},
            **{f"by_hand_{k}_s": [p[k] for p in parts] for k in parts[0]},
        },
        details={
            "objects": sizes.objects,
            "downtime_median_s": round(statistics.median(downtimes), 3),
            **{
                f"step_{k}_median_s": round(statistics.median(s[k] for s in steps), 3)
                for k in steps[0]
            },
            **{
                f"by_hand_{k}_median_s": round(statistics.median(p[k] for p in parts), 3)
                for k in parts[0]
            },
        },
        notes=[f"downtime median {statistics.median(downtimes):.3f} s"],
    )


def _workspace(root: Path, template: TempDatabase, count: int) -> Workspace:
    catalog = root / "catalog"
    (catalog / "schema").mkdir(parents=True)
    (catalog / "stairway.toml").write_text(MANIFEST, "utf-8")
    (catalog / "objects.toml").write_text(objects_toml(), "utf-8")
    (catalog / "schema" / "0001_objects.sql").write_text("-- phase: offline\n" + TABLE, "utf-8")
    (catalog / "schema" / "0002_note.sql").write_text("-- phase: expand\n" + CHANGE, "utf-8")
    site = _site(root / "template", catalog, template)
    operations.init(context.open_context(site, None), "1.0.0")
    insert = CREATE.format(table="objects", count=count).split(";", 1)[1]
    with psycopg.connect(conninfo(template.name), autocommit=True) as conn:
        conn.execute(insert.encode())
        conn.execute(b"VACUUM ANALYZE objects")
    dispose_all()
    return Workspace(root, catalog, template)


def _site(directory: Path, catalog: Path, db: TempDatabase) -> Path:
    directory.mkdir(parents=True)
    site = directory / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "{db.url}"\ncatalog = "{catalog}"\nbackup_dir = "backups"\n', "utf-8"
    )
    return site


def _stairway(space: Workspace, count: int) -> tuple[float, dict[str, float], float]:
    """One whole upgrade on a fresh copy: its seconds, each step's, and the downtime."""
    with temp_database("upgrade", template=space.template) as db:
        directory = Path(tempfile.mkdtemp(prefix="stairway-", dir=space.root))
        ctx = context.open_context(_site(directory / "site", space.catalog, db), None)
        started = time.perf_counter()
        report = upgrade.upgrade(ctx, TARGET)
        seconds = time.perf_counter() - started
        steps, downtime = _from_journal(directory / "site" / "backups", str(report.upgrade_id))
        _check(db, count)
    shutil.rmtree(directory)
    return seconds, steps, downtime


def _by_hand(space: Workspace, count: int) -> tuple[float, dict[str, float]]:
    """The same upgrade by hand on a fresh copy: its seconds, and each command's."""
    with temp_database("byhand", template=space.template) as db:
        directory = Path(tempfile.mkdtemp(prefix="by-hand-", dir=space.root))
        target = conninfo(db.name)
        commands = {
            "pg_dump": ["pg_dump", "--format=custom", f"--file={directory / 'dump'}", target],
            "psql_change": ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-c", CHANGE, target],
            **{
                f"psql_update_{n}": ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-c", update, target]
                for n, update in enumerate(by_hand_updates(), start=1)
            },
        }
        parts: dict[str, float] = {}
        started = time.perf_counter()
        for name, command in commands.items():
            mark = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            parts[name] = time.perf_counter() - mark
        seconds = time.perf_counter() - started
        _check(db, count)
    shutil.rmtree(directory)
    return seconds, parts


def _check(db: TempDatabase, count: int) -> None:
    """Both sides end the same: the column added, every object renamed and stamped 2.0.0."""
    assert (
        db.scalar(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'objects' AND column_name = 'note'"
        )
        == 1
    )
    assert db.scalar(f"SELECT count(*) FROM objects WHERE written_by = '{TARGET}'") == count
    for _kind, old, new in RENAMES:
        assert db.scalar(f"SELECT count(*) FROM objects WHERE data ? '{old}'") == 0, old
        assert db.scalar(f"SELECT count(*) FROM objects WHERE data ? '{new}'") == count, new


def _from_journal(backup_dir: Path, upgrade_id: str) -> tuple[dict[str, float], float]:
    """Each step's duration, and the downtime from the stop step to a healthy service."""
    state = next(h for h in Journal(backup_dir).history() if h.upgrade_id == upgrade_id)
    kinds = [s["kind"] for s in state.plan["steps"]]
    times: dict[tuple[int, str], datetime] = {}
    for record in state.records:
        if record.step is not None and record.event in ("begin", "done"):
            times[(record.step, record.event)] = datetime.fromisoformat(record.at)
    steps = {
        f"{index}_{kind}": (times[(index, "done")] - times[(index, "begin")]).total_seconds()
        for index, kind in enumerate(kinds)
    }
    down = times[(kinds.index("health"), "done")] - times[(kinds.index("stop"), "begin")]
    return steps, down.total_seconds()
