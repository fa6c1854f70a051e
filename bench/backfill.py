"""``backfill``: an expand change plus a background backfill of 1,000,000 rows (``sizes.objects``)
on PostgreSQL while a writer keeps inserting and updating, against the same writer with no
migration running.

Measured in one run:

- the writer's longest wait for one statement during the expand change and the backfill, as a
  ratio to its longest wait over the same time without them (goal: at most 2);
- the backfill's rows/s (``stairway background run``'s batches, throttle on) against one plain
  ``UPDATE`` of the same rows (noted; a batched backfill trades speed for short transactions).

The site at 1.0.0 is built once; every run works on a fresh copy of it (``CREATE DATABASE ...
TEMPLATE``), vacuumed and checkpointed before its clock starts. A baseline run lasts as long as
the last migration did. ``sizes.repeats`` runs of each, alternating who goes first.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from sqlalchemy import create_engine, text

from bench.harness import (
    Paired,
    Result,
    Sizes,
    TempDatabase,
    alternate,
    temp_database,
)
from stairway import context, operations
from stairway.database import dispose_all
from stairway.operations import MigrateRequest
from stairway.schema import background

NAME = "backfill"
GOAL = 2.0
CATALOG = {
    "stairway.toml": '[product]\nname = "backfill"\n\n'
    '[[release]]\nversion = "1.0.0"\nschema = 1\n\n'
    '[[release]]\nversion = "1.1.0"\nschema = 3\nrolling = true\n',
    "schema/0001_orders.sql": "-- phase: offline\nCREATE TABLE orders (id bigint PRIMARY KEY, "
    "amount int NOT NULL, note text);\n",
    "schema/0002_total.sql": "-- phase: expand\nALTER TABLE orders ADD COLUMN total bigint;\n",
    "schema/0003_fill_total.py": '"""Fill total from amount."""\nfrom sqlalchemy import text\n\n'
    'PHASE = "background"\nTABLE = "orders"\nKEY = "id"\nBATCH = 1000\n\n\n'
    'def upgrade_batch(conn, low, high):\n    conn.execute(text("UPDATE orders SET total = '
    'amount * 100 WHERE id >= :low AND id < :high"), {"low": low, "high": high})\n',
}


@dataclass(frozen=True)
class Writing:
    """One run: the writer's longest and 99th-percentile wait, and how long the work took."""

    longest: float
    p99: float
    seconds: float


def run(sizes: Sizes) -> Result:
    rows = sizes.objects
    busy: list[Writing] = []
    quiet: list[Writing] = []
    updates: list[float] = []
    with temp_database("backfill_template") as template, TemporaryDirectory() as scratch:
        catalog = _template(Path(scratch), template, rows)

        def subject() -> float:
            with temp_database("backfill", template=template) as db:
                site = _site(Path(scratch), catalog, db)
                busy.append(_with_writer(db, rows, lambda: _migrate(site)))
                updates.append(_plain_update(db))
            return busy[-1].longest

        def baseline() -> float:
            window = busy[-1].seconds if busy else max(2.0, rows / 60_000)
            with temp_database("backfill_quiet", template=template) as db:
                quiet.append(_with_writer(db, rows, lambda: time.sleep(window)))
            return quiet[-1].longest

        runs = alternate(subject, baseline, sizes.repeats)
    return _result(rows, runs, busy, quiet, updates)


def _result(
    rows: int, runs: Paired, busy: list[Writing], quiet: list[Writing], updates: list[float]
) -> Result:
    busy_s = statistics.median(w.seconds for w in busy)
    backfill_rate = rows / max(busy_s, 1e-9)
    update_rate = rows / max(statistics.median(updates), 1e-9)
    busy_p99 = statistics.median(w.p99 for w in busy)
    quiet_p99 = statistics.median(w.p99 for w in quiet)
    return Result(
        name=NAME,
        subject=f"writer's longest wait during expand + background backfill of {rows:,} rows",
        baseline="the same writer's longest wait with no migration",
        runs=runs,
        goal=GOAL,
        timings={
            "busy_wait_s": list(runs.subject),
            "quiet_wait_s": list(runs.baseline),
            "migration_s": [w.seconds for w in busy],
            "quiet_s": [w.seconds for w in quiet],
            "busy_p99_s": [w.p99 for w in busy],
            "quiet_p99_s": [w.p99 for w in quiet],
            "plain_update_s": updates,
        },
        details={
            "rows": rows,
            "migration_median_s": busy_s,
            "backfill_rows_per_s": backfill_rate,
            "plain_update_rows_per_s": update_rate,
        },
        notes=[
            f"backfill {backfill_rate:,.0f} rows/s = {backfill_rate / update_rate:.2f} of one "
            f"plain UPDATE ({update_rate:,.0f} rows/s), in batches of 1,000 with the throttle on",
            f"writer's 99th percentile wait (median of runs) {busy_p99 * 1000:.1f} ms during "
            f"the migration against {quiet_p99 * 1000:.1f} ms without it",
        ],
    )


def _template(root: Path, db: TempDatabase, rows: int) -> Path:
    """The catalog, and ``db`` made the site at 1.0.0 with ``rows`` orders."""
    for name, body in CATALOG.items():
        path = root / "catalog" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, "utf-8")
    ctx = context.open_context(_site(root, root / "catalog", db), None)
    operations.init(ctx, "1.0.0")
    with ctx.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO orders SELECT g, g % 1000, md5(g::text) FROM generate_series(1, :n) g"
            ),
            {"n": rows},
        )
    dispose_all()
    return root / "catalog"


def _site(root: Path, catalog: Path, db: TempDatabase) -> Path:
    site = root / f"site-{db.name}.toml"
    site.write_text(f'[site]\ndatabase = "{db.url}"\ncatalog = "{catalog}"\n', "utf-8")
    return site


def _migrate(site: Path) -> None:
    ctx = context.open_context(site, None)
    operations.migrate(ctx, MigrateRequest(to="1.1.0"))
    changes = {c.number: c for c in ctx.catalog.changes}
    background.run(ctx.engine, changes, background.Throttle())


# The writer's new ids go down from -1: never one of the table's, never one of an earlier run's,
# and only a few hundred below the key range the backfill takes when it is queued.
_ids = (-n for n in itertools.count(1))


def _with_writer(db: TempDatabase, rows: int, work: Callable[[], None]) -> Writing:
    """The writer's waits while ``work`` runs on a settled database, and how long it ran."""
    _settle(db)
    engine = create_engine(db.url)
    stop, warm = threading.Event(), threading.Event()
    longest = [0.0]
    waits: list[float] = []

    def write() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))  # the connection is made before the clock starts
            warm.set()
            while not stop.is_set():
                n = next(_ids)
                began = time.perf_counter()
                conn.execute(text("INSERT INTO orders (id, amount) VALUES (:n, 1)"), {"n": n})
                conn.execute(
                    text("UPDATE orders SET note = 'w' WHERE id = :i"), {"i": -n % rows + 1}
                )
                conn.commit()
                longest[0] = max(longest[0], time.perf_counter() - began)
                waits.append(time.perf_counter() - began)
                time.sleep(0.005)

    writer = threading.Thread(target=write)
    writer.start()
    warm.wait(10)
    time.sleep(0.3)
    began = time.perf_counter()
    try:
        work()
    finally:
        took = time.perf_counter() - began
        stop.set()
        writer.join()
        engine.dispose()
    return Writing(longest[0], _p99(waits), took)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


def _settle(db: TempDatabase) -> None:
    engine = create_engine(db.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE orders"))
        conn.execute(text("CHECKPOINT"))
    engine.dispose()


def _plain_update(db: TempDatabase) -> float:
    engine = create_engine(db.url)
    began = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("UPDATE orders SET total = amount * 100 + 1"))
    took = time.perf_counter() - began
    engine.dispose()
    return took
