"""``stairway background``: background migrations, run in batches while the product serves."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from stairway import context as site_context
from stairway import operations
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out
from stairway.schema import background

app = typer.Typer(help="Background migrations: batches run while the product serves.")
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
    """Run queued background migrations until they finish; safe to stop and run again."""
    ctx = site_context.open_context(site, catalog)

    def say(_done: int, _total: int | None, job: background.Job, /) -> None:
        if not json and (job.batches % 100 == 0 or job.state is background.JobState.DONE):
            out.print(job.describe(), highlight=False)

    found = operations.run_background(ctx, background.Throttle(probe_ms, pause), max_seconds, say)
    if json:
        emit_json([_job_json(j) for j in found])
        return
    for job in found:
        out.print(job.describe(), highlight=False)
    if not found:
        out.print("no background migrations")


@app.command("status")
def background_status(
    site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False
) -> None:
    """Each background migration: state, % done, ETA, batches, times throttled."""
    found = background.jobs(site_context.open_context(site, catalog).engine)
    if json:
        emit_json([_job_json(j) for j in found])
        return
    for job in found:
        out.print(f"{job.describe()} ({job.batches} batches, throttled {job.throttled})")
    if not found:
        out.print("no background migrations")


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


def _job_json(job: background.Job) -> dict[str, Any]:
    return {**dataclasses.asdict(job), "fraction": job.fraction, "eta_s": job.eta()}


def _say_job(job: background.Job, json: bool) -> None:
    if json:
        emit_json(_job_json(job))
    else:
        out.print(job.describe(), highlight=False)
