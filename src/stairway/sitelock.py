"""One command at a time changes a site: the site lock.

Every command that changes a site (upgrade, rollback, restore, migrate, import, rekey ...) holds
it for its whole run; read-only ones (status, plan, verify, export) never take it. It is made of
locks that die with the process holding them, so a killed command never leaves a stale one:

- an ``flock`` on ``backup_dir/.site.lock`` (the journal and the backups live there);
- on SQLite, an ``flock`` on ``<database>.stairway-site-lock``, so two site files naming one
  database with different backup directories still collide;
- on PostgreSQL, a session advisory lock held on a connection of its own to the server's
  ``postgres`` database. Not the site's database: a restore terminates every session on it and
  swaps it for another, which would drop the lock half-way through the run.

The holder writes its pid, command line and start time into each lock file once it holds the
lock; another command reads that only when it finds the lock taken, so it names the holder.
Within one process the lock is reentrant: ``upgrade`` takes it and then calls ``migrate``,
``backup`` and ``restore``, each of which takes it too.

An import of one shard (``import --shard i/N``) takes it shared: the machines of a sharded import
load one database together, and anything else that changes the site waits for all of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import orjson
import psycopg
from sqlalchemy import Engine

from stairway.database import shown, sqlite_path
from stairway.errors import SiteBusy, SiteError
from stairway.site import Site

FILE = ".site.lock"
DATABASE_SUFFIX = ".stairway-site-lock"  # not the migrator's ".stairway-lock": both are held
# For fault tests only: "<seconds>" or "<seconds>:<file>" pauses a command right after it takes
# the lock, for that long or until the file exists, so that a test can start a second command
# while the first one certainly holds it, then let the first one go on.
HOLD = "STAIRWAY_HOLD"
_READ_TRIES = 20  # the holder writes its name just after it takes the lock: give it a moment
_READ_PAUSE = 0.05


@dataclass(frozen=True)
class Holder:
    """Who holds the lock: what ``SiteBusy`` names."""

    pid: int
    command: str
    since: str  # ISO 8601, UTC
    host: str = ""

    def describe(self) -> str:
        """The holder's pid, command and start time, for the message that it is busy."""
        started = self.since[11:19] if len(self.since) >= 19 else self.since
        return f"pid {self.pid}, `{self.command}`, since {started} UTC"

    def encode(self) -> bytes:
        """The holder as the JSON line written into the lock files."""
        return orjson.dumps(self.__dict__) + b"\n"

    @classmethod
    def decode(cls, data: bytes) -> Holder | None:
        """The holder a lock file names, or None when it is empty or being written."""
        try:
            value = orjson.loads(data)
            return cls(int(value["pid"]), str(value["command"]), str(value["since"]), value["host"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # empty (released) or being written


class SiteContext(Protocol):
    """What the lock needs of a command's context (``context.Context`` is one)."""

    @property
    def site(self) -> Site:
        """The operator's site."""

    @property
    def engine(self) -> Engine:
        """The engine of the site's database."""


@dataclass
class _Held:
    depth: int
    shared: bool = False
    fds: list[int] = field(default_factory=list)
    conn: psycopg.Connection[tuple[object, ...]] | None = None


_HELD: dict[tuple[Path, ...], _Held] = {}
_GUARD = threading.Lock()  # the registry; threads of one process share the site lock


@contextlib.contextmanager
def site_lock(ctx: SiteContext, command: str | None = None, shared: bool = False) -> Iterator[None]:
    """Hold the site lock for the block; raises ``SiteBusy`` (exit 2) when another process does.

    ``command`` names the holder for others (default: this process's command line). ``shared``
    lets other shared holders in (shards of one import). Taken again by the same process, the
    lock is only counted: it stays as it was first taken.
    """
    files = lock_files(ctx.site, ctx.engine)
    with _GUARD:
        held = _HELD.get(files)
        first = held is None
        if held is None:
            holder = Holder(os.getpid(), command or command_line(), _now(), socket.gethostname())
            held = _HELD[files] = _acquire(files, ctx.engine, holder, shared)
        else:
            held.depth += 1
    try:
        if first:
            _pause_for_tests()
        yield
    finally:
        with _GUARD:
            held.depth -= 1
            if held.depth == 0:
                del _HELD[files]
                _release(held)


P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=SiteContext)


def changes_site(run: Callable[Concatenate[C, P], R]) -> Callable[Concatenate[C, P], R]:
    """Decorate a function whose first argument is the site's context: it runs under the lock."""

    @functools.wraps(run)
    def locked(ctx: C, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with site_lock(ctx):
            return run(ctx, *args, **kwargs)

    return locked


def is_held(ctx: SiteContext) -> bool:
    """Whether this process holds the site's lock."""
    with _GUARD:
        return lock_files(ctx.site, ctx.engine) in _HELD


def lock_files(site: Site, engine: Engine) -> tuple[Path, ...]:
    """The files locked for ``site``, in the order they are taken (the same in every process);
    one in a directory that does not exist yet is left out when the lock is taken."""
    found: list[Path] = []
    if site.site.backup_dir is not None:
        found.append(site.site.backup_dir.resolve() / FILE)
    database = sqlite_path(engine)
    if database is not None:
        database = database.resolve()
        found.append(database.with_name(database.name + DATABASE_SUFFIX))
    if not found:  # PostgreSQL and no backup_dir: a file of the site's own, beside site.toml
        where = site.path.resolve()
        found.append(where.with_name(f".{where.name}{DATABASE_SUFFIX}"))
    return tuple(found)


def command_line() -> str:
    """This process's command as an operator typed it: ``stairway upgrade --to 2.0.0``."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program in ("__main__.py", "stairway", "-m", "-c"):
        program = "stairway" if program != "-c" else "python -c"
    return shlex.join([program, *sys.argv[1:]])


def read_holder(path: Path) -> Holder | None:
    """The holder named in a lock file; call it only while the lock is busy (see ``_busy``)."""
    try:
        return Holder.decode(path.read_bytes())
    except OSError:
        return None


# --- taking and releasing ---------------------------------------------------------------------


def _acquire(files: tuple[Path, ...], engine: Engine, holder: Holder, shared: bool) -> _Held:
    held = _Held(depth=1, shared=shared)
    try:
        # A backup directory not made yet is not made for the lock (the database's lock, always
        # taken, still excludes every other command); the registry's key stays the same.
        for path in (f for f in files if f.parent.is_dir()):
            held.fds.append(_lock_file(path, holder, shared))
        if engine.dialect.name == "postgresql":
            held.conn = _lock_database(engine, holder, shared)
    except BaseException:
        _release(held)
        raise
    return held


def _lock_file(path: Path, holder: Holder, shared: bool) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the product we start
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _busy(path) from None
    # Only the holder writes, and only once it holds the lock: what a refused command reads
    # there is the live holder (or, for an instant, nothing yet; ``_busy`` waits for it). A
    # shared holder leaves the name of another one that is still alive.
    if not (shared and _named_alive(path)):
        os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):  # a full disk: the lock holds, only its name is lost
            os.pwrite(fd, holder.encode(), 0)
    return fd


def _named_alive(path: Path) -> bool:
    named = read_holder(path)
    return named is not None and _alive(named)


def _busy(path: Path) -> SiteBusy:
    holder = None
    for _ in range(_READ_TRIES):
        holder = read_holder(path)
        if holder is not None and _alive(holder):
            return SiteBusy(holder.describe(), str(path))
        time.sleep(_READ_PAUSE)
    return SiteBusy(None, str(path))  # a shared holder left, another holds it unnamed


def _alive(holder: Holder) -> bool:
    """False for the name a killed holder left behind, until the new holder overwrites it."""
    if holder.host != socket.gethostname():
        return True  # another machine's process (a shared backup_dir): cannot tell, trust it
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _release(held: _Held) -> None:
    if held.conn is not None:
        with contextlib.suppress(psycopg.Error):
            held.conn.close()  # ends the session, and its advisory lock with it
    for fd in reversed(held.fds):
        if not held.shared:  # a shared one may leave others holding it, named here
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # released: no name left to mislead a reader
        os.close(fd)  # closing the last descriptor releases the flock


# --- PostgreSQL ---------------------------------------------------------------------------------


def advisory_key(database: str) -> int:
    """The site's key in the server's advisory lock space: one per database name, never the
    migrator's fixed key (``schema.lock.ADVISORY_KEY``), kept positive for ``pg_locks``."""
    digest = hashlib.sha256(b"stairway-site:" + database.encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def _lock_database(
    engine: Engine, holder: Holder, shared: bool
) -> psycopg.Connection[tuple[object, ...]]:
    key = advisory_key(str(engine.url.database))
    conn = _connect(engine, holder)
    take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    try:
        taken = conn.execute(f"SELECT {take}(%s)", (key,)).fetchone()
        if not (taken and taken[0]):
            raise SiteBusy(_database_holder(conn, key), f"database {engine.url.database}")
    except BaseException:
        conn.close()
        raise
    return conn


def _connect(engine: Engine, holder: Holder) -> psycopg.Connection[tuple[object, ...]]:
    """Autocommit, to the maintenance database; the site's own only where that one is closed to
    us (then a restore of the site ends the session, and the file lock alone remains)."""
    name = f"stairway {holder.pid}: {holder.command}"[:63]  # names the holder in pg_stat_activity
    url = engine.url.set(drivername="postgresql")
    try:
        return _open(url.set(database="postgres").render_as_string(hide_password=False), name)
    except psycopg.OperationalError:
        pass
    try:
        return _open(url.render_as_string(hide_password=False), name)
    except psycopg.OperationalError as err:
        raise SiteError(
            f"cannot take the site lock on {shown(engine.url)}: {str(err).strip().splitlines()[0]}",
            hint="check that the database server answers, then run the command again",
        ) from None


def _open(conninfo: str, name: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(conninfo, autocommit=True, application_name=name)


def _database_holder(conn: psycopg.Connection[tuple[object, ...]], key: int) -> str | None:
    row = conn.execute(
        "SELECT a.application_name, a.backend_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
        (key,),
    ).fetchone()
    if row is None:
        return None
    name, started = str(row[0]), row[1]
    pid, _, command = name.removeprefix("stairway ").partition(": ")
    since = f"{started.astimezone(UTC):%H:%M:%S} UTC" if isinstance(started, datetime) else "?"
    return f"pid {pid}, `{command or name}`, since {since}"


# --- helpers ------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pause_for_tests() -> None:
    seconds, _, until = os.environ.get(HOLD, "").partition(":")
    if not seconds:
        return
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline and not (until and Path(until).exists()):
        time.sleep(_READ_PAUSE)
