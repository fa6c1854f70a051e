"""Empty scratch databases of a site's engine, made to try something out and thrown away.

SQLite: a file in a temporary directory. PostgreSQL: a new database on the same server, which
needs the site's user to have ``CREATEDB``; it is dropped afterwards whatever happens.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine


@contextmanager
def scratch_engine(live: Engine, label: str) -> Iterator[Engine]:
    """An engine on a new, empty database of ``live``'s kind; ``label`` goes into its name."""
    if live.dialect.name != "postgresql":
        with tempfile.TemporaryDirectory(prefix=f"stairway-{label}-") as folder:
            scratch = create_engine(f"sqlite:///{Path(folder) / 'scratch.db'}")
            try:
                yield scratch
            finally:
                scratch.dispose()
        return
    name = f"stairway_{label}_{uuid.uuid4().hex[:10]}"
    admin = live.url.set(drivername="postgresql", database="postgres")
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    scratch = create_engine(live.url.set(database=name))
    try:
        yield scratch
    finally:
        scratch.dispose()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))
