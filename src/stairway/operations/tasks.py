"""Running a release's post-upgrade task (``stairway.tasks``): a reindex on the site's database
or a product command, run by the upgrade's task steps and by ``stairway tasks run``.

A reindex on PostgreSQL is ``REINDEX ... CONCURRENTLY``, outside a transaction: the product keeps
reading and writing the table meanwhile. What a crash part-way leaves behind, the next run
cleans up first (``stairway.operations.reindex``), so running a reindex again is always safe.
A command runs without a shell, in the site file's directory, with a timeout.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from sqlalchemy import text

from stairway import faults, task_runs
from stairway.catalog import Catalog
from stairway.context import Context, backup_dir, current_version
from stairway.errors import TaskFailed, TaskStopped, UpgradeError, UsageRefused
from stairway.journal import Journal
from stairway.operations import reindex
from stairway.operations.task_watch import Watch, watching
from stairway.progress import Progress
from stairway.sitelock import changes_site
from stairway.tasks import Task, TaskProgress, reindex_statement
from stairway.versions import Version

OUTPUT_TAIL = 600  # characters of a failed command's output shown with its error


def find_task(catalog: Catalog, name: str, release: str | None, at: Version | None = None) -> Task:
    """The task ``name`` of ``release``; without a release, that of the newest release at or
    below ``at`` that declares it. Raises UsageRefused naming the tasks there are."""
    releases = [catalog.release(release)] if release else catalog.releases
    candidates = [r for r in releases if at is None or release or r.version <= at]
    for found in reversed(candidates):
        for task in found.tasks:
            if task.name == name:
                return task
    known = sorted({f"{t.name} ({t.release})" for r in candidates for t in r.tasks})
    raise UsageRefused(
        f"no task {name!r} is declared by "
        + (f"release {release}" if release else "the releases up to the site's"),
        hint=f"the tasks there are: {', '.join(known)}" if known else "the catalog declares none",
    )


def run_task(
    ctx: Context, task: Task, progress: Progress[TaskProgress] | None = None
) -> dict[str, Any]:
    """Run ``task`` once on the site, telling ``progress`` how far it has come every few
    seconds; returns what the journal records of it. A task the product serves during is
    recorded as it runs (``stairway.task_runs``), for ``stairway status``.

    Raises TaskFailed naming the task, with the command that runs it again.
    """
    if not task.serving:
        return _run(ctx, task, progress)
    task_runs.begun(ctx.engine, task)
    try:
        data = _run(ctx, task, _recording(ctx, task, progress))
    except TaskStopped:
        task_runs.requeue(ctx.engine, task)
        raise
    except TaskFailed as failed:
        task_runs.ended(ctx.engine, task, failed.message)
        raise
    task_runs.ended(ctx.engine, task, None)
    return data


def _run(ctx: Context, task: Task, progress: Progress[TaskProgress] | None) -> dict[str, Any]:
    started = time.monotonic()
    dropped: list[str] = []
    with watching(ctx, task, progress) as watch:
        try:
            if task.reindex:
                dropped = _reindex(ctx, task)
            else:
                _command(ctx, task, watch)
        except TaskFailed:
            if watch.stopped.is_set():
                raise _stopped(task, watch) from None
            raise
    return {
        "task": task.name,
        "kind": str(task.kind),
        "ran_s": round(time.monotonic() - started, 3),
    } | ({"dropped": dropped} if dropped else {})


def _recording(
    ctx: Context, task: Task, progress: Progress[TaskProgress] | None
) -> Progress[TaskProgress]:
    # a reindex on SQLite holds the database's only write lock: its record waits for its end
    locked = task.reindex and ctx.engine.dialect.name == "sqlite"

    def report(done: int, total: int | None, found: TaskProgress, /) -> None:
        if not locked:
            task_runs.advanced(ctx.engine, task, found)
        if progress:
            progress(done, total, found)

    return report


@changes_site
def run_by_hand(
    ctx: Context, name: str, release: str | None, progress: Progress[TaskProgress] | None = None
) -> dict[str, Any]:
    """``stairway tasks run``: run a task again, typically one the background runner recorded
    as failed. Refused while an upgrade is interrupted."""
    active = Journal(backup_dir(ctx)).active()
    if active is not None:
        raise UpgradeError(
            f"upgrade {active.upgrade_id} was interrupted: its tasks run when it is finished",
            hint="`stairway upgrade --resume` finishes it, `stairway rollback` undoes it",
        )
    task = find_task(ctx.catalog, name, release, current_version(ctx))
    return run_task(ctx, task, progress)


def _reindex(ctx: Context, task: Task) -> list[str]:
    """Runs the reindex; returns the invalid indexes an interrupted attempt left, dropped."""
    dialect = ctx.engine.dialect
    dropped: list[str] = []
    statement = reindex_statement(task, dialect.name, dialect.identifier_preparer.quote)
    before, after = faults.around("task-reindex")
    try:
        with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if dialect.name == "postgresql":
                dropped = reindex.prepare(conn, task)
            faults.point(before)
            conn.execute(text(statement))
            faults.point(after)
    except Exception as err:
        if isinstance(err, OSError):
            raise
        raise _failed(task, f"{statement} failed: {_first_line(err)}") from err
    return dropped


def _command(ctx: Context, task: Task, watch: Watch) -> None:
    env = {**os.environ, "STAIRWAY_TASK": task.name, "STAIRWAY_RELEASE": task.release}
    before, after = faults.around("task-command")
    faults.point(before)
    try:
        running = subprocess.Popen(
            task.argv,
            cwd=ctx.site.path.resolve().parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as err:
        raise _failed(task, f"cannot run {task.argv[0]}: {err.strerror or err}") from None
    with running:
        if task.idempotent:  # may be stopped part way: running it again is declared safe
            watch.interrupt = running.terminate
        try:
            stdout, stderr = running.communicate(timeout=task.timeout)
        except subprocess.TimeoutExpired:
            running.kill()
            running.communicate()
            raise _failed(task, f"{task.what()} did not finish in {task.timeout:g} s") from None
    faults.point(after)
    if running.returncode != 0:
        output = (stderr or stdout).decode("utf-8", "replace").strip()
        said = f": {output[-OUTPUT_TAIL:]}" if output else ""
        raise _failed(task, f"{task.what()} exited with {running.returncode}{said}")


def _stopped(task: Task, watch: Watch) -> TaskStopped:
    by = watch.asked.describe() if watch.asked else "a rollback asked the runner to stop"
    return TaskStopped(
        f"task {task.name} of release {task.release} was interrupted: {by}; it is queued again",
        hint="`stairway background run` runs it once the rollback is done, unless the rollback "
        "cancels it",
        task=task.name,
        release=task.release,
    )


def _failed(task: Task, message: str) -> TaskFailed:
    return TaskFailed(
        f"task {task.name} of release {task.release}: {message}",
        hint=f"fix the cause, then `{task.rerun_command()}`",
        task=task.name,
        release=task.release,
    )


def _first_line(err: Exception) -> str:
    cause = getattr(err, "orig", None) or err
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
