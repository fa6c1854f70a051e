"""Consistent database snapshots and their restore: SQLite's online backup API, PostgreSQL's
pg_dump / pg_restore into a database beside the live one, then swapped in by renaming."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from stairway import faults
from stairway.database import dispose_all, sqlite_path
from stairway.errors import BackupError
from stairway.files import sync_directory

SQLITE_MEMBER = "database/site.sqlite"
POSTGRES_MEMBER = "database/site.pgdump"


# --- SQLite -----------------------------------------------------------------------------------


def dump_sqlite(engine: Engine, target: Path, exact: bool = False) -> None:
    """Copy the live SQLite database to ``target`` page by page, consistent at one instant;
    ``exact``: the file byte for byte, writers held off while it is copied (SQLite's own copy
    bumps the header's change counter, so a restore of it is equal but not identical)."""
    source = sqlite_path(engine)
    assert source is not None
    # closing(): a sqlite3 connection's own `with` commits but leaves the file open, and an
    # open handle on the live file is what a restore's holder check refuses to swap under.
    with closing(sqlite3.connect(source, isolation_level=None)) as live:
        if exact:
            live.execute("BEGIN IMMEDIATE")  # no writer until the copy is whole
            shutil.copyfile(source, target)
            live.execute("ROLLBACK")
            return
        with closing(sqlite3.connect(target)) as copy:
            live.backup(copy)


def check_sqlite(path: Path) -> None:
    """Open the SQLite file at ``path`` read-only and run its quick check.

    Raises BackupError when it does not open or the check finds damage.
    """
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            result = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as err:
        raise BackupError(
            f"the database in the backup does not open: {err}", hint="use another backup"
        ) from None
    if not result or result[0] != "ok":
        raise BackupError(
            f"the database in the backup fails its check: {result}", hint="use another backup"
        )


def stage_sqlite(engine: Engine, staged: Path) -> Path:
    """Copy ``staged`` beside the live database file (same file system: the swap is a rename);
    the copy is removed again if it cannot be made whole."""
    live = sqlite_path(engine)
    assert live is not None
    beside = live.with_name(f".{live.name}.restoring")
    try:
        faults.point("before:stage-write")
        shutil.copyfile(staged, beside)
        with beside.open("rb") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        beside.unlink(missing_ok=True)  # a torn copy the size of the database, on a full disk
        raise
    return beside


def swap_sqlite(engine: Engine, beside: Path) -> None:
    """Put the copy ``stage_sqlite`` made in place of the live database file in one rename."""
    live = sqlite_path(engine)
    assert live is not None
    dispose_all()
    before, after = faults.around("db-swap")
    faults.point(before)
    for journal in (live.with_name(live.name + "-wal"), live.with_name(live.name + "-shm")):
        journal.unlink(missing_ok=True)  # a stale WAL would be replayed onto the restored file
    os.replace(beside, live)
    sync_directory(live.parent)
    faults.point(after)


# --- PostgreSQL ---------------------------------------------------------------------------------


def client_tool(name: str, engine: Engine) -> str:
    """The PostgreSQL client tool ``name`` on PATH, refused when older than the server."""
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not on PATH: it is needed to back up and restore PostgreSQL",
            hint="install the PostgreSQL client tools (Debian: apt install postgresql-client)",
        )
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    digits = re.search(r"(\d+)", version)
    tool_major = int(digits.group(1)) if digits else 0
    with engine.connect() as conn:
        server = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
    if tool_major < server // 10000:
        raise BackupError(
            f"{name} {tool_major} is older than the server ({server // 10000}): it cannot "
            "read or write this server's dumps",
            hint=f"install the client tools of PostgreSQL {server // 10000} or newer",
        )
    return found


def libpq_of(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment carrying it."""
    plain = url.set(drivername="postgresql", password=None)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return plain.render_as_string(hide_password=False), env


def dump_postgres(engine: Engine, target: Path) -> None:
    """``pg_dump -Fc``: one consistent snapshot (a single repeatable-read transaction)."""
    pg_dump = client_tool("pg_dump", engine)
    conninfo, env = libpq_of(engine.url)
    _run([pg_dump, "--format=custom", f"--file={target}", f"--dbname={conninfo}"], env, "pg_dump")


def stage_postgres(engine: Engine, dump: Path, suffix: str) -> None:
    """Restore ``dump`` into a new database beside the live one (dropped again if that fails);
    the live database is untouched until :func:`swap_postgres`."""
    pg_restore = client_tool("pg_restore", engine)
    live = str(engine.url.database)
    side, old = _side_names(live, suffix)
    dispose_all()
    with _admin(engine.url) as admin:
        _settle(admin, live, side, old)
        owner = admin.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (live,)
        ).fetchone()
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 OWNER {}").format(
                sql.Identifier(side), sql.Identifier(str(owner[0]) if owner else "postgres")
            )
        )
    try:
        faults.point("before:stage-write")
        conninfo, env = libpq_of(engine.url.set(database=side))
        _run([pg_restore, "--exit-on-error", f"--dbname={conninfo}", str(dump)], env, "pg_restore")
    except BaseException:
        drop_staged_postgres(engine, suffix)
        raise


def drop_staged_postgres(engine: Engine, suffix: str) -> None:
    """The database :func:`stage_postgres` made, dropped (a restore that stops before its swap)."""
    side, _ = _side_names(str(engine.url.database), suffix)
    with _admin(engine.url) as admin:
        _drop(admin, side)


def swap_postgres(engine: Engine, suffix: str) -> None:
    """The staged database takes the live one's name (two renames on the server); the old one is
    dropped only after."""
    live = str(engine.url.database)
    side, old = _side_names(live, suffix)
    dispose_all()
    try:
        _swap(engine.url, live, side, old)
    except BaseException:
        drop_staged_postgres(engine, suffix)
        raise
    faults.point("after:db-swap")
    with _admin(engine.url) as admin:
        _drop(admin, old)


def restore_into(engine: Engine, dump: Path) -> None:
    """``pg_restore`` into the empty database ``engine`` names (a rehearsal's scratch one)."""
    pg_restore = client_tool("pg_restore", engine)
    conninfo, env = libpq_of(engine.url)
    _run(
        [pg_restore, "--exit-on-error", "--no-owner", f"--dbname={conninfo}", str(dump)],
        env,
        "pg_restore",
    )


def settle_renamed(url: URL) -> bool:
    """A restore killed between its two renames leaves no database under the live name, only
    the one renamed away: put that one back, so the restore (or rollback) can run again."""
    live = str(url.database)
    stem = live[:40]
    with _admin(url) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (live,)).fetchone():
            return False
        renamed = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{stem}%\\_replaced\\_%",)
        ).fetchall()
        if len(renamed) != 1:
            return False
        _rename(admin, str(renamed[0][0]), live)
    return True


def _settle(admin: psycopg.Connection[tuple[object, ...]], live: str, side: str, old: str) -> None:
    """What a restore killed part-way left: the live database renamed away and not yet
    replaced is put back under its name; a half-restored side copy is dropped."""
    names = {
        str(row[0])
        for row in admin.execute(
            "SELECT datname FROM pg_database WHERE datname IN (%s, %s, %s)", (live, side, old)
        ).fetchall()
    }
    if live not in names and old in names:
        _rename(admin, old, live)
    elif old in names:
        _drop(admin, old)
    if side in names:
        _drop(admin, side)


def _rename(admin: psycopg.Connection[tuple[object, ...]], name: str, to: str) -> None:
    admin.execute(
        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(name), sql.Identifier(to))
    )


def _drop(admin: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _swap(url: URL, live: str, side: str, old: str) -> None:
    with _admin(url) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (live,),
        )
        faults.point("before:db-swap")
        admin.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(live), sql.Identifier(old)
            )
        )
        faults.point("between:db-swap")
        try:
            admin.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(side), sql.Identifier(live)
                )
            )
        except psycopg.Error:
            admin.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(old), sql.Identifier(live)
                )
            )
            raise


def _side_names(live: str, suffix: str) -> tuple[str, str]:
    short = re.sub(r"\W", "", suffix)[-12:]
    stem = live[: 63 - len(short) - 10]
    return f"{stem}_restore_{short}", f"{stem}_replaced_{short}"


@contextmanager
def _admin(url: URL) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to the server's maintenance database."""
    conninfo, _ = libpq_of(url.set(database="postgres"))
    password = str(url.password) if url.password else None
    with psycopg.connect(conninfo, password=password, autocommit=True) as conn:
        yield conn


def _run(command: list[str], env: dict[str, str], name: str) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(
            f"{name} failed: {detail[-1] if detail else f'exit {done.returncode}'}",
            hint="the live database was not changed; check the server and the tools",
        )


def engine_kind(engine: Engine) -> str:
    """``sqlite`` or ``postgresql``: the engine name a backup manifest records."""
    return "sqlite" if engine.dialect.name == "sqlite" else "postgresql"
