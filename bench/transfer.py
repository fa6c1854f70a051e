"""``transfer``: export and import of ~1 KB objects on PostgreSQL against parallel raw ``COPY``.

One table of documents written by release 1.0.0. The subjects are ``stairway export`` (checked
chunks, zstd, resumable) and ``stairway import`` of that export into a site running 2.0.0, so
every object is migrated (fullName -> displayName) while it is parsed; both with ``WORKERS``
worker processes, one per core. The baselines use as many streams: ``WORKERS`` connections,
each running ``COPY (SELECT ... WHERE oid in its range) TO STDOUT`` into its own file, in
parallel threads; then ``WORKERS`` connections each ``COPY ... FROM STDIN`` of one of those
files (its share of the same rows) into an empty copy of the table. The ranges are split at the
oid quantiles before the clock starts (Stairway's export computes its own inside its time).

Each pair runs ``sizes.repeats`` times (``MIN_REPEATS``; once under ``--scale`` at its largest
sizes), taking turns at going first; the tables are emptied and the export file removed between
runs, outside the clock. Two results: import (the goal: with
migrations at no less than 0.6 of parallel COPY's objects/s) and export (at no less than 0.7).
The time for 100,000,000 objects is extrapolated from the median rates.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import psycopg
from psycopg import sql

from bench.harness import (
    Paired,
    Result,
    Sizes,
    TempDatabase,
    alternate,
    conninfo,
    temp_database,
)
from bench.object_rewrite import CREATE, RENAME
from stairway.database import engine_for
from stairway.objects.migrate import Migrator
from stairway.objects.spec import ObjectsModel
from stairway.objects.store import ObjectStore
from stairway.transfer.export import export_objects
from stairway.transfer.importer import import_objects

NAME = "transfer"
EXPORT_NAME = "transfer_export"
GOAL = 0.6  # import with migration, of the same number of parallel COPY FROM streams
EXPORT_GOAL = 0.7  # export, of the same number of parallel COPY TO streams
WORKERS = 2
HUNDRED_MILLION = 100_000_000
Range = tuple[str | None, str | None]


def run(sizes: Sizes) -> list[Result]:
    with temp_database("transfer") as db, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        populate(db, sizes.objects)
        ranges = _ranges(db, sizes.objects, WORKERS)
        shares = [work / f"copy-{n}.txt" for n in range(WORKERS)]
        export_file = work / "site.export.zst"
        out = alternate(
            lambda: export_once(db, export_file),
            lambda: _copy_out(db, ranges, shares),
            sizes.repeats,
        )
        into = alternate(
            lambda: import_once(db, export_file), lambda: _copy_in(db, shares), sizes.repeats
        )
        _check(db, sizes.objects)
        export_bytes = export_file.stat().st_size
        copy_bytes = sum(share.stat().st_size for share in shares)
    return _results(sizes.objects, out, into, export_bytes, copy_bytes)


def _results(
    objects: int, out: Paired, into: Paired, export_bytes: int, copy_bytes: int
) -> list[Result]:
    rates = {
        "copy_to_objects_per_s": objects / statistics.median(out.baseline),
        "copy_from_objects_per_s": objects / statistics.median(into.baseline),
        "export_objects_per_s": objects / statistics.median(out.subject),
        "import_objects_per_s": objects / statistics.median(into.subject),
    }
    hours = {
        "export_100m_hours": HUNDRED_MILLION / rates["export_objects_per_s"] / 3600,
        "import_100m_hours": HUNDRED_MILLION / rates["import_objects_per_s"] / 3600,
    }
    details: dict[str, float | int | str] = {
        "objects": objects,
        "workers": WORKERS,
        "copy_streams": WORKERS,
        **rates,
        "export_bytes": export_bytes,
        "copy_text_bytes": copy_bytes,
        **hours,
    }
    extrapolated = (
        f"100,000,000 objects at these rates: export {hours['export_100m_hours']:.2f} h, "
        f"import {hours['import_100m_hours']:.2f} h"
    )
    imported = Result(
        name=NAME,
        subject=f"stairway import of {objects:,} objects, each migrated, {WORKERS} workers",
        baseline=f"{WORKERS} parallel COPY ... FROM STDIN, each of its share of the same rows",
        runs=into,
        goal=GOAL,
        measure="throughput",
        timings={"import_s": list(into.subject), "copy_from_s": list(into.baseline)},
        notes=[
            f"import {rates['import_objects_per_s']:,.0f} objects/s against "
            f"{rates['copy_from_objects_per_s']:,.0f}/s for {WORKERS} COPY FROM streams",
            extrapolated,
        ],
        details=details,
    )
    exported = Result(
        name=EXPORT_NAME,
        subject=f"stairway export of {objects:,} objects, {WORKERS} workers",
        baseline=f"{WORKERS} parallel COPY (SELECT ... oid range) TO STDOUT into files",
        runs=out,
        goal=EXPORT_GOAL,
        measure="throughput",
        timings={"export_s": list(out.subject), "copy_to_s": list(out.baseline)},
        notes=[
            f"export {rates['export_objects_per_s']:,.0f} objects/s against "
            f"{rates['copy_to_objects_per_s']:,.0f}/s for {WORKERS} COPY TO streams"
        ],
        details=details,
    )
    return [imported, exported]


def populate(db: TempDatabase, count: int) -> None:
    with psycopg.connect(conninfo(db.name), autocommit=True) as conn:
        conn.execute(CREATE.format(table="objects", count=count).encode())
        for table in ("copied", "imported"):
            conn.execute(f"CREATE TABLE {table} (LIKE objects INCLUDING ALL)".encode())
        conn.execute(b"VACUUM ANALYZE")


def _ranges(db: TempDatabase, count: int, parts: int) -> list[Range]:
    """``parts`` oid ranges of about equal size, [low, high), None meaning unbounded."""
    with psycopg.connect(conninfo(db.name), autocommit=True) as conn:
        cuts = [
            conn.execute(
                b"SELECT oid FROM objects ORDER BY oid OFFSET %s LIMIT 1", (count * n // parts,)
            ).fetchone()
            for n in range(1, parts)
        ]
    bounds: list[str | None] = [None, *(str(row[0]) for row in cuts if row), None]
    return [(bounds[n], bounds[n + 1]) for n in range(len(bounds) - 1)]


def _in_parallel(tasks: list[Callable[[], None]]) -> float:
    """Seconds from starting all tasks, one thread each, to the last one finishing."""
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        started = time.perf_counter()
        for future in [pool.submit(task) for task in tasks]:
            future.result()
        return time.perf_counter() - started


def _copy_out(db: TempDatabase, ranges: list[Range], shares: list[Path]) -> float:
    return _in_parallel(
        [partial(_copy_range_out, db, r, p) for r, p in zip(ranges, shares, strict=True)]
    )


def _copy_range_out(db: TempDatabase, bounds: Range, path: Path) -> None:
    low, high = bounds
    where = sql.SQL(" AND ").join(
        [sql.SQL("TRUE")]
        + ([sql.SQL("oid >= {}").format(sql.Literal(low))] if low is not None else [])
        + ([sql.SQL("oid < {}").format(sql.Literal(high))] if high is not None else [])
    )
    statement = sql.SQL("COPY (SELECT * FROM objects WHERE {}) TO STDOUT").format(where)
    with psycopg.connect(conninfo(db.name)) as conn, path.open("wb") as out:
        with conn.cursor().copy(statement) as copy:
            for block in copy:
                out.write(block)
        out.flush()
        os.fsync(out.fileno())


def _copy_in(db: TempDatabase, shares: list[Path]) -> float:
    _empty(db, "copied")
    return _in_parallel([partial(_copy_share_in, db, p) for p in shares])


def _copy_share_in(db: TempDatabase, path: Path) -> None:
    with psycopg.connect(conninfo(db.name)) as conn, path.open("rb") as source:
        with conn.cursor().copy(b"COPY copied FROM STDIN") as copy:
            while block := source.read(1 << 20):
                copy.write(block)
        conn.commit()


def _empty(db: TempDatabase, table: str) -> None:
    """Before a run, outside its clock: the target table empty, as the first run found it."""
    with psycopg.connect(conninfo(db.name), autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
        if table == "imported":  # the import's checkpoints, or it would resume as finished
            conn.execute(b"DROP TABLE IF EXISTS stairway_import_chunks")


def _store(db: TempDatabase, table: str, current: str) -> ObjectStore:
    spec = ObjectsModel(table=table, version="written_by")
    return ObjectStore(engine_for(db.url), spec, Migrator([RENAME]), current)


def export_once(db: TempDatabase, path: Path) -> float:
    for leftover in path.parent.glob(f"{path.name}*"):
        leftover.unlink()  # a fresh export each run, never the resumption of the last one
    store = _store(db, "objects", "1.0.0")
    header = {"product": "bench", "version": "1.0.0", "schema_level": 0}
    started = time.perf_counter()
    export_objects(store, path, header, workers=WORKERS)
    return time.perf_counter() - started


def import_once(db: TempDatabase, path: Path, workers: int = WORKERS) -> float:
    _empty(db, "imported")
    for leftover in path.parent.glob(f"{path.name}.rejects*"):
        leftover.unlink()
    store = _store(db, "imported", "2.0.0")
    started = time.perf_counter()
    report = import_objects(store, path, "bench", workers=workers)
    elapsed = time.perf_counter() - started
    assert report.complete and not report.problems and not report.rejected, report.problems
    assert report.imported == db.scalar("SELECT count(*) FROM objects"), report.imported
    return elapsed


def _check(db: TempDatabase, count: int) -> None:
    """Both sides moved every row; every imported object came out migrated."""
    for table in ("copied", "imported"):
        assert db.scalar(f"SELECT count(*) FROM {table}") == count, table
    left = db.scalar("SELECT count(*) FROM imported WHERE data ? 'fullName'")
    assert left == 0, left
