"""Background migrations: queued by the schema step, run in batches with a saved cursor while
the product serves; a run killed with SIGKILL halfway through 1,000,000 rows resumes with no row
done twice or skipped; throttled while the database is busy; paused and resumed; an upgrade
past an unfinished one refuses to start."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import prestarted
from cli_runner import stairway
from stairway import context, operations
from stairway.database import dispose_all
from stairway.errors import CatalogError
from stairway.operations import MigrateRequest
from stairway.schema import background

BATCH_CHANGE = '''"""Double every value, batch by batch."""
from sqlalchemy import text

PHASE = "background"
TABLE = "items"
KEY = "id"
BATCH = {batch}


def upgrade_batch(conn, low, high):
    conn.execute(
        text("UPDATE items SET value = value * 2, touched = touched + 1 "
             "WHERE id >= :low AND id < :high"),
        {{"low": low, "high": high}},
    )
'''


def items_site(root: Path, database_url: str, batch: int) -> Path:
    catalog = root / "catalog"
    (catalog / "schema").mkdir(parents=True)
    (catalog / "stairway.toml").write_text(
        '[product]\nname = "items"\n\n[[release]]\nversion = "1.0.0"\nschema = 1\n\n'
        '[[release]]\nversion = "1.1.0"\nschema = 2\nrolling = true\n\n'
        '[[release]]\nversion = "2.0.0"\nschema = 2\n'
    )
    (catalog / "schema" / "0001_items.sql").write_text(
        "-- phase: offline\nCREATE TABLE items (id bigint PRIMARY KEY, value int NOT NULL, "
        "touched int NOT NULL DEFAULT 0);\n"
    )
    (catalog / "schema" / "0002_double.py").write_text(BATCH_CHANGE.format(batch=batch))
    site = root / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\nbackup_dir = "backups"\n'
    )
    return site


def fill(site: Path, rows: int) -> None:
    ctx = context.open_context(site, None)
    operations.init(ctx, "1.0.0")
    with ctx.engine.begin() as conn:
        if ctx.engine.dialect.name == "postgresql":
            conn.execute(
                text("INSERT INTO items (id, value) SELECT g, g FROM generate_series(1, :n) g"),
                {"n": rows},
            )
        else:
            conn.execute(
                text(
                    "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < :n) "
                    "INSERT INTO items (id, value) SELECT i, i FROM g"
                ),
                {"n": rows},
            )
    operations.migrate(ctx, MigrateRequest(to="1.1.0"))
    dispose_all()


def counts(site: Path) -> dict[str, int]:
    engine = create_engine(
        context.open_context(site, None).site.database.replace(
            "postgresql://", "postgresql+psycopg://"
        )
    )
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE touched = 0), count(*) FILTER (WHERE touched = 1), "
                "count(*) FILTER (WHERE touched > 1), "
                "count(*) FILTER (WHERE value <> id * touched * 2 AND touched > 0) FROM items"
            )
            if engine.dialect.name == "postgresql"
            else text(
                "SELECT sum(touched = 0), sum(touched = 1), sum(touched > 1), "
                "sum(value <> id * touched * 2 AND touched > 0) FROM items"
            )
        ).one()
    engine.dispose()
    return dict(zip(("untouched", "once", "twice", "wrong"), map(int, row), strict=True))


def test_a_backfill_of_a_million_rows_killed_halfway_resumes_from_its_cursor(
    tmp_path: Path, pg_database: str
) -> None:
    site = items_site(tmp_path, pg_database, batch=10_000)
    fill(site, 1_000_000)
    (job,) = background.jobs(context.open_context(site, None).engine)
    assert (job.state, job.low, job.high, job.cursor) == ("queued", 1, 1_000_001, 1)
    # processes of their own, forked ready-imported, that the fault's SIGKILL ends
    command = ["background", "run", "--pause", "0", "--site", str(site)]
    killed = prestarted.run(command, os.environ | {"STAIRWAY_FAULT": "background:50"})
    assert killed.returncode == -signal.SIGKILL
    (job,) = background.jobs(context.open_context(site, None).engine)
    assert job.state == "running" and job.cursor == 1 + 50 * 10_000
    assert counts(site) == {"untouched": 500_000, "once": 500_000, "twice": 0, "wrong": 0}
    code, out, err = stairway("status", "--site", str(site))
    assert code == 0 and "0002_double: running, 50% done" in out, err
    again = prestarted.run(command, dict(os.environ))
    assert again.returncode == 0, again.stderr
    assert counts(site) == {"untouched": 0, "once": 1_000_000, "twice": 0, "wrong": 0}
    (job,) = background.jobs(context.open_context(site, None).engine)
    assert job.state == "done" and job.batches == 100
    dispose_all()


def test_an_upgrade_past_an_unfinished_background_migration_refuses_to_start(
    tmp_path: Path, sqlite_database: str
) -> None:
    site = items_site(tmp_path, sqlite_database, batch=100)
    fill(site, 1_000)
    code, out, err = stairway("verify", "--to", "2.0.0", "--json", "--site", str(site))
    assert code == 2 and "background migration 0002_double: queued, 0% done" in out, err
    code, _out, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 2 and "block the upgrade" in err
    code, out, err = stairway("background", "run", "--site", str(site))
    assert code == 0 and "0002_double: done, 100% done" in out, err
    code, out, err = stairway("verify", "--to", "2.0.0", "--json", "--site", str(site))
    assert code == 0, out + err


def test_pause_and_resume(tmp_path: Path, sqlite_database: str) -> None:
    site = items_site(tmp_path, sqlite_database, batch=100)
    fill(site, 1_000)
    code, out, err = stairway("background", "pause", "2", "--site", str(site))
    assert code == 0 and "paused" in out, err
    stairway("background", "run", "--site", str(site))
    assert counts(site)["once"] == 0, "a paused migration does not run"
    code, _out, err = stairway("background", "resume", "2", "--site", str(site))
    assert code == 0, err
    stairway("background", "run", "--site", str(site))
    assert counts(site) == {"untouched": 0, "once": 1_000, "twice": 0, "wrong": 0}
    code, _out, err = stairway("background", "pause", "2", "--site", str(site))
    assert code == 2 and "is finished" in err


def test_the_runner_backs_off_while_sessions_wait_for_a_lock(
    tmp_path: Path, pg_database: str
) -> None:
    site = items_site(tmp_path, pg_database, batch=100)
    fill(site, 1_000)
    url = pg_database.replace("postgresql://", "postgresql+psycopg://")
    holder, waiter = create_engine(url), create_engine(url)
    with holder.connect() as held:
        held.execute(text("CREATE TABLE other (id int)"))
        held.commit()
        held.execute(text("LOCK TABLE other IN ACCESS EXCLUSIVE MODE"))
        blocked = threading.Thread(
            target=lambda: waiter.connect().execute(text("SELECT * FROM other")).all()
        )
        blocked.start()
        time.sleep(0.5)
        ctx = context.open_context(site, None)
        changes = {c.number: c for c in ctx.catalog.changes}
        throttle = background.Throttle(probe_ms=1000, pause=0, longest=0.2)
        (job,) = background.run(ctx.engine, changes, throttle, max_seconds=1.5)
        assert job.batches == 0 and job.throttled > 0, "no batch while a session waits"
        held.rollback()
    blocked.join()
    (job,) = background.run(ctx.engine, changes, background.Throttle(pause=0))
    assert job.state == "done"
    holder.dispose()
    waiter.dispose()
    dispose_all()


def test_a_background_change_must_say_its_table_key_and_batch(tmp_path: Path) -> None:
    site = items_site(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", batch=100)
    change = tmp_path / "catalog" / "schema" / "0002_double.py"
    change.write_text(change.read_text().replace('KEY = "id"\n', ""))
    with pytest.raises(CatalogError, match="defines upgrade_batch"):
        context.open_context(site, None)
