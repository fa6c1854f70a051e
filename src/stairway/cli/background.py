"""``stairway background``: the background work of upgrades, done while the product serves:
background migrations (run in batches) and the post-upgrade tasks an upgrade handed over."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Annotated, Any

import typer

from stairway import background_stop, operations, task_runs
from stairway import context as site_context
from stairway.context import Context, backup_dir
from stairway.database import dispose_all
from stairway.errors import ManualStepNeeded
from stairway.estimate.rates import record_measured
from stairway.operations.background_tasks import Ran, run_queued
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out, plain
from stairway.schema import background
from stairway.sitelock import site_lock
from stairway.steps import StepKind
from stairway.task_runs import TaskRun
from stairway.tasks import TaskProgress

app = typer.Typer(
    help="Background work of upgrades: migrations in batches and post-upgrade tasks, run "
    "while the product serves."
)
NumberArg = Annotated[int, typer.Argument(help="the change number")]


@app.command("run")
def background_run(
    max_seconds: Annotated[
        float | None, typer.Option("--max-seconds", help="stop after this long", min=0.1)
    ] = None,
    probe_ms: Annotated[
        float, typer.Option("--probe-ms", help="back off while a probe query takes longer")
    ] = 50.0,
    pause: Annotated[
        float, typer.Option("--pause", help="seconds between batches at the least", min=0)
    ] = 0.01,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Run the queued background migrations, then the post-upgrade tasks upgrades handed over,
    until they finish; safe to stop (even kill) and run again; a rollback stops it (the task it
    interrupts is queued again); exit 3 when a task failed."""
    ctx = site_context.open_context(site, catalog)

    def say(_done: int, _total: int | None, job: background.Job, /) -> None:
        if not json and (job.batches % 100 == 0 or job.state is background.JobState.DONE):
            out.print(job.describe(), highlight=False)

    began = time.monotonic()
    stopping = background_stop.Poll(ctx.engine)
    with site_lock(ctx):  # one hold: no other command slips in between migrations and tasks
        throttle = background.Throttle(probe_ms, pause)
        found = operations.run_background(ctx, throttle, max_seconds, say, stopping)
        left = max_seconds - (time.monotonic() - began) if max_seconds else None
        ran = _run_tasks(ctx, left, json, stopping) if left is None or left > 0 else []
        # A rollback waiting for the lock checks that no process holds the site's files: this
        # one lets go of its database before the lock, not at its exit a moment later.
        dispose_all()
    stopped = stopping.found.describe() if stopping.found else None
    if json:
        tasks = _runs_json(ran)
        emit_json({"migrations": [_job_json(j) for j in found], "tasks": tasks, "stopped": stopped})
    else:
        _say_all(found, [r.run for r in ran])
        if stopped:
            out.print(f"stopped: {stopped}; what is left stays queued", highlight=False)
    _refuse_failed([r.run for r in ran])


@app.command("status")
def background_status(
    site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False
) -> None:
    """Each background migration and post-upgrade task handed over: state, % done, ETA; a
    failed task with the command that retries it."""
    engine = site_context.open_context(site, catalog).engine
    found, runs = background.jobs(engine), task_runs.runs(engine)
    if json:
        emit_json({"migrations": [_job_json(j) for j in found], "tasks": _task_json(runs)})
        return
    _say_all(found, runs)


@app.command("pause")
def background_pause(
    number: NumberArg, site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False
) -> None:
    """Pause a background migration after its current batch."""
    job = background.set_paused(site_context.open_context(site, catalog).engine, number, True)
    _say_job(job, json)


@app.command("resume")
def background_resume(
    number: NumberArg, site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False
) -> None:
    """Let a paused background migration run again (with `background run`)."""
    job = background.set_paused(site_context.open_context(site, catalog).engine, number, False)
    _say_job(job, json)


def _run_tasks(
    ctx: Context, max_seconds: float | None, json: bool, stopping: background_stop.Poll
) -> list[Ran]:
    def say(_done: int, _total: int | None, found: TaskProgress, /) -> None:
        if not json:
            out.print(f"task {found.describe()}", highlight=False)

    ran = run_queued(ctx, max_seconds, say, stopping)
    if any(r.stopped for r in ran):  # seen by the task's watcher: read it for the message
        stopping.now()
    measured = [(StepKind.TASK, r.data) for r in ran if r.data]
    if measured:  # what a task took is the next estimate's basis, as for one run by an upgrade
        with contextlib.suppress(OSError):
            record_measured(backup_dir(ctx), ctx.engine.dialect.name, measured, "background run")
    return ran


def _refuse_failed(runs: list[TaskRun]) -> None:
    """Exit 3 when a task failed: the runner went on with the others, an operator must act."""
    failed = [run for run in runs if run.retry]
    if failed:
        raise ManualStepNeeded(
            "; ".join(
                f"background task {run.name} ({run.release}) failed: {run.error}" for run in failed
            ),
            hint="fix the cause, then " + ", ".join(f"`{run.retry}`" for run in failed),
        )


def _say_all(jobs: list[background.Job], runs: list[TaskRun]) -> None:
    for job in jobs:
        out.print(f"{job.describe()} ({job.batches} batches, throttled {job.throttled})")
    for run in runs:
        out.print(plain(run.describe()), highlight=False)
    if not jobs and not runs:
        out.print("no background migrations or tasks")


def _runs_json(ran: list[Ran]) -> list[dict[str, Any]]:
    return [{**_task_json([r.run])[0], "ran_s": r.data.get("ran_s")} for r in ran]


def _task_json(runs: list[TaskRun]) -> list[dict[str, Any]]:
    return [{**dataclasses.asdict(r), "retry": r.retry} for r in runs]


def _job_json(job: background.Job) -> dict[str, Any]:
    return {**dataclasses.asdict(job), "fraction": job.fraction, "eta_s": job.eta()}


def _say_job(job: background.Job, json: bool) -> None:
    if json:
        emit_json(_job_json(job))
    else:
        out.print(job.describe(), highlight=False)
