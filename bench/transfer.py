"""``transfer``: export and import of ~1 KB objects on PostgreSQL against raw ``COPY``.

One table of documents written by release 1.0.0. The baselines are PostgreSQL's own
``COPY objects TO STDOUT`` into a file and ``COPY ... FROM STDIN`` of that file into an empty
copy of the table, measured in the same run. The subjects are ``stairway export`` (checked
chunks, zstd, resumable) and ``stairway import`` of that export into a site running 2.0.0, so
every object is migrated (fullName -> displayName) while it is parsed; both with two worker
processes, one per core. Ratios are Stairway's
objects/s over COPY's; the goal is an import with migrations at no less than half of raw COPY.
The time for 100,000,000 objects is extrapolated from the measured rates.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import psycopg

from bench.harness import Result, Sizes, TempDatabase, conninfo, temp_database
from bench.object_rewrite import CREATE, RENAME
from stairway.database import engine_for
from stairway.objects.migrate import Migrator
from stairway.objects.spec import ObjectsModel
from stairway.objects.store import ObjectStore
from stairway.transfer.export import export_objects
from stairway.transfer.importer import import_objects

NAME = "transfer"
GOAL = 0.5
WORKERS = 2
HUNDRED_MILLION = 100_000_000


def run(sizes: Sizes) -> Result:
    with temp_database("transfer") as db, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        _populate(db, sizes.objects)
        copy_out = _copy_out(db, work / "copy.txt")
        copy_in = _copy_in(db, work / "copy.txt")
        exported = _export(db, work / "site.export.zst")
        imported = _import(db, work / "site.export.zst")
        _check(db, sizes.objects)
        export_bytes = (work / "site.export.zst").stat().st_size
        copy_bytes = (work / "copy.txt").stat().st_size
    rates = {
        "copy_to_objects_per_s": sizes.objects / copy_out,
        "copy_from_objects_per_s": sizes.objects / copy_in,
        "export_objects_per_s": sizes.objects / exported,
        "import_objects_per_s": sizes.objects / imported,
    }
    return Result(
        name=NAME,
        subject=f"stairway import of {sizes.objects:,} objects, each migrated, {WORKERS} workers",
        baseline="COPY ... FROM STDIN of the same rows into an empty copy of the table",
        subject_seconds=imported,
        baseline_seconds=copy_in,
        goal=GOAL,
        measure="throughput",
        timings={
            "copy_to_s": [copy_out],
            "copy_from_s": [copy_in],
            "export_s": [exported],
            "import_s": [imported],
        },
        notes=[
            f"export: {rates['export_objects_per_s']:,.0f} objects/s, ratio "
            f"{copy_out / exported:.2f} of COPY TO ({rates['copy_to_objects_per_s']:,.0f}/s)",
            f"import: {rates['import_objects_per_s']:,.0f} objects/s, ratio "
            f"{copy_in / imported:.2f} of COPY FROM ({rates['copy_from_objects_per_s']:,.0f}/s)",
            f"100,000,000 objects at these rates: export "
            f"{HUNDRED_MILLION / rates['export_objects_per_s'] / 3600:.2f} h, import "
            f"{HUNDRED_MILLION / rates['import_objects_per_s'] / 3600:.2f} h",
        ],
        details={
            "objects": sizes.objects,
            "export_ratio_to_copy_to": copy_out / exported,
            "import_ratio_to_copy_from": copy_in / imported,
            **rates,
            "export_bytes": export_bytes,
            "copy_text_bytes": copy_bytes,
            "export_100m_hours": HUNDRED_MILLION / rates["export_objects_per_s"] / 3600,
            "import_100m_hours": HUNDRED_MILLION / rates["import_objects_per_s"] / 3600,
        },
    )


def _populate(db: TempDatabase, count: int) -> None:
    with psycopg.connect(conninfo(db.name), autocommit=True) as conn:
        conn.execute(CREATE.format(table="objects", count=count).encode())
        for table in ("copied", "imported"):
            conn.execute(f"CREATE TABLE {table} (LIKE objects INCLUDING ALL)".encode())
        conn.execute(b"VACUUM ANALYZE")


def _copy_out(db: TempDatabase, path: Path) -> float:
    with psycopg.connect(conninfo(db.name)) as conn, path.open("wb") as out:
        started = time.perf_counter()
        with conn.cursor().copy(b"COPY objects TO STDOUT") as copy:
            for block in copy:
                out.write(block)
        out.flush()
        os.fsync(out.fileno())
        return time.perf_counter() - started


def _copy_in(db: TempDatabase, path: Path) -> float:
    with psycopg.connect(conninfo(db.name)) as conn, path.open("rb") as source:
        started = time.perf_counter()
        with conn.cursor().copy(b"COPY copied FROM STDIN") as copy:
            while block := source.read(1 << 20):
                copy.write(block)
        conn.commit()
        return time.perf_counter() - started


def _store(db: TempDatabase, table: str, current: str) -> ObjectStore:
    spec = ObjectsModel(table=table, version="written_by")
    return ObjectStore(engine_for(db.url), spec, Migrator([RENAME]), current)


def _export(db: TempDatabase, path: Path) -> float:
    store = _store(db, "objects", "1.0.0")
    header = {"product": "bench", "version": "1.0.0", "schema_level": 0}
    started = time.perf_counter()
    export_objects(store, path, header, workers=WORKERS)
    return time.perf_counter() - started


def _import(db: TempDatabase, path: Path) -> float:
    store = _store(db, "imported", "2.0.0")
    started = time.perf_counter()
    report = import_objects(store, path, "bench", workers=WORKERS)
    elapsed = time.perf_counter() - started
    assert report.complete and not report.problems and not report.rejected, report.problems
    return elapsed


def _check(db: TempDatabase, count: int) -> None:
    """Both sides moved every row; every imported object came out migrated."""
    for table in ("copied", "imported"):
        assert db.scalar(f"SELECT count(*) FROM {table}") == count, table
    left = db.scalar("SELECT count(*) FROM imported WHERE data ? 'fullName'")
    assert left == 0, left
