"""The bulk rewrite: every stale object of the table migrated and written back, in batches.

Each batch is read in id order (keyset, never OFFSET), migrated in memory, written back and
checkpointed in one transaction. ``rate`` caps objects per second so a live product keeps its
database; a kill loses at most the batch in flight, which the next run does again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from sqlalchemy import Connection, select

from stairway.objects import checkpoints
from stairway.objects.checkpoints import Checkpoint
from stairway.objects.store import ObjectStore, StoredObject
from stairway.progress import Progress


@dataclass(frozen=True)
class RewriteReport:
    """What one bulk rewrite did: objects read, rewritten, and where it resumed."""

    job: str
    scanned: int
    rewritten: int
    resumed_at: int  # objects already done by an earlier, interrupted run
    seconds: float

    def describe(self) -> str:
        """The counts, the time taken and where it resumed, on one line."""
        resumed = f", resumed after {self.resumed_at:,}" if self.resumed_at else ""
        return (
            f"{self.scanned:,} objects read, {self.rewritten:,} rewritten "
            f"in {self.seconds:.1f} s{resumed}"
        )


def rewrite_all(
    store: ObjectStore,
    *,
    batch: int = 1000,
    rate: float | None = None,
    progress: Progress[Checkpoint] | None = None,
) -> RewriteReport:
    """Rewrite every object whose stored form is stale; resumes an interrupted pass."""
    started = time.monotonic()
    job = f"objects@{store.current}"
    point = _start(store, job)
    resumed_at, total = point.scanned, sum(store.counts().values())
    throttle = _Throttle(rate)
    while not point.finished:
        point = _batch(store, point, batch)
        throttle.wait(point.scanned - resumed_at)
        if progress:
            progress(point.scanned, total, point)  # after each batch
    seconds = time.monotonic() - started
    return RewriteReport(job, point.scanned, point.rewritten, resumed_at, seconds)


def _start(store: ObjectStore, job: str) -> Checkpoint:
    with store.engine.begin() as conn:
        checkpoints.ensure_table(conn)
        found = checkpoints.load(conn, job)
        if found is not None and not found.finished:
            return found
        return checkpoints.begin(conn, job)


def _batch(store: ObjectStore, point: Checkpoint, size: int) -> Checkpoint:
    with store.engine.begin() as conn:
        rows = _read(conn, store, point.last_id, size)
        objects = [store.materialise(row) for row in rows]
        stale = [o for o in objects if o.outcome.stale]
        store.write(conn, stale)
        done = _next(point, objects, stale, finished=len(rows) < size)
        checkpoints.advance(conn, done)
    return done


def _read(
    conn: Connection, store: ObjectStore, after: object, size: int
) -> list[tuple[object, ...]]:
    query = select(*store.selection()).order_by(store.id_column).limit(size)
    if after is not None:
        query = query.where(store.id_column > after)
    if conn.dialect.name == "postgresql":
        # The product may be writing while we rewrite: hold the batch's rows until commit.
        query = query.with_for_update()
    return [tuple(row) for row in conn.execute(query)]


def _next(
    point: Checkpoint, objects: list[StoredObject], stale: list[StoredObject], finished: bool
) -> Checkpoint:
    last = objects[-1].id if objects else point.last_id
    return replace(
        point,
        last_id=last,
        scanned=point.scanned + len(objects),
        rewritten=point.rewritten + len(stale),
        finished=finished,
    )


class _Throttle:
    """Sleeps so that the objects done since the start stay at or under ``rate`` per second."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.monotonic()

    def wait(self, done: int) -> None:
        """Sleep until ``done`` objects are within the rate since the start."""
        if not self.rate:
            return
        ahead = done / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)
