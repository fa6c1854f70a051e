"""The record of post-upgrade tasks as they run: ``stairway_task_runs``, one row per task of a
release, owned by this module alone.

A task's run writes its start, its progress (each report of ``stairway.operations.task_watch``)
and its end here, so that ``stairway status``, from another terminal, shows a task that runs
while the product serves, how far it has come and the time left, and a task that failed. The
journal remains the record the upgrade resumes from; this one is for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Engine, Float, MetaData, String, Table, Text, select

from stairway.tasks import Task, TaskProgress

metadata = MetaData()
runs_table = Table(
    "stairway_task_runs",
    metadata,
    Column("release", String(100), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("state", String(16), nullable=False),  # running, done or failed
    Column("phase", String(100)),
    Column("fraction", Float),  # 0..1, None when unknown (a command)
    Column("eta_s", Float),
    Column("started", String(40), nullable=False),
    Column("updated", String(40), nullable=False),
    Column("error", Text),
)


@dataclass(frozen=True)
class TaskRun:
    """A task's last run as recorded: its state and, while it runs, its last progress."""

    release: str
    name: str
    state: str
    phase: str | None
    fraction: float | None
    eta_s: float | None
    updated: str
    error: str | None

    def describe(self) -> str:
        """``task orders-index (2.0.0): running, building index, 25% done, about 9 s left``."""
        said = f"task {self.name} ({self.release}): {self.state}"
        if self.state == "failed":
            return f"{said}: {self.error}"
        if self.phase:
            said += f", {self.phase}"
        if self.fraction is not None:
            said += f", {self.fraction:.0%} done"
        if self.eta_s is not None:
            said += f", about {self.eta_s:.0f} s left"
        return f"{said} (last heard {self.updated})"


def begun(engine: Engine, task: Task) -> None:
    """A run of ``task`` starts: any earlier record of it is replaced."""
    now = _now()
    with engine.begin() as conn:
        metadata.create_all(conn, checkfirst=True)
        key = (runs_table.c.release == task.release) & (runs_table.c.name == task.name)
        conn.execute(runs_table.delete().where(key))
        values = {"release": task.release, "name": task.name, "state": "running"}
        conn.execute(runs_table.insert().values(**values, started=now, updated=now))


def advanced(engine: Engine, task: Task, found: TaskProgress) -> None:
    """The last progress report of ``task``'s run."""
    _set(engine, task, phase=found.phase, fraction=found.fraction, eta_s=found.eta())


def ended(engine: Engine, task: Task, error: str | None) -> None:
    """``task``'s run ended: done, or failed with ``error``."""
    state = "failed" if error else "done"
    _set(engine, task, state=state, error=error, fraction=None if error else 1.0, eta_s=None)


def unfinished(engine: Engine) -> list[TaskRun]:
    """The task runs not done: running (or cut short by a crash) and failed."""
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, runs_table.name):
            return []
        query = select(runs_table).where(runs_table.c.state != "done")
        rows = conn.execute(query.order_by(runs_table.c.started)).all()
    return [
        TaskRun(r.release, r.name, r.state, r.phase, r.fraction, r.eta_s, r.updated, r.error)
        for r in rows
    ]


def _set(engine: Engine, task: Task, **values: object) -> None:
    key = (runs_table.c.release == task.release) & (runs_table.c.name == task.name)
    with engine.begin() as conn:
        conn.execute(runs_table.update().where(key).values(**values, updated=_now()))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
