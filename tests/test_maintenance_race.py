"""``stairway maintenance on`` racing a new database's first migration, on SQLite and PostgreSQL:
both create Stairway's bookkeeping tables when they find none, so without the migration lock
between them one of the two failed with "table already exists". Both must succeed, every change
applied once and the flag on, however their starts fall."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from stairway import context, maintenance, operations
from stairway.context import Context
from stairway.schema import migrator, recorder

ROUNDS = 12
LEVEL = 3  # the shop catalog's first three changes: SQL, one transaction together


def _empty(engine: Engine) -> None:
    """Back to a brand-new database: every table dropped (quicker than a new database)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            return
        tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        for (name,) in tables.all():
            conn.exec_driver_sql(f'DROP TABLE "{name}"')


def _race(*runs: Callable[[], object]) -> list[BaseException]:
    """Run each in its own thread, released together; the errors they raised."""
    start = threading.Barrier(len(runs))
    failures: list[BaseException] = []

    def run(work: Callable[[], object]) -> None:
        start.wait()
        try:
            work()
        except BaseException as failure:  # reported by the test, not swallowed
            failures.append(failure)

    threads = [threading.Thread(target=run, args=(work,)) for work in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return failures


def _end_state(ctx: Context) -> tuple[list[int], bool]:
    with ctx.engine.connect() as conn:
        numbers = [a.number for a in recorder.applied(conn)]
        return numbers, maintenance.read(conn) is not None


def test_maintenance_on_and_a_first_migration_never_race_to_create_tables(
    site_file: Path,
) -> None:
    ctx = context.open_context(site_file, None)
    for _ in range(ROUNDS):
        _empty(ctx.engine)
        failures = _race(
            lambda: migrator.migrate(ctx.engine, ctx.catalog, LEVEL),
            lambda: operations.maintenance_on(ctx, "moving disks"),
        )
        assert failures == []
        assert _end_state(ctx) == ([1, 2, 3], True)


def test_the_upgrades_own_switch_waits_for_a_first_migration_too(site_file: Path) -> None:
    ctx = context.open_context(site_file, None)
    for _ in range(ROUNDS):
        _empty(ctx.engine)
        failures = _race(
            lambda: maintenance.switch_on(ctx.engine, "upgrade to 1.1.0"),
            lambda: migrator.migrate(ctx.engine, ctx.catalog, LEVEL),
        )
        assert failures == []
        assert _end_state(ctx) == ([1, 2, 3], True)
