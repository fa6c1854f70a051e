"""Applying and reverting changes under the migration lock: each change in its own transaction,
or, on a database that records none yet, every transactional change in one. An Alembic revision
with an autocommit block runs in parts, as Alembic runs it, recorded with its last part."""

from __future__ import annotations

import importlib.util
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from stairway import faults
from stairway.errors import ChangeFailed, DataLossRefused, SchemaError
from stairway.progress import Progress
from stairway.schema import background, recorder
from stairway.schema.change import Change, ChangeKind
from stairway.schema.histories import alembic_runtime, ledger
from stairway.schema.sqltext import Statement


@dataclass(frozen=True)
class Applied:
    """A change applied or reverted, and how long it took."""

    change: Change
    duration_ms: int


# An online change on PostgreSQL gives up its lock wait after 200 ms and tries again later:
# while DDL waits for its lock, every writer queues behind it, so the wait must stay short.
DDL_LOCK_TIMEOUT_MS = 200
DDL_ATTEMPTS = 10
DDL_BACKOFF = 0.2  # seconds before the second attempt, doubled each time, with jitter


def apply(engine: Engine, change: Change, release: str) -> Applied:
    """Run one change and record it; on failure the database is as it was before it.

    An online (expand or background) change on PostgreSQL runs under a short ``lock_timeout``
    and is retried with backoff when it cannot get its lock in time."""
    # CREATE INDEX CONCURRENTLY (outside a transaction) does not block writers while it waits,
    # and a timed-out one would leave an invalid index behind: it waits as long as it takes.
    if engine.dialect.name != "postgresql" or not change.phase.online or not change.transactional:
        return _apply_once(engine, change, release, None)
    for attempt in range(1, DDL_ATTEMPTS + 1):
        try:
            return _apply_once(engine, change, release, DDL_LOCK_TIMEOUT_MS)
        except ChangeFailed as failure:
            if not _lock_not_available(failure) or attempt == DDL_ATTEMPTS:
                if _lock_not_available(failure):
                    raise ChangeFailed(
                        f"change {change.label} could not get its lock in {DDL_ATTEMPTS} tries "
                        f"of {DDL_LOCK_TIMEOUT_MS} ms: long transactions hold the table",
                        hint="find them in pg_stat_activity (state 'idle in transaction' or "
                        "long queries), end them, and migrate again",
                        change=change.number,
                    ) from failure
                raise
            time.sleep(DDL_BACKOFF * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


def apply_together(
    engine: Engine,
    changes: Sequence[tuple[Change, str]],
    progress: Progress[Change] | None = None,
    on: Connection | None = None,
    setup: Callable[[Connection], None] | None = None,
) -> list[Applied]:
    """Run ``(change, release)`` pairs and their records in one transaction: all or none;
    ``setup`` (creating the bookkeeping tables) first, in the same transaction.

    For a database that records no change yet: a failure leaves it as it was, with nothing to
    resume and nothing to restore, and the run costs one commit instead of one per change (as
    ``alembic upgrade`` and Flyway's ``group`` run). Every change must be transactional."""
    done: list[Applied] = []
    try:
        with transaction(engine, [change for change, _ in changes], on) as conn:
            if setup is not None:
                setup(conn)
            records = _GroupRecords(conn)
            for index, (change, release) in enumerate(changes):
                if progress:
                    progress(index, len(changes), change)
                started = time.perf_counter()
                _run_up(conn, change)
                records.add(change, release, started)
                done.append(Applied(change, _since(started)))
                faults.point("after:grouped-change")  # run, not committed: a kill loses it all
            records.write()
    except ChangeFailed as failure:
        raise ChangeFailed(
            f"{failure.message}; the changes before it in this run were rolled back with it",
            hint="the database is as it was before the run; fix the change in a new release of "
            "the catalog",
            change=failure.change,
            line=failure.line,
        ) from failure.__cause__
    return done


@contextmanager
def transaction(
    engine: Engine, changes: Sequence[Change], on: Connection | None = None
) -> Iterator[Connection]:
    """``engine.begin()``, except for Alembic revisions on SQLite: they run with foreign keys
    off, as under ``alembic upgrade`` (batch mode rebuilds a table by copy, drop and rename,
    which a referenced table does not survive with them on), and the references are checked
    before the commit instead, as SQLite's own procedure for altering a table does."""
    with _connection(engine, changes, on) as conn, conn.begin():
        yield conn
        _refuse_broken_references(conn, changes)


@contextmanager
def _connection(
    engine: Engine, changes: Sequence[Change], on: Connection | None = None
) -> Iterator[Connection]:
    """A connection outside any transaction for ``changes`` (``on``, when the caller lends
    one); for Alembic revisions on SQLite, with foreign keys off (see ``transaction``) until it
    is given back."""
    if on is not None and not _references_off(engine.dialect.name, changes):
        yield on
        return
    if not _references_off(engine.dialect.name, changes):
        with engine.connect() as conn:
            yield conn
        return
    with engine.connect() as conn:
        sqlite = conn.connection.dbapi_connection
        assert sqlite is not None
        sqlite.execute("PRAGMA foreign_keys = OFF")  # only outside a transaction does it count
        try:
            yield conn
        finally:
            sqlite.execute("PRAGMA foreign_keys = ON")


def _references_off(dialect: str, changes: Sequence[Change]) -> bool:
    return dialect == "sqlite" and any(c.kind == ChangeKind.ALEMBIC for c in changes)


def _refuse_broken_references(conn: Connection, changes: Sequence[Change]) -> None:
    """Refuse, before the commit, rows that ``changes`` left referring to nothing while their
    foreign keys were off (see ``_connection``)."""
    if not _references_off(conn.dialect.name, changes):
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise ChangeFailed(
            f"{', '.join(c.label for c in changes)} left {len(broken)} rows of "
            f"{', '.join(tables)} referring to rows that do not exist",
            hint=_failed_hint(changes[-1]),
            change=changes[-1].number,
        )


def _lock_not_available(failure: ChangeFailed) -> bool:
    cause = failure.__cause__
    cause = getattr(cause, "orig", None) or cause
    return isinstance(cause, psycopg.errors.LockNotAvailable)


def _apply_once(engine: Engine, change: Change, release: str, lock_ms: int | None) -> Applied:
    started = time.perf_counter()
    if lock_ms is not None:
        engine = engine.execution_options(stairway_lock_timeout_ms=lock_ms)
    if change.in_parts:
        _apply_in_parts(engine, change, release, started)
    elif (
        engine.dialect.name == "postgresql"
        and change.kind == ChangeKind.SQL
        and change.transactional
        and change.origin is None  # an adopted history's table is written in the same transaction
    ):
        _apply_postgres_sql(engine, change, release, started)
    elif change.transactional or engine.dialect.name != "postgresql":
        with transaction(engine, [change]) as conn:
            if lock_ms is not None:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_ms)}")
            _run_up(conn, change)
            _record(conn, change, release, started)
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if lock_ms is not None:
                conn.exec_driver_sql(f"SET lock_timeout = {int(lock_ms)}")
            _run_up(conn, change)
            if lock_ms is not None:
                conn.exec_driver_sql("RESET lock_timeout")
        with engine.begin() as conn:
            _record(conn, change, release, started)
    return Applied(change, _since(started))


def _apply_in_parts(engine: Engine, change: Change, release: str, started: float) -> None:
    """An Alembic revision with an autocommit block, run as ``alembic upgrade`` runs it: the
    part before the block commits, the block runs in autocommit, and the rest commits with
    Stairway's record and ``alembic_version``: the revision is recorded when its last part
    commits, and until then the next run runs it again from the start."""
    with _connection(engine, [change]) as conn:

        def record() -> None:
            _record(conn, change, release, started)
            _refuse_broken_references(conn, [change])

        _call(conn, change, "upgrade", record)


def _record(conn: Connection, change: Change, release: str, started: float) -> None:
    if conn.dialect.name == "postgresql" and change.kind == ChangeKind.ALEMBIC:
        _record_alembic_postgres(conn, change, release, started)
        return
    recorder.record(conn, change, release, _since(started), recorder.RecordKind.APPLIED)
    ledger.after_apply(conn, change, _since(started))


def _record_alembic_postgres(
    conn: Connection, change: Change, release: str, started: float
) -> None:
    """Stairway's record and ``alembic_version`` in one round trip: the same rows as the
    generic path, in the same transaction."""
    pg = conn.connection.dbapi_connection
    assert isinstance(pg, psycopg.Connection)
    row = recorder.record_sql(change, release, _since(started), recorder.RecordKind.APPLIED)
    from stairway.schema.histories.alembic_ledger import after_sql  # only Alembic's revisions

    statements = sql.SQL(";\n").join([row, after_sql(change)])
    with pg.cursor() as cursor:
        cursor.execute(statements)


class _GroupRecords:
    """The records of a run in one transaction. On PostgreSQL, Stairway's rows and each adopted
    Alembic table as the last revision leaves it go in one round trip before the commit (no
    one outside the transaction sees the difference); elsewhere, and for other adopted tools,
    each change is recorded as it runs."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._rows: list[sql.Composed] = []
        self._heads: dict[str, Change] = {}  # version table -> the last revision recorded in it

    def add(self, change: Change, release: str, started: float) -> None:
        """Record ``change``, now or at :meth:`write`."""
        alembic = change.kind == ChangeKind.ALEMBIC
        if self._conn.dialect.name != "postgresql" or (change.origin is not None and not alembic):
            _record(self._conn, change, release, started)
            return
        kind = recorder.RecordKind.APPLIED
        self._rows.append(recorder.record_sql(change, release, _since(started), kind))
        if change.origin is not None:
            self._heads[change.origin.table] = change

    def write(self) -> None:
        """Send what :meth:`add` kept."""
        from stairway.schema.histories.alembic_ledger import after_sql  # Alembic's tables only

        statements = [*self._rows, *(after_sql(change) for change in self._heads.values())]
        if not statements:
            return
        pg = self._conn.connection.dbapi_connection
        assert isinstance(pg, psycopg.Connection)
        with pg.cursor() as cursor:
            cursor.execute(sql.SQL(";\n").join(statements))


def _apply_postgres_sql(engine: Engine, change: Change, release: str, started: float) -> None:
    """The same transaction as the generic path, in fewer round trips to the server.

    ``BEGIN`` travels with the first statement and the bookkeeping row with ``COMMIT``, each pair
    as one simple-protocol query, so a one-statement change costs two round trips instead of four.
    Statements still go one by one, so a failure names the statement that failed.
    """
    lock_ms = engine.get_execution_options().get("stairway_lock_timeout_ms")
    begin = f"BEGIN;\nSET LOCAL lock_timeout = {int(lock_ms)};\n" if lock_ms else "BEGIN;\n"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        pg = conn.connection.dbapi_connection
        assert isinstance(pg, psycopg.Connection)
        with pg.cursor() as cursor:
            try:
                for index, statement in enumerate(change.statements):
                    _execute(cursor, change, statement, begin if index == 0 else "")
                begin = "" if change.statements else "BEGIN;\n"
                insert = recorder.record_sql(
                    change, release, _since(started), recorder.RecordKind.APPLIED
                )
                cursor.execute(begin + insert.as_string(pg) + ";\nCOMMIT")
            finally:
                if pg.info.transaction_status != TransactionStatus.IDLE:
                    pg.execute("ROLLBACK")


def revert(engine: Engine, change: Change) -> Applied:
    """Run a change's declared down direction and forget it, in one transaction (in parts, the
    last one forgetting it, for an Alembic revision with an autocommit block)."""
    started = time.perf_counter()
    if change.in_parts:
        _revert_in_parts(engine, change)
        return Applied(change, _since(started))
    with transaction(engine, [change]) as conn:
        if change.kind in (ChangeKind.PYTHON, ChangeKind.ALEMBIC):
            _call(conn, change, "downgrade")
        else:
            _run_statements(conn, change, change.down or ())
        _forget(conn, change)
    return Applied(change, _since(started))


def _revert_in_parts(engine: Engine, change: Change) -> None:
    """``downgrade()`` of a revision with an autocommit block, as ``_apply_in_parts`` runs its
    ``upgrade()``: it is forgotten when its last part commits."""
    with _connection(engine, [change]) as conn:

        def forget() -> None:
            _forget(conn, change)
            _refuse_broken_references(conn, [change])

        _call(conn, change, "downgrade", forget)


def _forget(conn: Connection, change: Change) -> None:
    recorder.forget(conn, change)
    ledger.after_revert(conn, change)


def refuse_data_loss(changes: Sequence[Change], allow_data_loss: bool) -> None:
    """Refuse to take ``changes`` down if one cannot be undone or, unless allowed, would lose data.

    Raises:
        SchemaError: a change declares no down direction.
        DataLossRefused: a change's ``loses`` says it loses data and ``allow_data_loss`` is false.
    """
    irreversible = [c.label for c in changes if not c.reversible]
    if irreversible:
        raise SchemaError(
            f"no down direction declared for {', '.join(irreversible)}",
            hint="restore a backup taken before the upgrade instead",
        )
    said = {c.key: _loses(c) for c in changes}
    losses = [f"{c.label}: {said[c.key]}" for c in changes if said[c.key] not in (None, "nothing")]
    if losses and not allow_data_loss:
        raise DataLossRefused(
            "going down loses data: " + "; ".join(losses),
            hint="take a backup, then add --allow-data-loss if this loss is acceptable",
        )


def _loses(change: Change) -> str | None:
    """What going down loses: declared, or, for an Alembic revision, read from its rendered
    ``downgrade()``."""
    if change.kind == ChangeKind.ALEMBIC and change.has_python_down:
        from stairway.schema.histories.alembic_render import loses  # renders: Alembic only

        return loses(change)
    return change.loses


def _run_up(conn: Connection, change: Change) -> None:
    if change.batches is not None:
        background.queue(conn, change)  # its batches run while the product serves
    elif change.kind in (ChangeKind.PYTHON, ChangeKind.ALEMBIC):
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
            change=change.number,
            line=statement.line,
        ) from err


def _call(
    conn: Connection, change: Change, function: str, last: Callable[[], None] | None = None
) -> None:
    """Call ``function`` of a Python change or Alembic revision on ``conn``, in its transaction;
    with ``last``, an Alembic revision in parts (``alembic_runtime.run_in_parts``)."""
    try:
        if last is not None:
            alembic_runtime.run_in_parts(conn, change, function, last)
        elif change.kind == ChangeKind.ALEMBIC:
            alembic_runtime.run(conn, change, function)
        else:
            getattr(_load(change), function)(conn)
    except SchemaError:
        raise
    except DBAPIError as err:
        raise ChangeFailed(
            f"change {change.label} failed in {function}(): {_reason(err.orig or err)}",
            hint=_failed_hint(change),
            change=change.number,
        ) from err
    except Exception as err:
        raise ChangeFailed(
            f"change {change.label} raised {type(err).__name__} in {function}(): {err}",
            hint=_failed_hint(change),
            change=change.number,
        ) from err


def _failed_hint(change: Change) -> str:
    if change.transactional:
        return "the change was rolled back; fix it in a new release of the catalog"
    return (
        "the part that failed was rolled back, but what the revision committed before it (the "
        "part before its autocommit block) stays, as alembic upgrade leaves it; the revision is "
        "not recorded and runs again from the start: make it re-runnable (IF NOT EXISTS) and fix "
        "it in a new release of the catalog"
    )


def _load(change: Change) -> ModuleType:
    name = f"stairway_change_{change.number}_{change.patch}_{change.checksum[:12]}"
    spec = importlib.util.spec_from_file_location(name, change.path)
    if spec is None or spec.loader is None:
        raise SchemaError(
            f"cannot load {change.path}",
            hint="a Python change must be a readable .py file in the catalog's schema directory",
        )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reason(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
