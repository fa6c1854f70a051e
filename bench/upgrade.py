"""``upgrade``: ``stairway upgrade`` of a PostgreSQL site against the same parts done by hand.

Two identical databases of ~1 KB JSONB objects. On one, ``stairway upgrade --to 2.0.0`` runs
the whole thing: verify (which reads every object), backup (pg_dump into a checked archive),
maintenance, the expand change, the rewrite of every object (a rename), the journal. On the
other, the parts an operator would run by hand: ``pg_dump -Fc``, the change's SQL through
``psql``, and the same bulk object rewrite. The ratio is the whole upgrade's time over the parts'.
Goal: at most 1.2. The downtime (from the stop step to a healthy service) is reported apart.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psycopg

from bench.harness import Result, Sizes, TempDatabase, conninfo, temp_database
from bench.object_rewrite import CREATE
from stairway import context, operations, upgrade
from stairway.database import engine_for
from stairway.journal import Journal
from stairway.objects.migrate import Migrator
from stairway.objects.rewrite import rewrite_all
from stairway.objects.store import ObjectStore

NAME = "upgrade"
GOAL = 1.2
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
OBJECTS = """[[migration]]
type = "User"
since = "2.0.0"
op = "rename"
path = "fullName"
to = "displayName"
"""


def run(sizes: Sizes) -> Result:
    with (
        tempfile.TemporaryDirectory(prefix="bench-upgrade-") as scratch,
        temp_database("upgrade") as subject_db,
        temp_database("byhand") as baseline_db,
    ):
        root = Path(scratch)
        site = _site(root, subject_db)
        _populate(subject_db, sizes.objects, stairway_site=site)
        _populate(baseline_db, sizes.objects)
        ctx = context.open_context(site, None)
        started = time.perf_counter()
        report = upgrade.upgrade(ctx, "2.0.0")
        subject = time.perf_counter() - started
        baseline, parts = _by_hand(root, baseline_db, ctx)
        steps, downtime = _from_journal(root / "backups", str(report.upgrade_id))
    return Result(
        name=NAME,
        subject=f"stairway upgrade, {sizes.objects:,} objects on PostgreSQL",
        baseline="pg_dump -Fc + the change through psql + the same object rewrite",
        subject_seconds=subject,
        baseline_seconds=baseline,
        goal=GOAL,
        timings={"upgrade_s": [subject], "by_hand_s": [baseline]},
        details={
            "objects": sizes.objects,
            "downtime_s": round(downtime, 3),
            **{f"step_{k}_s": round(v, 3) for k, v in steps.items()},
            **{f"by_hand_{k}_s": round(v, 3) for k, v in parts.items()},
        },
    )


def _site(root: Path, db: TempDatabase) -> Path:
    catalog = root / "catalog"
    (catalog / "schema").mkdir(parents=True)
    (catalog / "stairway.toml").write_text(MANIFEST, "utf-8")
    (catalog / "objects.toml").write_text(OBJECTS, "utf-8")
    (catalog / "schema" / "0001_objects.sql").write_text("-- phase: offline\n" + TABLE, "utf-8")
    (catalog / "schema" / "0002_note.sql").write_text("-- phase: expand\n" + CHANGE, "utf-8")
    site = root / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "{db.url}"\ncatalog = "{catalog}"\nbackup_dir = "backups"\n', "utf-8"
    )
    return site


def _populate(db: TempDatabase, count: int, stairway_site: Path | None = None) -> None:
    if stairway_site is not None:
        operations.init(context.open_context(stairway_site, None), "1.0.0")
    insert = CREATE.format(table="objects", count=count).split(";", 1)[1]
    with psycopg.connect(conninfo(db.name), autocommit=True) as conn:
        if stairway_site is None:
            conn.execute(TABLE.encode())
        conn.execute(insert.encode())
        conn.execute(b"VACUUM ANALYZE objects")


def _by_hand(root: Path, db: TempDatabase, ctx: context.Context) -> tuple[float, dict[str, float]]:
    parts: dict[str, float] = {}
    started = time.perf_counter()
    dump = root / "by-hand.pgdump"
    subprocess.run(
        ["pg_dump", "--format=custom", f"--file={dump}", f"--dbname={conninfo(db.name)}"],
        check=True,
        env=dict(os.environ),
    )
    parts["pg_dump"] = time.perf_counter() - started
    mark = time.perf_counter()
    subprocess.run(["psql", "-q", "-c", CHANGE, conninfo(db.name)], check=True)
    parts["psql"] = time.perf_counter() - mark
    mark = time.perf_counter()
    assert ctx.catalog.objects is not None
    store = ObjectStore(
        engine_for(db.url), ctx.catalog.objects, Migrator(ctx.catalog.object_migrations), "2.0.0"
    )
    rewrite_all(store)
    parts["rewrite"] = time.perf_counter() - mark
    return time.perf_counter() - started, parts


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
