"""Watching a running task: a thread that tells a ``Progress`` how far it has come, every few
seconds, until it ends.

A reindex on PostgreSQL is read from ``pg_stat_progress_create_index`` through a second
session (``stairway.operations.reindex.poll``): its phase, the fraction done and so an ETA. A
command, or a reindex on SQLite, reports its elapsed time only. Progress is advisory: a poll
that fails stops the watching, never the task.

The watcher of a task run in the background (one the product serves during) also reads at each
report whether a rollback asked the runner to stop (``stairway.background_stop``); then it
interrupts what can be interrupted safely: a reindex on PostgreSQL is cancelled (again at each
report until it has ended: a cancel sent before the statement began reaches nothing), a command
declared idempotent is stopped; any other command is let finish.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import Connection, text

from stairway import background_stop
from stairway.context import Context
from stairway.operations import reindex
from stairway.progress import Progress
from stairway.tasks import Task, TaskProgress

log = logging.getLogger(__name__)

EVERY = 2.0  # seconds between two reports
PERMILLE = 1000  # a reindex reports its fraction done as ``done`` of this many units


class Watch:
    """What the body running a task and its watcher share: how to interrupt the run, and
    whether it was interrupted because a rollback asked the runner to stop."""

    def __init__(self) -> None:
        self.stopped = threading.Event()  # set once an interruption was asked for
        self.interrupt: Callable[[], None] | None = None  # set by the body when it can be
        self.asked: background_stop.StopRequest | None = None


@contextmanager
def watching(
    ctx: Context, task: Task, progress: Progress[TaskProgress] | None, every: float | None = None
) -> Iterator[Watch]:
    """Report ``task``'s progress every ``every`` seconds (default ``EVERY``) while the body
    runs it; for a task run in the background, interrupt it when a rollback asks."""
    every = every or EVERY
    watch = Watch()
    if progress is None:
        yield watch
        return
    ended = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(ctx, task, progress, every, ended, watch), name=f"watch {task.name}"
    )
    watcher.start()
    try:
        yield watch
    finally:
        ended.set()
        watcher.join()


def report(progress: Progress[TaskProgress], found: TaskProgress) -> None:
    """One report: a fraction as permille of the whole, else the seconds run of an unknown total."""
    if found.fraction is None:
        progress(int(found.elapsed), None, found)
    else:
        progress(round(found.fraction * PERMILLE), PERMILLE, found)


def _watch(
    ctx: Context,
    task: Task,
    progress: Progress[TaskProgress],
    every: float,
    ended: threading.Event,
    watch: Watch,
) -> None:
    started = time.monotonic()
    polled = task.reindex and ctx.engine.dialect.name == "postgresql"
    try:
        with _session(ctx) if polled else nullcontext() as conn:
            while not ended.wait(every):
                if task.serving:
                    _stop_if_asked(ctx, task, watch, conn)
                found = _read(conn, task, time.monotonic() - started)
                if found is not None:
                    report(progress, found)
    except Exception as err:  # advisory: the task runs on without its progress
        log.warning("progress of task %s no longer read: %s", task.name, err)


def _stop_if_asked(ctx: Context, task: Task, watch: Watch, conn: Connection | None) -> None:
    if watch.asked is None:
        watch.asked = background_stop.asked(ctx.engine)
        if watch.asked is None:
            return
        log.warning("%s: %s", watch.asked.describe(), _what_is_done(task, watch, conn))
    if conn is not None:  # a reindex on PostgreSQL: cancel its statement, until it has ended
        watch.stopped.set()
        name = reindex.session_name(task)
        conn.execute(text(_CANCEL), {"name": name})
    elif watch.interrupt is not None and not watch.stopped.is_set():
        watch.stopped.set()
        watch.interrupt()


def _what_is_done(task: Task, watch: Watch, conn: Connection | None) -> str:
    if conn is not None:
        return f"cancelling the reindex of task {task.name}"
    if watch.interrupt is not None:
        return f"stopping task {task.name} (declared idempotent)"
    return f"letting task {task.name} finish (not declared idempotent), then stopping"


_CANCEL = """
SELECT pg_cancel_backend(pid) FROM pg_stat_activity
WHERE application_name = :name AND datname = current_database() AND pid <> pg_backend_pid()
"""


def _session(ctx: Context) -> Connection:
    # each poll its own transaction: PostgreSQL freezes its activity views per transaction
    return ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _read(conn: Connection | None, task: Task, elapsed: float) -> TaskProgress | None:
    if conn is None:  # nothing to ask: the time it has run is all there is to tell
        return TaskProgress(task.name, "running", elapsed)
    return reindex.poll(conn, task, elapsed)
