"""Applying and reverting changes: each change in its own transaction, under the migration lock."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from stairway.errors import ChangeFailed, DataLossRefused, SchemaError
from stairway.schema import recorder
from stairway.schema.change import Change, Kind
from stairway.schema.sqltext import Statement

Progress = Callable[[Change], None]


@dataclass(frozen=True)
class Applied:
    change: Change
    duration_ms: int


def apply(engine: Engine, change: Change, release: str) -> Applied:
    """Run one change and record it; on failure the database is as it was before it."""
    started = time.perf_counter()
    if engine.dialect.name == "postgresql" and change.kind == Kind.SQL and change.transactional:
        _apply_postgres_sql(engine, change, release, started)
    elif change.transactional or engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            _run_up(conn, change)
            recorder.record(conn, change, release, _since(started), "applied")
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            _run_up(conn, change)
        with engine.begin() as conn:
            recorder.record(conn, change, release, _since(started), "applied")
    return Applied(change, _since(started))


def _apply_postgres_sql(engine: Engine, change: Change, release: str, started: float) -> None:
    """The same transaction as the generic path, in fewer round trips to the server.

    ``BEGIN`` travels with the first statement and the bookkeeping row with ``COMMIT``, each pair
    as one simple-protocol query, so a one-statement change costs two round trips instead of four.
    Statements still go one by one, so a failure names the statement that failed.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        pg = conn.connection.dbapi_connection
        assert isinstance(pg, psycopg.Connection)
        with pg.cursor() as cursor:
            try:
                for index, statement in enumerate(change.statements):
                    _execute(cursor, change, statement, "BEGIN;\n" if index == 0 else "")
                row = recorder.record_row(change, release, _since(started), "applied")
                begin = "" if change.statements else "BEGIN;\n"
                cursor.execute(begin + _insert_sql(row).as_string(pg) + ";\nCOMMIT")
            finally:
                if pg.info.transaction_status != TransactionStatus.IDLE:
                    pg.execute("ROLLBACK")


def _insert_sql(row: dict[str, object]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(recorder.changes_table.name),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(map(sql.Literal, row.values())),
    )


def revert(engine: Engine, change: Change) -> Applied:
    """Run a change's declared down direction and forget it, in one transaction."""
    started = time.perf_counter()
    with engine.begin() as conn:
        if change.kind == Kind.PYTHON:
            _call(conn, change, "downgrade")
        else:
            _run_statements(conn, change, change.down or ())
        recorder.forget(conn, change.number)
    return Applied(change, _since(started))


def refuse_data_loss(changes: Sequence[Change], allow_data_loss: bool) -> None:
    irreversible = [c.label for c in changes if not c.reversible]
    if irreversible:
        raise SchemaError(
            f"no down direction declared for {', '.join(irreversible)}",
            hint="restore a backup taken before the upgrade instead",
        )
    losses = [f"{c.label}: {c.loses}" for c in changes if c.loses and c.loses != "nothing"]
    if losses and not allow_data_loss:
        raise DataLossRefused(
            "going down loses data: " + "; ".join(losses),
            hint="take a backup, then add --allow-data-loss if this loss is acceptable",
        )


def _run_up(conn: Connection, change: Change) -> None:
    if change.batches is not None:
        from stairway import background

        background.queue(conn, change)  # its batches run while the product serves
    elif change.kind == Kind.PYTHON:
        _call(conn, change, "upgrade")
    else:
        _run_statements(conn, change, change.statements)


def _run_statements(conn: Connection, change: Change, statements: Sequence[Statement]) -> None:
    cursor = conn.connection.cursor()
    try:
        for statement in statements:
            _execute(cursor, change, statement)
    finally:
        cursor.close()


def _execute(cursor: object, change: Change, statement: Statement, prefix: str = "") -> None:
    # The DBAPI cursor, with no parameters, sends the text as written: a literal % stays a %.
    try:
        cursor.execute(prefix + statement.text)  # type: ignore[attr-defined]
    except Exception as err:
        raise ChangeFailed(
            f"change {change.label} failed at {change.path.name}:{statement.line} "
            f"({statement.describe()}): {_reason(err)}",
            hint="the change was rolled back; fix it in a new release of the catalog",
        ) from err


def _call(conn: Connection, change: Change, function: str) -> None:
    module = _load(change)
    try:
        getattr(module, function)(conn)
    except DBAPIError as err:
        raise ChangeFailed(
            f"change {change.label} failed in {function}(): {_reason(err.orig or err)}",
            hint="the change was rolled back; fix it in a new release of the catalog",
        ) from err
    except Exception as err:
        raise ChangeFailed(
            f"change {change.label} raised {type(err).__name__} in {function}(): {err}",
            hint="the change was rolled back; fix it in a new release of the catalog",
        ) from err


def _load(change: Change) -> ModuleType:
    name = f"stairway_change_{change.number}_{change.checksum[:12]}"
    spec = importlib.util.spec_from_file_location(name, change.path)
    if spec is None or spec.loader is None:
        raise SchemaError(f"cannot load {change.path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reason(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
