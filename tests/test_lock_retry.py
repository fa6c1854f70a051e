"""Online changes on PostgreSQL wait for their lock at most 200 ms at a time and retry with
backoff, so the product's writers never queue long behind DDL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from stairway import context, operations
from stairway.database import dispose_all
from stairway.errors import ChangeFailed
from stairway.operations import MigrateRequest
from stairway.schema import executor


def site_with_expand(root: Path, database_url: str) -> Path:
    catalog = root / "catalog"
    (catalog / "schema").mkdir(parents=True)
    (catalog / "stairway.toml").write_text(
        '[product]\nname = "t"\n\n[[release]]\nversion = "1.0.0"\nschema = 1\n\n'
        '[[release]]\nversion = "1.1.0"\nschema = 2\nrolling = true\n'
    )
    (catalog / "schema" / "0001_t.sql").write_text(
        "-- phase: offline\nCREATE TABLE t (id serial PRIMARY KEY, v int);\n"
    )
    (catalog / "schema" / "0002_x.sql").write_text(
        "-- phase: expand\nALTER TABLE t ADD COLUMN x int;\n"
    )
    site = root / "site.toml"
    site.write_text(f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\n')
    operations.init(context.open_context(site, None), "1.0.0")
    dispose_all()
    return site


def test_an_expand_change_retries_while_a_long_transaction_holds_the_table_and_writers_flow(
    tmp_path: Path, pg_database: str
) -> None:
    site = site_with_expand(tmp_path, pg_database)
    url = pg_database.replace("postgresql://", "postgresql+psycopg://")
    reader, writer = create_engine(url), create_engine(url)
    waits: list[float] = []
    stop = threading.Event()

    def write() -> None:
        with writer.connect() as conn:
            while not stop.is_set():
                began = time.monotonic()
                conn.execute(text("INSERT INTO t (v) VALUES (1)"))
                conn.commit()
                waits.append(time.monotonic() - began)
                time.sleep(0.02)

    with reader.connect() as long_one:
        long_one.execute(text("SELECT count(*) FROM t")).all()  # holds ACCESS SHARE until rollback
        threading.Timer(3.0, long_one.rollback).start()
        writing = threading.Thread(target=write)
        writing.start()
        began = time.monotonic()
        (applied,) = operations.migrate(
            context.open_context(site, None), MigrateRequest(to="1.1.0")
        )
        took = time.monotonic() - began
        stop.set()
        writing.join()
    assert applied.change.label == "0002_x" and took >= 2.5, "it waited for the lock, retrying"
    assert max(waits) < 0.8, f"a writer queued {max(waits):.1f} s behind the DDL"
    assert len(waits) > 20
    reader.dispose()
    writer.dispose()
    dispose_all()


def test_a_lock_never_given_fails_with_what_to_look_for(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "DDL_ATTEMPTS", 2)
    monkeypatch.setattr(executor, "DDL_BACKOFF", 0.1)
    site = site_with_expand(tmp_path, pg_database)
    holder = create_engine(pg_database.replace("postgresql://", "postgresql+psycopg://"))
    with holder.connect() as long_one:
        long_one.execute(text("SELECT count(*) FROM t")).all()
        with pytest.raises(ChangeFailed, match="could not get its lock in 2 tries") as failed:
            operations.migrate(context.open_context(site, None), MigrateRequest(to="1.1.0"))
        assert "pg_stat_activity" in failed.value.hint
        long_one.rollback()
    state = operations.status(context.open_context(site, None))
    assert [a.number for a in state.state.applied] == [1], "nothing half-applied"
    holder.dispose()
    dispose_all()
