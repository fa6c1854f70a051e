"""Background migrations: a data change run in batches while the product serves (GitLab's
batched background migrations).

Applying a background change queues it: one row in ``stairway_background`` with the key range
of its table at that moment and a cursor at the start. ``run`` then calls the change's
``upgrade_batch(conn, low, high)`` for one range after another; each batch and the cursor move
commit in one transaction, so a run killed at any point resumes exactly where the last commit
left it, with no row done twice or skipped. Before each batch the database is asked how busy it
is (the latency of a probe query; on PostgreSQL, sessions waiting for a lock) and the run backs
off while it is busy. A migration can be paused and resumed; ``status`` shows % done and an ETA.
An upgrade past a release that queued a migration refuses to start until it is finished.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import ModuleType

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    column,
    func,
    select,
    table,
    text,
    update,
)

from stairway import faults
from stairway.errors import ChangeFailed, UsageRefused
from stairway.progress import Progress
from stairway.schema.change import Change

log = logging.getLogger(__name__)
metadata = MetaData()
jobs_table = Table(
    "stairway_background",
    metadata,
    Column("number", Integer, primary_key=True),  # the change's number
    Column("label", String(200), nullable=False),
    Column("state", String(16), nullable=False),  # a JobState
    Column("low", BigInteger, nullable=False),  # the key range when it was queued
    Column("high", BigInteger, nullable=False),  # exclusive
    Column("cursor", BigInteger, nullable=False),  # every key below it is done
    Column("batches", Integer, nullable=False),
    Column("throttled", Integer, nullable=False),  # batches delayed because the database was busy
    Column("queued", String(40), nullable=False),
    Column("started", String(40)),
    Column("finished", String(40)),
    Column("error", Text),
)


class JobState(StrEnum):
    """Where a background migration is; stored in ``stairway_background.state`` as its value."""

    QUEUED = "queued"  # waiting for a run
    RUNNING = "running"  # a run has done at least one batch and not all
    PAUSED = "paused"  # an operator paused it: runs skip it until resumed
    DONE = "done"  # every key done


@dataclass(frozen=True)
class Job:
    """A background migration as ``stairway_background`` records it: its state, its key range, the
    cursor below which every key is done, and the batches run and throttled.
    """

    number: int
    label: str
    state: JobState
    low: int
    high: int
    cursor: int
    batches: int
    throttled: int
    started: str | None

    @property
    def fraction(self) -> float:
        """How much of the key range is done, from 0.0 to 1.0."""
        span = self.high - self.low
        return 1.0 if span <= 0 or self.state is JobState.DONE else (self.cursor - self.low) / span

    def eta(self, now: datetime | None = None) -> float | None:
        """Seconds left at the rate so far; None before the first batch."""
        if self.started is None or self.state is JobState.DONE or self.cursor <= self.low:
            return None if self.state is not JobState.DONE else 0.0
        elapsed = (
            (now or datetime.now(UTC)) - datetime.fromisoformat(self.started)
        ).total_seconds()
        return elapsed * (self.high - self.cursor) / (self.cursor - self.low)

    def describe(self) -> str:
        """The migration, its state, how much is done and, while it runs, the time left."""
        eta = self.eta()
        left = f", about {eta:.0f} s left" if eta else ""
        return f"{self.label}: {self.state}, {self.fraction:.0%} done{left}"


def ensure_table(conn: Connection) -> None:
    """Create ``stairway_background`` if it does not exist yet."""
    metadata.create_all(conn, checkfirst=True)


def queue(conn: Connection, change: Change) -> None:
    """Called where the change is applied: its key range now, and the cursor at its start."""
    assert change.batches is not None
    ensure_table(conn)
    spec = change.batches
    rows = table(spec.table, column(spec.key))
    low, high = conn.execute(select(func.min(rows.c[spec.key]), func.max(rows.c[spec.key]))).one()
    low = int(low) if low is not None else 0
    high = int(high) + 1 if high is not None else 0
    conn.execute(jobs_table.delete().where(jobs_table.c.number == change.number))
    conn.execute(
        jobs_table.insert().values(
            number=change.number,
            label=change.label,
            state=(JobState.QUEUED if high > low else JobState.DONE).value,
            low=low,
            high=high,
            cursor=low,
            batches=0,
            throttled=0,
            queued=_now(),
        )
    )


def jobs(engine: Engine) -> list[Job]:
    """Every background migration ever queued, by change number; none before the first."""
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, jobs_table.name):
            return []
        rows = conn.execute(select(jobs_table).order_by(jobs_table.c.number)).all()
    return [
        Job(
            r.number,
            r.label,
            JobState(r.state),
            r.low,
            r.high,
            r.cursor,
            r.batches,
            r.throttled,
            r.started,
        )
        for r in rows
    ]


def unfinished(engine: Engine) -> list[Job]:
    """The background migrations not yet done, paused ones included."""
    return [job for job in jobs(engine) if job.state is not JobState.DONE]


def set_paused(engine: Engine, number: int, paused: bool) -> Job:
    """Pause the background migration of change ``number``, or resume it; the job as it is now.

    Raises:
        UsageRefused: there is no such migration, or it is finished.
    """
    found = {job.number: job for job in jobs(engine)}
    job = found.get(number)
    if job is None:
        known = ", ".join(str(n) for n in found) or "none"
        raise UsageRefused(f"no background migration {number}", hint=f"known: {known}")
    if job.state is JobState.DONE:
        raise UsageRefused(f"{job.label} is finished", hint="nothing to pause or resume")
    with engine.begin() as conn:
        state = (JobState.PAUSED if paused else JobState.QUEUED).value
        conn.execute(update(jobs_table).where(jobs_table.c.number == number).values(state=state))
    return next(j for j in jobs(engine) if j.number == number)


# --- running ------------------------------------------------------------------------------------


@dataclass
class Throttle:
    """Back off while the database is busy; how long a probe may take, and the longest wait."""

    probe_ms: float = 50.0
    pause: float = 0.01  # seconds between batches at the least
    rest: float = 1.0  # and this much of the last batch's time: the database's share of quiet
    longest: float = 5.0
    waited: float = 0.0

    def busy(self, engine: Engine) -> bool:
        """Whether the database is busy: the probe query is slow, or (on PostgreSQL) sessions
        wait for a lock.
        """
        started = time.perf_counter()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            waiting = 0
            if engine.dialect.name == "postgresql":
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                ).scalar_one()
        return waiting > 0 or (time.perf_counter() - started) * 1000 > self.probe_ms


def run(
    engine: Engine,
    changes: dict[int, Change],
    throttle: Throttle | None = None,
    max_seconds: float | None = None,
    progress: Progress[Job] | None = None,
    stopping: Callable[[], bool] | None = None,
) -> list[Job]:
    """Run queued migrations, oldest first, until done, paused, ``max_seconds`` have passed or
    ``stopping`` says to stop (checked between two batches: each batch is its own
    transaction)."""
    throttle = throttle or Throttle()
    deadline = _Deadline(time.monotonic() + max_seconds if max_seconds else None, stopping)
    for job in unfinished(engine):
        if job.state is JobState.PAUSED:
            continue
        change = changes.get(job.number)
        if change is None or change.batches is None:
            raise UsageRefused(
                f"{job.label} is queued but this catalog has no background change {job.number}",
                hint="run it with the catalog of the release that queued it",
            )
        if not _run_job(engine, change, throttle, deadline, progress):
            break
    return jobs(engine)


@dataclass(frozen=True)
class _Deadline:
    """When a runner stops between two batches: at a time, or when told to."""

    at: float | None
    stopping: Callable[[], bool] | None

    def passed(self) -> bool:
        if self.at is not None and time.monotonic() >= self.at:
            return True
        return self.stopping is not None and self.stopping()


def _run_job(
    engine: Engine,
    change: Change,
    throttle: Throttle,
    deadline: _Deadline,
    progress: Progress[Job] | None,
) -> bool:
    """True when the job finished; False when paused, out of time or told to stop."""
    module = _load(change)
    _mark_started(engine, change.number)
    delay = throttle.pause
    while True:
        if deadline.passed():
            return False
        if throttle.busy(engine):
            delay = min(throttle.longest, delay * 2)
            throttle.waited += delay
            _count_throttle(engine, change.number)
            time.sleep(delay)
            continue
        delay = throttle.pause
        began = time.monotonic()
        outcome = _batch(engine, change, module)
        took = time.monotonic() - began
        if outcome is None:
            return False  # paused meanwhile
        log.info(
            "%s: batch %d done in %.3f s, %s",
            change.label,
            outcome.batches,
            took,
            outcome.describe(),
            extra={"change": change.number, "cursor": outcome.cursor},
        )
        if progress:
            progress(outcome.cursor - outcome.low, outcome.high - outcome.low, outcome)
        if outcome.state is JobState.DONE:
            return True
        time.sleep(max(throttle.pause, took * throttle.rest))


def _batch(engine: Engine, change: Change, module: ModuleType) -> Job | None:
    """One range done and the cursor moved past it, in one transaction."""
    assert change.batches is not None
    with engine.begin() as conn:
        query = select(jobs_table).where(jobs_table.c.number == change.number)
        if engine.dialect.name == "postgresql":
            query = query.with_for_update()  # one runner per migration at a time
        row = conn.execute(query).one()
        if JobState(row.state) is JobState.PAUSED:
            return None
        low, high = row.cursor, min(row.cursor + change.batches.size, row.high)
        try:
            module.upgrade_batch(conn, low, high)
        except Exception as err:
            raise ChangeFailed(
                f"background change {change.label} failed on keys {low} to {high - 1}: {err}",
                hint="the batch was rolled back and the cursor stays before it; fix the change "
                "and run again",
                change=change.number,
            ) from err
        done = high >= row.high
        values = {
            "cursor": high,
            "batches": row.batches + 1,
            "state": (JobState.DONE if done else JobState.RUNNING).value,
        }
        if done:
            values["finished"] = _now()
        conn.execute(
            update(jobs_table).where(jobs_table.c.number == change.number).values(**values)
        )
    _fault(row.batches + 1)
    return next(j for j in jobs(engine) if j.number == change.number)


def _mark_started(engine: Engine, number: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(jobs_table)
            .where(jobs_table.c.number == number, jobs_table.c.started.is_(None))
            .values(started=_now())
        )


def _count_throttle(engine: Engine, number: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(jobs_table)
            .where(jobs_table.c.number == number)
            .values(throttled=jobs_table.c.throttled + 1)
        )


def _fault(batches: int) -> None:
    faults.point(f"background:{batches}")  # fault-injection tests


def _load(change: Change) -> ModuleType:
    name = f"stairway_background_{change.number}_{change.checksum[:12]}"
    spec = importlib.util.spec_from_file_location(name, change.path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
