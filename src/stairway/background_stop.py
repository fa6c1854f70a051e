"""A rollback's request that the background runner stop: a row in ``stairway_meta``.

A rollback must change the site alone, but ``stairway background run`` holds the site lock for
as long as its migrations and tasks take: a reindex of a big table runs for hours. So a rollback
that finds the lock held by a runner asks it to stop here, then waits for the lock. The runner
reads the request between two batches and two tasks, and every few seconds while a task runs:
it cancels a reindex (PostgreSQL cancels the statement; the next run drops what it left), stops
a command declared idempotent, lets any other command finish, puts the interrupted task back in
the queue and exits. A request carries the time until which its asker waits: one left by a
rollback that was killed stops no later runner.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from stairway.errors import RunnerNotStopped, SiteBusy, SiteError
from stairway.schema import migrator, recorder
from stairway.sitelock import SiteContext, command_line, site_lock

log = logging.getLogger(__name__)

KEY = "background.stop"
EVERY = 1.0  # seconds between two reads of the request by a runner between batches
WAIT = 120.0  # seconds a rollback waits for a runner to stop, by default
RUNNERS = ("background run", "tasks run")  # the commands a rollback may ask to stop
_RETRY = 0.1  # seconds between two attempts at the lock, or at the request on a busy SQLite


@dataclass(frozen=True)
class StopRequest:
    """Who asked the runner to stop, and until when (ISO 8601, UTC) it waits for it."""

    by: str
    until: str

    def describe(self) -> str:
        """The request on one line, as the runner says why it stopped."""
        return f"`{self.by}` asked the background runner to stop"


def ask(engine: Engine, by: str, seconds: float) -> StopRequest:
    """Ask a runner to stop, for ``seconds`` from now."""
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    found = StopRequest(by, until.isoformat(timespec="milliseconds"))
    migrator.ensure_bookkeeping(engine)
    with engine.begin() as conn:
        recorder.set_meta(conn, KEY, orjson.dumps(found.__dict__).decode())
    return found


def withdraw(engine: Engine) -> None:
    """Take the request back: the rollback holds the lock now, or gave up waiting."""
    with engine.begin() as conn:
        recorder.delete_meta(conn, KEY)


def asked(engine: Engine) -> StopRequest | None:
    """The request in force, if any. Advisory: a database that cannot be read asks nothing."""
    try:
        with engine.connect() as conn:
            raw = recorder.get_meta(conn, KEY)
    except DBAPIError:
        return None
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
        found = StopRequest(str(value["by"]), str(value["until"]))
        expired = datetime.fromisoformat(found.until) < datetime.now(UTC)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return None if expired else found


class Poll:
    """``asked`` at most once per ``every`` seconds: a runner calls it between every batch."""

    def __init__(self, engine: Engine, every: float = EVERY) -> None:
        self._engine = engine
        self._every = every
        self._next = 0.0
        self.found: StopRequest | None = None

    def __call__(self) -> bool:
        """Whether a stop was asked (it stays asked once seen)."""
        if self.found is None and time.monotonic() >= self._next:
            return self.now()
        return self.found is not None

    def now(self) -> bool:
        """Whether a stop was asked, read now: before a task begins, which may take hours."""
        self._next = time.monotonic() + self._every
        self.found = self.found or asked(self._engine)
        return self.found is not None


@contextlib.contextmanager
def site_lock_stopping_runner(ctx: SiteContext, wait: float = WAIT) -> Iterator[None]:
    """Hold the site lock for the block, as ``site_lock``; when a background runner holds it,
    ask that runner to stop and wait up to ``wait`` seconds for it to let go.

    Raises:
        SiteBusy: another command holds the lock, or the runner did not stop in time (it runs
            a command that cannot be interrupted safely).
    """
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(site_lock(ctx))
        except SiteBusy as busy:
            if not _runner_holds(busy):
                raise
            _wait_for_runner(ctx, held, busy, wait)
        yield


def _runner_holds(busy: SiteBusy) -> bool:
    return any(f"`stairway {name}" in (busy.holder or "") for name in RUNNERS)


def _wait_for_runner(
    ctx: SiteContext, held: contextlib.ExitStack, busy: SiteBusy, wait: float
) -> None:
    deadline = time.monotonic() + wait
    _ask_until(ctx.engine, deadline, busy)
    log.warning("the background runner holds the site (%s): asked it to stop", busy.holder)
    # While it waits this command holds no database file: a rollback that wins the lock first
    # refuses to swap the site while any other process has it open.
    ctx.engine.dispose()
    while True:
        try:
            held.enter_context(site_lock(ctx))
        except SiteBusy as still:
            # Another command took the site as the runner let go (a second rollback): it is
            # that command's to settle, and this one writes nothing more beside it.
            if not _runner_holds(still):
                raise
            if time.monotonic() >= deadline:
                _withdraw_quietly(ctx.engine)
                raise RunnerNotStopped(busy.holder, busy.where, wait) from None
            time.sleep(_RETRY)
            continue
        _withdraw_quietly(ctx.engine)
        return


def _withdraw_quietly(engine: Engine) -> None:
    with contextlib.suppress(DBAPIError):  # advisory: it expires at its deadline anyway
        withdraw(engine)


def _ask_until(engine: Engine, deadline: float, busy: SiteBusy) -> None:
    """Write the request; a SQLite database a reindex holds refuses writers until it ends.

    Raises:
        SiteError: it could not be written before the deadline (a full disk, a database
            that does not answer); the runner goes on and nothing was touched.
    """
    while True:
        try:
            ask(engine, command_line(), deadline - time.monotonic())
            return
        except DBAPIError as err:
            if time.monotonic() >= deadline:
                raise SiteError(
                    f"cannot ask the background runner ({busy.holder}) to stop: "
                    f"{str(err.orig).strip().splitlines()[0] if str(err.orig).strip() else err}",
                    hint="it still holds the site and nothing was touched: fix that, or wait "
                    "for it (`stairway background status`), then run the rollback again",
                ) from None
            time.sleep(_RETRY)
