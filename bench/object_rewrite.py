"""``object_rewrite``: the resumable bulk rewrite against one server-side UPDATE, on PostgreSQL.

Two identical tables of ~1 KB JSONB documents; the same rename (fullName -> displayName) done by
``stairway.objects.rewrite_all`` (keyset batches, a checkpoint committed with each batch) on one,
and by a single ``UPDATE ... SET data = jsonb_set(data - 'fullName', ...)`` on the other. Before
every run, outside its clock, its table is refilled from one pristine copy and vacuumed, and
Stairway's checkpoints are dropped, so each run starts from the same state. ``sizes.repeats``
runs of each, alternating who goes first; the ratio is Stairway's median objects/s over the
UPDATE's. Goal: at least 0.5 while staying resumable.
"""

from __future__ import annotations

import statistics
import time

import psycopg
from sqlalchemy import text

from bench.harness import (
    Result,
    Sizes,
    TempDatabase,
    alternate,
    conninfo,
    temp_database,
)
from stairway.database import engine_for
from stairway.objects.migrate import Migrator
from stairway.objects.migration import ObjectMigration, Op
from stairway.objects.rewrite import RewriteReport, rewrite_all
from stairway.objects.spec import ObjectsModel
from stairway.objects.store import ObjectStore
from stairway.versions import Version

NAME = "object_rewrite"
GOAL = 0.5  # of one UPDATE ... jsonb_set
BATCH = 5000
RENAME = ObjectMigration(1, "User", Version("2.0.0"), Op.RENAME, ("fullName",), to=("displayName",))

CREATE = """
CREATE TABLE {table} (oid TEXT PRIMARY KEY, type TEXT NOT NULL, data JSONB NOT NULL,
                      written_by TEXT);
INSERT INTO {table}
SELECT 'u' || lpad(n::text, 9, '0'), 'User',
       jsonb_build_object(
         'fullName', 'User Number ' || n, 'email', 'user' || n || '@example.org',
         'address', jsonb_build_object('street', n || ' Long Street', 'city', 'Brno'),
         'roles', jsonb_build_array('role-a', 'role-b', 'role-c', 'role-d'),
         'attributes', (SELECT jsonb_object_agg('attr' || a, 'value ' || a || ' of user ' || n)
                        FROM generate_series(1, 16) a)),
       '1.0.0'
FROM generate_series(1, {count}) n;
"""

UPDATE = """
UPDATE baseline SET data = jsonb_set(data - 'fullName', '{displayName}', data -> 'fullName'),
                    written_by = '2.0.0'
WHERE data ? 'fullName'
"""


def run(sizes: Sizes) -> Result:
    with temp_database("rewrite") as db:
        populate(db, sizes.objects)
        reports: list[RewriteReport] = []

        def subject() -> float:
            seconds, report = _rewrite(db)
            reports.append(report)
            return seconds

        runs = alternate(subject, lambda: _timed_sql(db, UPDATE), sizes.repeats)
        for report in reports:
            _check(db, sizes.objects, report.rewritten)
        document_bytes = int(str(db.scalar("SELECT avg(length(data::text))::int FROM pristine")))
    return Result(
        name=NAME,
        subject=f"rewrite_all, {sizes.objects:,} objects in batches of {BATCH}, checkpointed",
        baseline=f"one UPDATE ... jsonb_set over the same {sizes.objects:,} objects",
        runs=runs,
        goal=GOAL,
        measure="throughput",
        timings={"rewrite_s": list(runs.subject), "update_s": list(runs.baseline)},
        details={
            "objects": sizes.objects,
            "document_bytes": document_bytes,
            "rewrite_objects_per_s": sizes.objects / statistics.median(runs.subject),
            "update_objects_per_s": sizes.objects / statistics.median(runs.baseline),
        },
    )


def populate(db: TempDatabase, count: int) -> None:
    with psycopg.connect(conninfo(db.name), autocommit=True) as conn:
        conn.execute(CREATE.format(table="pristine", count=count).encode())
        for table in ("baseline", "subject"):
            conn.execute(f"CREATE TABLE {table} (LIKE pristine INCLUDING ALL)".encode())


def reset(db: TempDatabase, table: str) -> None:
    """The table as the first run found it: pristine rows, vacuumed, no checkpoint left."""
    with psycopg.connect(conninfo(db.name), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {table}".encode())
        conn.execute(f"INSERT INTO {table} SELECT * FROM pristine".encode())
        conn.execute(f"VACUUM ANALYZE {table}".encode())
        if table == "subject":
            conn.execute(b"DROP TABLE IF EXISTS stairway_rewrites")


def _timed_sql(db: TempDatabase, sql: str) -> float:
    reset(db, "baseline")
    with psycopg.connect(conninfo(db.name)) as conn:
        started = time.perf_counter()
        conn.execute(sql.encode())
        conn.commit()
        return time.perf_counter() - started


def _rewrite(db: TempDatabase) -> tuple[float, RewriteReport]:
    reset(db, "subject")
    store = subject_store(db)
    started = time.perf_counter()
    report = rewrite_all(store, batch=BATCH)
    return time.perf_counter() - started, report


def subject_store(db: TempDatabase) -> ObjectStore:
    """The store ``rewrite_all`` works on: the subject table, every object due the rename."""
    spec = ObjectsModel(table="subject", version="written_by")
    return ObjectStore(engine_for(db.url), spec, Migrator([RENAME]), "2.0.0")


def _check(db: TempDatabase, count: int, rewritten: int) -> None:
    """Both sides did the same work: every object renamed, nothing left behind."""
    assert rewritten == count, (rewritten, count)
    with engine_for(db.url).connect() as conn:
        for table in ("baseline", "subject"):
            left = conn.execute(text(f"SELECT count(*) FROM {table} WHERE data ? 'fullName'"))
            assert left.scalar() == 0, table
