"""Post-upgrade tasks run in the background: what ``stairway background run`` does after the
background migrations, under the site lock like them.

An upgrade queued these tasks in ``stairway_task_runs`` (``stairway.task_runs``) and returned
once the product served. Each is run here once, oldest first, with its progress recorded for
``stairway status`` and the dashboard. A row a killed runner left ``running`` is run again when
that is safe: a reindex always is (an interrupted one's ``_ccnew`` leftovers are dropped first,
``stairway.operations.reindex``), a command only when declared idempotent; any other command is
recorded as failed, for an operator to judge, with the command that runs it again. A failure is
recorded with its error and the runner goes on with the next task. A rollback that asks the
runner to stop (``stairway.background_stop``) has the running task interrupted where that is
safe and queued again, and no further task begun.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from stairway import background_stop, task_runs
from stairway.context import Context
from stairway.errors import StairwayError, TaskFailed, TaskStopped
from stairway.operations.tasks import find_task, run_task
from stairway.progress import Progress
from stairway.sitelock import changes_site
from stairway.task_runs import RunState, TaskRun
from stairway.tasks import Task, TaskProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ran:
    """One background task this runner took up: how its run ended, and what it measured."""

    run: TaskRun  # as recorded once it ended
    data: dict[str, Any]  # as a journal records a task step's run: empty when it failed
    stopped: bool = False  # interrupted for a rollback, and queued again


@changes_site
def run_queued(
    ctx: Context,
    max_seconds: float | None = None,
    progress: Progress[TaskProgress] | None = None,
    stopping: background_stop.Poll | None = None,
) -> list[Ran]:
    """Run the queued background tasks, and those a killed runner left, oldest first, until
    none is left, ``max_seconds`` have passed (a task begun is run to its end) or a rollback
    asks the runner to stop (``stopping``)."""
    deadline = time.monotonic() + max_seconds if max_seconds else None
    stopping = stopping or background_stop.Poll(ctx.engine)
    ran: list[Ran] = []
    for found in task_runs.pending(ctx.engine):
        if deadline is not None and time.monotonic() >= deadline:
            break
        if stopping.now():
            break
        ran.append(_take_up(ctx, found, progress))
        if ran[-1].stopped:
            break
    return ran


def _take_up(ctx: Context, found: TaskRun, progress: Progress[TaskProgress] | None) -> Ran:
    try:
        task = find_task(ctx.catalog, found.name, found.release)
    except StairwayError as err:  # the catalog no longer declares it: nothing to run
        return _refused(ctx, found, f"{err.message} ({err.hint})")
    if found.state is RunState.RUNNING and not task.rerunnable:
        return _refused(ctx, found, _cut_short(task))
    if found.state is RunState.RUNNING:
        log.warning("task %s was cut short by a stopped runner: running it again", task.name)
    log.info("background task %s begun: %s", task.name, task.what())
    try:
        data = run_task(ctx, task, progress)
    except TaskStopped as stopped:  # queued again by run_task
        log.warning("background task %s: %s", task.name, stopped.message)
        return Ran(_recorded(ctx, task.release, task.name), {}, stopped=True)
    except TaskFailed as failed:  # recorded by run_task; the next task still runs
        log.error("background task %s failed: %s", task.name, failed.message)
        return Ran(_recorded(ctx, task.release, task.name), {})
    log.info("background task %s done in %.1f s", task.name, data["ran_s"])
    return Ran(_recorded(ctx, task.release, task.name), data)


def _refused(ctx: Context, found: TaskRun, error: str) -> Ran:
    log.error("background task %s not run: %s", found.name, error)
    task_runs.failed(ctx.engine, found.release, found.name, error)
    return Ran(_recorded(ctx, found.release, found.name), {})


def _cut_short(task: Task) -> str:
    return (
        f"task {task.name} of release {task.release}: {task.what()} was started by a background "
        "runner that stopped before its end was recorded; it is not declared idempotent, so it "
        "is not run again: check what it did"
    )


def _recorded(ctx: Context, release: str, name: str) -> TaskRun:
    return next(r for r in task_runs.runs(ctx.engine) if (r.release, r.name) == (release, name))
