"""A backup's database opened beside the live one, to be read and compared, then thrown away.

SQLite: the copy from the archive, opened read-only where it was extracted. PostgreSQL: the
dump restored by ``pg_restore`` into a new database on the same server, dropped afterwards
whatever happens. The live database is never written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL

from stairway.backup import database


@contextmanager
def opened_copy(live: Engine, dump: Path) -> Iterator[Engine]:
    """An engine on the backup's database (``dump`` as extracted from the archive)."""
    if live.dialect.name == "sqlite":
        database.check_sqlite(dump)
        engine = create_engine(f"sqlite:///file:{dump}?mode=ro&uri=true")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    with _postgres_copy(live, dump) as engine:
        yield engine


@contextmanager
def _postgres_copy(live: Engine, dump: Path) -> Iterator[Engine]:
    name = f"{str(live.url.database)[:40]}_losses_{uuid.uuid4().hex[:8]}"
    admin = _admin(live.url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    engine = create_engine(live.url.set(database=name))
    try:
        database.restore_into(engine, dump)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


def _admin(url: URL) -> str:
    """The server's maintenance database: creating and dropping another needs a third one."""
    admin = url.set(drivername="postgresql", database="postgres")
    return admin.render_as_string(hide_password=False)
