"""The built-in calibration: how fast this database server rewrites, updates, scans, indexes and
deletes, measured on scratch tables the first time an estimate is asked for.

Two tables of the same row count and different row widths are worked on with the operations
estimates need; each operation's time is then split into a part per row and a part per byte
(``seconds = per_row * rows + per_byte * bytes``), so an estimate follows both the row count and
the width of the table it is for. On PostgreSQL the tables live in a scratch database on the
same server (the site's database is never written); on SQLite in a temporary file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from stairway.estimate.operations import OpKind
from stairway.scratch import scratch_engine

ROWS = 100_000
WIDTHS = (20, 400)  # bytes of text per row: narrow and wide

# What each kind does to the calibration table ``cal (id int primary key, n int, note text)``.
PG_WORK = {
    OpKind.UPDATE: ["UPDATE cal SET note = note || 'x'"],
    OpKind.SCAN: ["ALTER TABLE cal ADD CONSTRAINT cal_n CHECK (n >= 0)"],
    OpKind.INDEX: ["CREATE INDEX cal_n_index ON cal (n)"],
    OpKind.REWRITE: ["ALTER TABLE cal ALTER COLUMN n TYPE bigint"],
    OpKind.DELETE: ["DELETE FROM cal"],
}
SQLITE_WORK = {
    OpKind.UPDATE: ["UPDATE cal SET note = note || 'x'"],
    OpKind.SCAN: ["SELECT count(*) FROM cal WHERE n < 0"],
    OpKind.INDEX: ["CREATE INDEX cal_n_index ON cal (n)"],
    OpKind.REWRITE: [
        "CREATE TABLE cal_new (id INTEGER PRIMARY KEY, n BIGINT, note TEXT)",
        "INSERT INTO cal_new SELECT * FROM cal",
        "DROP TABLE cal",
        "ALTER TABLE cal_new RENAME TO cal",
    ],
    OpKind.DELETE: ["DELETE FROM cal"],
}


@dataclass(frozen=True)
class Cost:
    """What one kind of operation costs on this server: seconds per row plus seconds per byte."""

    per_row: float  # seconds
    per_byte: float

    def seconds(self, rows: int, size: int, indexes: int = 1) -> float:
        """Predicted seconds for ``rows`` rows of ``size`` bytes in all and ``indexes`` indexes."""
        # the calibration table has one index (its primary key); each further index is
        # maintained by updates and rebuilt by rewrites: about a third more each
        return (self.per_row * rows + self.per_byte * size) * (1 + 0.3 * max(0, indexes - 1))


def calibrate(engine: Engine) -> dict[str, Cost]:
    """Measured costs per operation kind on this engine's server."""
    with scratch_engine(engine, "calibrate") as scratch:
        runs = [_best(scratch, width) for width in WIDTHS]
    scratch.dispose()
    return {str(kind): _split(kind, runs) for kind in runs[0][0]}


def _split(kind: OpKind, runs: list[tuple[dict[OpKind, float], int]]) -> Cost:
    (narrow, narrow_bytes), (wide, wide_bytes) = runs
    per_byte = max(0.0, (wide[kind] - narrow[kind]) / max(1, wide_bytes - narrow_bytes))
    per_row = max(0.0, (narrow[kind] - per_byte * narrow_bytes) / ROWS)
    if per_row == 0.0 and per_byte == 0.0:
        per_row = narrow[kind] / ROWS
    return Cost(per_row, per_byte)


def _best(engine: Engine, width: int) -> tuple[dict[OpKind, float], int]:
    """The quicker of two runs per operation: a busy moment only ever slows one down."""
    first, size = _measure(engine, width)
    second, _ = _measure(engine, width)
    return {kind: min(first[kind], second[kind]) for kind in first}, size


def _measure(engine: Engine, width: int) -> tuple[dict[OpKind, float], int]:
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        _fill(conn, width, postgres)
        size = _heap_bytes(conn, postgres)
    timings: dict[OpKind, float] = {}
    for kind, statements in (PG_WORK if postgres else SQLITE_WORK).items():
        started = time.perf_counter()
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
        timings[kind] = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE cal"))
    return timings, size


def _fill(conn: Connection, width: int, postgres: bool) -> None:
    conn.execute(text("DROP TABLE IF EXISTS cal"))
    if postgres:
        conn.execute(text("CREATE TABLE cal (id int PRIMARY KEY, n int NOT NULL, note text)"))
        conn.execute(
            text(
                "INSERT INTO cal SELECT g, g % 1000, repeat(md5(g::text), :w / 32 + 1)::text "
                "FROM generate_series(1, :rows) g"
            ),
            {"w": width, "rows": ROWS},
        )
        conn.execute(text("ANALYZE cal"))
        return
    conn.execute(text("CREATE TABLE cal (id INTEGER PRIMARY KEY, n INTEGER, note TEXT)"))
    conn.execute(
        text(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < :rows) "
            "INSERT INTO cal SELECT i, i % 1000, substr(hex(randomblob(:w)), 1, :w) FROM g"
        ),
        {"w": width, "rows": ROWS},
    )


def _heap_bytes(conn: Connection, postgres: bool) -> int:
    if postgres:
        return int(conn.execute(text("SELECT pg_relation_size('cal')")).scalar_one())
    found = conn.execute(text("SELECT sum(pgsize) FROM dbstat WHERE name = 'cal'")).scalar_one()
    return int(found or 0)
