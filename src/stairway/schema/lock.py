"""One migrator at a time.

PostgreSQL: a session advisory lock held on a connection of its own, in autocommit, so that a
``CREATE INDEX CONCURRENTLY`` in a change does not wait on the lock's own transaction. SQLite: an
``flock`` on a file beside the database. Both die with the process that holds them, so a crashed
migrator never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from stairway.database import sqlite_path
from stairway.errors import LockTimeout

# A fixed key in PostgreSQL's advisory lock space: "stairway" as a signed 64-bit integer.
ADVISORY_KEY = int.from_bytes(b"stairway", "big", signed=True)
POLL_SECONDS = 0.1


@contextmanager
def migration_lock(engine: Engine, timeout: float = 30.0) -> Iterator[Connection | None]:
    """Hold the migration lock of the engine's database for the ``with`` block; on PostgreSQL,
    the connection that holds it (in autocommit: lend it with :func:`working`).

    An in-memory SQLite database has no lock: no other migrator can reach it.

    Raises:
        LockTimeout: another migrator still holds it after ``timeout`` seconds; names the holder.
    """
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, timeout) as conn:
            yield conn
        return
    path = sqlite_path(engine)
    if path is None:
        yield None
        return
    with _file_lock(path.with_name(path.name + ".stairway-lock"), timeout):
        yield None


@contextmanager
def working(engine: Engine, held: Connection | None) -> Iterator[Connection]:
    """A connection to work on under the lock: the lock's own when it has one, out of autocommit
    until it is given back (a command that needs one connection then opens one, not two, and
    the server one backend); otherwise a new one from the engine. The lock's connection is
    never left inside a transaction: a ``CREATE INDEX CONCURRENTLY`` elsewhere would wait on it.
    """
    if held is None:
        with engine.connect() as conn:
            yield conn
        return
    if held.in_transaction():  # autobegun by the lock's queries; in autocommit, nothing to end
        held.commit()
    level = engine.get_execution_options().get("isolation_level")
    held.execution_options(isolation_level=level or held.dialect.default_isolation_level)
    try:
        yield held
    finally:
        if held.in_transaction():
            held.rollback()
        held.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def _advisory_lock(engine: Engine, timeout: float) -> Iterator[Connection]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        _wait(lambda: _try_advisory(conn), timeout, lambda: _advisory_holder(conn))
        try:
            yield conn
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})


def _try_advisory(conn: Connection) -> bool:
    return bool(
        conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}).scalar()
    )


def _advisory_holder(conn: Connection) -> str:
    row = conn.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"
        ),
        {"key": ADVISORY_KEY},
    ).first()
    if row is None:
        return "another migrator"
    client = row.client_addr or "local"
    return f"server process {row.pid} (client {client}, since {row.backend_start:%H:%M:%S})"


@contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _wait(lambda: _try_flock(fd), timeout, lambda: f"another migrator (lock file {path})")
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait(attempt: Callable[[], bool], timeout: float, holder: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not attempt():
        if time.monotonic() >= deadline:
            who = holder()
            raise LockTimeout(
                f"{who} is migrating this database; gave up after {timeout:g} s",
                hint="wait for it to finish, or raise --lock-timeout; a crashed migrator "
                "releases the lock by itself",
                holder=who,
                waited=timeout,
            )
        time.sleep(POLL_SECONDS)
