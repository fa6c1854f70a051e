"""Watching a running task: a thread that tells a ``Progress`` how far it has come, every few
seconds, until it ends.

A reindex on PostgreSQL is read from ``pg_stat_progress_create_index`` through a second
session (``stairway.operations.reindex.poll``): its phase, the fraction done and so an ETA. A
command, or a reindex on SQLite, reports its elapsed time only. Progress is advisory: a poll
that fails stops the watching, never the task.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import Connection

from stairway.context import Context
from stairway.operations import reindex
from stairway.progress import Progress
from stairway.tasks import Task, TaskProgress

log = logging.getLogger(__name__)

EVERY = 2.0  # seconds between two reports
PERMILLE = 1000  # a reindex reports its fraction done as ``done`` of this many units


@contextmanager
def watching(
    ctx: Context, task: Task, progress: Progress[TaskProgress] | None, every: float | None = None
) -> Iterator[None]:
    """Report ``task``'s progress every ``every`` seconds (default ``EVERY``) while the body
    runs it."""
    every = every or EVERY
    if progress is None:
        yield
        return
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(ctx, task, progress, every, stop), name=f"watch {task.name}"
    )
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def report(progress: Progress[TaskProgress], found: TaskProgress) -> None:
    """One report: a fraction as permille of the whole, else the seconds run of an unknown total."""
    if found.fraction is None:
        progress(int(found.elapsed), None, found)
    else:
        progress(round(found.fraction * PERMILLE), PERMILLE, found)


def _watch(
    ctx: Context, task: Task, progress: Progress[TaskProgress], every: float, stop: threading.Event
) -> None:
    started = time.monotonic()
    polled = task.reindex and ctx.engine.dialect.name == "postgresql"
    try:
        with _session(ctx) if polled else nullcontext() as conn:
            while not stop.wait(every):
                found = _read(conn, task, time.monotonic() - started)
                if found is not None:
                    report(progress, found)
    except Exception as err:  # advisory: the task runs on without its progress
        log.warning("progress of task %s no longer read: %s", task.name, err)


def _session(ctx: Context) -> Connection:
    # each poll its own transaction: PostgreSQL freezes its activity views per transaction
    return ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _read(conn: Connection | None, task: Task, elapsed: float) -> TaskProgress | None:
    if conn is None:  # nothing to ask: the time it has run is all there is to tell
        return TaskProgress(task.name, "running", elapsed)
    return reindex.poll(conn, task, elapsed)
