"""Engines for the databases Stairway migrates: URL normalisation and engine-specific setup."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from stairway.errors import SiteError

_ENGINES: dict[str, Engine] = {}
SUPPORTED = ("sqlite", "postgresql")


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_for(url: str) -> Engine:
    """One engine per URL per process: guard() is called on every start and must stay cheap."""
    key = normalise_url(url)
    if key not in _ENGINES:
        _ENGINES[key] = _create(key)
    return _ENGINES[key]


def connected(url: str) -> Engine:
    """The engine for ``url`` once it has answered: a database that cannot be reached, or a
    SQLite file that cannot be one, is refused here, before a command touches anything."""
    engine = engine_for(url)
    path = sqlite_path(engine)
    if path is not None and not path.parent.is_dir():
        raise SiteError(
            f"the SQLite database {path} cannot be opened: its directory does not exist",
            hint="create the directory, or fix `database` in the [site] table of site.toml",
        )
    if path is None or path.exists():  # a new SQLite file is created by the first write
        _probe(engine)
    return engine


def _probe(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            # SQLite reads a file's header only when asked something of it
            sqlite = engine.dialect.name == "sqlite"
            conn.exec_driver_sql("PRAGMA schema_version" if sqlite else "SELECT 1")
    except DBAPIError as err:
        raise SiteError(
            f"cannot connect to the database {shown(engine.url)}: {_first_line(err)}",
            hint=_connect_hint(engine.url),
        ) from None


def shown(url: URL) -> str:
    """A database URL fit for a message: the password masked, the driver left out."""
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


def _first_line(err: DBAPIError) -> str:
    said = str(err.orig).strip() or type(err.orig).__name__
    return said.splitlines()[0]


def _connect_hint(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return "check that the file is a SQLite database this user may read and write"
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    return (
        f"check that PostgreSQL runs and accepts connections at {where}, and the user, "
        "password and database name in `database` of site.toml"
    )


def forget(url: str) -> None:
    """Close and drop the engine of ``url``, whose database is gone: a process that creates and
    drops many databases (a rehearsal, a benchmark) does not keep an engine for each."""
    engine = _ENGINES.pop(normalise_url(url), None)
    if engine is not None:
        engine.dispose()


def dispose_all() -> None:
    """Close every pooled connection. The engines stay cached and usable: one still held by a
    caller opens new connections, which the next call closes in turn."""
    for engine in list(_ENGINES.values()):  # a copy: another thread may be adding an engine
        engine.dispose()


def _create(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SiteError(
            f"{url!r} is not a database URL",
            hint="write sqlite:///path/to/app.db or postgresql://user@host:5432/dbname",
        ) from None
    if parsed.get_backend_name() not in SUPPORTED:
        raise SiteError(
            f"database engine {parsed.get_backend_name()!r} is not supported",
            hint="use SQLite (sqlite:///...) or PostgreSQL (postgresql://...)",
        )
    if parsed.get_backend_name() == "sqlite":
        return _sqlite(url)
    return create_engine(url, pool_pre_ping=False)


def _sqlite(url: str) -> Engine:
    engine = create_engine(url)
    # pysqlite opens transactions lazily and never before DDL; take control so that every
    # change, DDL included, runs inside one real transaction.
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA busy_timeout = 30000")
    dbapi_connection.execute("PRAGMA foreign_keys = ON")


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


def serialised(engine: Engine) -> Engine:
    """For a server's many short writing transactions: on SQLite, each takes the write lock at
    BEGIN (IMMEDIATE) and waits its turn, instead of failing with "database is locked" when
    two that began by reading both try to write. PostgreSQL engines are returned as they are."""
    if engine.dialect.name != "sqlite":
        return engine
    other = create_engine(engine.url)
    event.listen(other, "connect", _sqlite_connect)
    event.listen(other, "begin", lambda c: c.exec_driver_sql("BEGIN IMMEDIATE"))
    return other


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One transaction that writes, beside a running server: on SQLite it takes the write lock
    at BEGIN and waits its turn, where one that read first would fail with "database is
    locked" once the server wrote in between. Other engines: ``engine.begin()``."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    other = serialised(engine)
    try:
        with other.begin() as conn:
            yield conn
    finally:
        other.dispose()


def sqlite_path(engine: Engine) -> Path | None:
    """The file of a SQLite database; None for PostgreSQL or an in-memory database."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    return Path(database) if database and database != ":memory:" else None
