"""The record of post-upgrade tasks run in the background: ``stairway_task_runs``, one row per
task of a release, owned by this module alone.

An upgrade hands a task the product may serve during (``serving = true``) to the background:
it queues a row here and returns once the product serves. ``stairway background run``, the
runner of background migrations, then runs the queued rows oldest first
(``stairway.operations.background_tasks``); each run writes its start, its progress (each
report of ``stairway.operations.task_watch``) and its end here. So ``stairway status``, the
dashboard and ``verify`` show from anywhere a task waiting, running with its time left, failed
with its error and the command that runs it again, or cancelled by a rollback. A row left
``running`` by a killed runner is taken up again by the next one (run again when that is safe).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, Engine, Float, MetaData, String, Table, Text, select, tuple_

from stairway.tasks import Task, TaskProgress

metadata = MetaData()
runs_table = Table(
    "stairway_task_runs",
    metadata,
    Column("release", String(100), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("state", String(16), nullable=False),  # a RunState
    Column("phase", String(100)),
    Column("fraction", Float),  # 0..1, None when unknown (a command)
    Column("eta_s", Float),
    Column("started", String(40), nullable=False),  # queued, then begun
    Column("updated", String(40), nullable=False),
    Column("error", Text),
)


class RunState(StrEnum):
    """Where a task's run is; stored in ``stairway_task_runs.state`` as its value."""

    QUEUED = "queued"  # handed to the background by an upgrade, not begun yet
    RUNNING = "running"  # begun (or cut short by a crash: the next runner takes it up)
    DONE = "done"
    FAILED = "failed"  # with its error; ``stairway tasks run`` runs it again
    CANCELLED = "cancelled"  # the upgrade that queued it was rolled back


UNFINISHED = (RunState.QUEUED, RunState.RUNNING, RunState.FAILED)
WORKER = "stairway background run"  # the command that runs queued tasks


@dataclass(frozen=True)
class TaskRun:
    """A task's last run as recorded: its state and, while it runs, its last progress."""

    release: str
    name: str
    state: RunState
    phase: str | None
    fraction: float | None
    eta_s: float | None
    updated: str
    error: str | None

    @property
    def retry(self) -> str | None:
        """For a failed run, the command that runs the task again."""
        if self.state is not RunState.FAILED:
            return None
        return f"stairway tasks run {self.name} --release {self.release}"

    def describe(self) -> str:
        """``task orders-index (2.0.0): running, building index, 25% done, about 9 s left``."""
        said = f"task {self.name} ({self.release}): {self.state}"
        if self.state is RunState.FAILED:
            return f"{said}: {self.error}; retry with `{self.retry}`"
        if self.state is RunState.QUEUED:
            return f"{said} in the background since {self.updated}; `{WORKER}` runs it"
        if self.phase:
            said += f", {self.phase}"
        if self.fraction is not None:
            said += f", {self.fraction:.0%} done"
        if self.eta_s is not None:
            said += f", about {self.eta_s:.0f} s left"
        return f"{said} (last heard {self.updated})"


def queue(engine: Engine, task: Task) -> None:
    """Hand ``task`` to the background: any earlier record of it is replaced."""
    _replace(engine, task, RunState.QUEUED)


def requeue(engine: Engine, task: Task) -> None:
    """``task``'s run was interrupted for a rollback: queued again, its progress forgotten."""
    _set(engine, task, state=RunState.QUEUED.value, phase=None, fraction=None, eta_s=None)


def begun(engine: Engine, task: Task) -> None:
    """A run of ``task`` starts: any earlier record of it is replaced."""
    _replace(engine, task, RunState.RUNNING)


def advanced(engine: Engine, task: Task, found: TaskProgress) -> None:
    """The last progress report of ``task``'s run."""
    _set(engine, task, phase=found.phase, fraction=found.fraction, eta_s=found.eta())


def ended(engine: Engine, task: Task, error: str | None) -> None:
    """``task``'s run ended: done, or failed with ``error``."""
    if error:
        failed(engine, task.release, task.name, error)
        return
    _set(engine, task, state=RunState.DONE.value, error=None, fraction=1.0, eta_s=None)


def failed(engine: Engine, release: str, name: str, error: str) -> None:
    """The run of task ``name`` of ``release`` failed with ``error``."""
    values = {"state": RunState.FAILED.value, "error": error, "fraction": None, "eta_s": None}
    _set_key(engine, release, name, **values)


def runs(engine: Engine, states: Iterable[RunState] = tuple(RunState)) -> list[TaskRun]:
    """The recorded runs in ``states``, oldest first; none before the first task was queued."""
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, runs_table.name):
            return []
        query = select(runs_table).where(runs_table.c.state.in_([s.value for s in states]))
        rows = conn.execute(query.order_by(runs_table.c.started, runs_table.c.name)).all()
    return [
        TaskRun(
            r.release, r.name, RunState(r.state), r.phase, r.fraction, r.eta_s, r.updated, r.error
        )
        for r in rows
    ]


def unfinished(engine: Engine) -> list[TaskRun]:
    """The task runs not done: queued, running (or cut short by a crash) and failed."""
    return runs(engine, UNFINISHED)


def pending(engine: Engine) -> list[TaskRun]:
    """What a background runner has to do: the queued runs and those a crash cut short."""
    return runs(engine, (RunState.QUEUED, RunState.RUNNING))


def cancel(engine: Engine, releases: Iterable[str]) -> list[TaskRun]:
    """Cancel the unfinished runs of the tasks of ``releases`` (an upgrade to them was rolled
    back); returns those cancelled."""
    wanted = set(releases)
    found = [run for run in unfinished(engine) if run.release in wanted]
    if not found:
        return []
    keys = [(run.release, run.name) for run in found]
    with engine.begin() as conn:
        key = tuple_(runs_table.c.release, runs_table.c.name).in_(keys)
        values = {"state": RunState.CANCELLED.value, "eta_s": None, "updated": _now()}
        conn.execute(runs_table.update().where(key).values(**values))
    return found


def _replace(engine: Engine, task: Task, state: RunState) -> None:
    now = _now()
    with engine.begin() as conn:
        metadata.create_all(conn, checkfirst=True)
        key = (runs_table.c.release == task.release) & (runs_table.c.name == task.name)
        conn.execute(runs_table.delete().where(key))
        values = {"release": task.release, "name": task.name, "state": state.value}
        conn.execute(runs_table.insert().values(**values, started=now, updated=now))


def _set(engine: Engine, task: Task, **values: object) -> None:
    _set_key(engine, task.release, task.name, **values)


def _set_key(engine: Engine, release: str, name: str, **values: object) -> None:
    key = (runs_table.c.release == release) & (runs_table.c.name == name)
    with engine.begin() as conn:
        conn.execute(runs_table.update().where(key).values(**values, updated=_now()))


def _now() -> str:
    # milliseconds: the runner takes queued tasks in the order they were queued
    return datetime.now(UTC).isoformat(timespec="milliseconds")
