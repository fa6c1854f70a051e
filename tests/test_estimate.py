"""Estimates without rehearsing: what each statement locks and for how long, against the time a
real migration of a 1,000,000-row PostgreSQL table takes; limits that a plan would break."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from cli_runner import stairway
from conftest import settle_server
from stairway import context, operations
from stairway.database import dispose_all
from stairway.estimate import Limits, estimate_upgrade
from stairway.estimate.operations import ACCESS_EXCLUSIVE, SHARE, OpKind
from stairway.estimate.operations import operations as sql_operations
from stairway.estimate.predict import parse_duration
from stairway.operations import MigrateRequest

# Every estimate here is judged against real migrations: calibrated as an operator's would be.
pytestmark = pytest.mark.full_calibration
ROWS = 1_000_000
CHANGES = {
    "0002_widen_n.sql": "ALTER TABLE big ALTER COLUMN n TYPE bigint;",
    "0003_mark_notes.sql": "UPDATE big SET note = note || '!';",
    "0004_index_n.sql": "CREATE INDEX big_n ON big (n);",
}


def big_site(root: Path, database_url: str) -> Path:
    catalog = root / "catalog"
    (catalog / "schema").mkdir(parents=True)
    (catalog / "stairway.toml").write_text(
        '[product]\nname = "big"\n\n[[release]]\nversion = "1.0.0"\nschema = 1\n\n'
        '[[release]]\nversion = "2.0.0"\nschema = 4\n'
    )
    (catalog / "schema" / "0001_big.sql").write_text(
        "-- phase: offline\nCREATE TABLE big (id int PRIMARY KEY, n int NOT NULL, note text);\n"
    )
    for name, sql in CHANGES.items():
        (catalog / "schema" / name).write_text(f"-- phase: offline\n{sql}\n")
    site = root / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\nbackup_dir = "backups"\n'
    )
    return site


def test_statements_are_read_for_their_lock_and_what_their_cost_grows_with() -> None:
    seen = {
        sql: [(o.kind, o.table, o.lock) for o in sql_operations(sql)]
        for sql in [
            "ALTER TABLE big ALTER COLUMN n TYPE bigint",
            "ALTER TABLE big ADD COLUMN x int",
            "ALTER TABLE big ADD COLUMN u uuid DEFAULT gen_random_uuid()",
            "CREATE INDEX big_n ON big (n)",
            "CREATE INDEX CONCURRENTLY big_n ON big (n)",
            "ALTER TABLE big ADD CONSTRAINT c CHECK (n > 0) NOT VALID",
            "ALTER TABLE big VALIDATE CONSTRAINT c",
            'UPDATE "Big" SET n = 1',
            "DO $$ BEGIN PERFORM 1; END $$",
        ]
    }
    assert list(seen.values()) == [
        [(OpKind.REWRITE, "big", ACCESS_EXCLUSIVE)],
        [(OpKind.INSTANT, "big", ACCESS_EXCLUSIVE)],
        [(OpKind.REWRITE, "big", ACCESS_EXCLUSIVE)],
        [(OpKind.INDEX, "big", SHARE)],
        [(OpKind.INDEX_CONCURRENTLY, "big", "SHARE UPDATE EXCLUSIVE")],
        [(OpKind.INSTANT, "big", ACCESS_EXCLUSIVE)],
        [(OpKind.SCAN, "big", "SHARE UPDATE EXCLUSIVE")],
        [(OpKind.UPDATE, "Big", "ROW EXCLUSIVE")],
        [(OpKind.UNKNOWN, None, None)],
    ]


def test_estimates_for_a_million_row_table_fall_within_a_factor_of_two_of_the_migration(
    tmp_path: Path, pg_database: str
) -> None:
    # Calibration and migration are timed apart: a neighbour test's burst of work between the two
    # skews one of them. Up to three tries from scratch, each calibrating anew; an estimator that
    # is wrong misses on every try.
    tries = []
    for attempt in range(3):
        ratios = _estimate_then_migrate(tmp_path / f"try{attempt}", pg_database)
        tries.append(ratios)
        if all(0.5 <= r <= 2.0 for r in ratios.values()):
            break
    else:
        pytest.fail(f"every try missed a factor of two (measured / predicted): {tries}")


def _estimate_then_migrate(root: Path, database_url: str) -> dict[str, float]:
    settle_server()  # timed against a calibration: no drop's checkpoint in between
    _empty(database_url)
    site = big_site(root, database_url)
    ctx = context.open_context(site, None)
    operations.init(ctx, "1.0.0")
    with ctx.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO big SELECT g, g % 97, 'note ' || md5(g::text) || md5((g * 7)::text) "
                "FROM generate_series(1, :rows) g"
            ),
            {"rows": ROWS},
        )
    predicted = estimate_upgrade(ctx, "2.0.0", Limits())
    (schema,) = [s for s in predicted.steps if s.kind == "schema"]
    guesses = {c.change.label: c.seconds for c in schema.changes}
    assert all(c.basis == "calibration" for c in schema.changes)
    assert schema.changes[0].lock == ACCESS_EXCLUSIVE and schema.changes[0].table == "big"
    assert schema.changes[0].operations[0].size.rows == ROWS  # type: ignore[union-attr]
    applied = operations.migrate(ctx, MigrateRequest(to="2.0.0"))
    measured = {a.change.label: a.duration_ms / 1000 for a in applied}
    ratios = {label: measured[label] / guesses[label] for label in measured}  # type: ignore[operator]
    assert set(ratios) == {"0002_widen_n", "0003_mark_notes", "0004_index_n"}
    assert (root / "backups" / "stairway-rates.json").is_file(), "calibrated once, kept"
    dispose_all()
    return ratios


def _empty(database_url: str) -> None:
    """The database as the fixture gave it: a try before this one leaves its tables behind."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def test_limits_a_plan_would_break_are_flagged_and_exit_3(tmp_path: Path, pg_database: str) -> None:
    site = big_site(tmp_path, pg_database)
    ctx = context.open_context(site, None)
    operations.init(ctx, "1.0.0")
    with ctx.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO big SELECT g, g, md5(g::text) FROM generate_series(1, 200000) g")
        )
    dispose_all()
    code, out, err = stairway(
        "plan", "--to", "2.0.0", "--estimate", "--lock-limit", "1ms", "--transaction-limit",
        "1ms", "--site", str(site), "--json",
    )  # fmt: skip
    assert code == 3, err
    assert "holds ACCESS EXCLUSIVE on the 200,000-row table big" in out
    assert "beyond the 1 ms transaction limit" in out
    code, out, err = stairway(
        "plan", "--to", "2.0.0", "--estimate", "--lock-limit", "1h", "--site", str(site)
    )
    assert code == 0, err
    assert "0002_widen_n" in out and "predicted:" in out
    code, _out, err = stairway(
        "plan", "--to", "2.0.0", "--estimate", "--window", "soon", "--site", str(site)
    )
    assert code == 2 and "--window: 'soon' is not a duration" in err


@pytest.mark.parametrize(
    ("given", "seconds"), [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0)]
)
def test_durations_read_as_operators_write_them(given: str, seconds: float) -> None:
    assert parse_duration(given) == seconds
