"""A site's schema: ``init``, ``status``, ``plan``, ``migrate`` (and its ``--down-to``),
``baseline`` and ``repair``."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.markup import escape

from stairway import context as site_context
from stairway import next_step, operations, release_feed, task_runs, views
from stairway.catalog.snapshots import Snapshot
from stairway.cli.from_index import FromIndexOpt, indexed_catalog
from stairway.cli.output import applying, reverting, say_adopting
from stairway.errors import ExitCode, ManualStepNeeded, UsageRefused
from stairway.estimate import Limits, estimate_upgrade
from stairway.estimate.predict import parse_duration
from stairway.estimate_views import estimate_json, estimate_summary, estimate_table
from stairway.next_step import NextStep
from stairway.operations.plugins import plan_moves
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out, plain
from stairway.plan import UpgradePlan
from stairway.release_index import IndexedRelease
from stairway.release_source import install_first
from stairway.schema import background
from stairway.schema.change import Phase
from stairway.serving import agents_by_version, held_agents
from stairway.site import load_site
from stairway.task_runs import TaskRun
from stairway.upgrade import Interrupted, interrupted
from stairway.version_grammars import GrammarName

app = typer.Typer()


@app.command()
def init(
    version: Annotated[str, typer.Option("--version", help="release to create the site at")],
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="replay every change, even where a schema snapshot or a fresh install ships",
        ),
    ] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a new site at release VERSION: its schema changes and initial objects.

    The product's own fresh install ([history] fresh) builds the schema when it stamps a
    revision at or below the release; else the newest schema snapshot at or below the release
    does when the catalog ships one (then the changes after it run); --replay runs every change
    instead. With releases_dir
    in site.toml, the verified release is installed and made current first."""
    installed = install_first(load_site(site).site, version)
    if installed is not None and not json:
        out.print(f"release {version} verified, installed in {installed} and made current")
    ctx = site_context.open_context(site, catalog, version)
    created = operations.init(ctx, version, progress=applying(json), replay=replay)
    done, used = created.applied, created.snapshot
    built = operations.built_fresh(ctx)
    if json:
        emit_json(
            {
                "release": version,
                "applied": views.applied_json(done),
                "built_from": _built_from(used, built),
            }
        )
        return
    if used is not None:
        how = f", changes 1..{built} built from the snapshot of {used.release}"
    elif built:
        how = f", changes 1..{built} built by the product's own fresh install"
    else:
        how = ", every change replayed"
    out.print(f"[green]site created at {version}[/green] ({len(done)} changes applied{how})")


def _built_from(used: Snapshot | None, built: int) -> dict[str, object]:
    if used is not None:
        return {"kind": "snapshot", "release": str(used.release), "level": built}
    if built:
        return {"kind": "fresh-install", "level": built}
    return {"kind": "replay", "level": 0}


@app.command()
def status(
    strict: Annotated[
        bool,
        typer.Option("--strict", help="exit 3 on drifted, pending or unknown changes (scripts)"),
    ] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Site version, schema level, applied, pending and drifted changes, Flyway repeatables to
    apply, background migrations, background tasks queued, running or failed, then what to run
    next; exit 0 whatever they are, unless --strict."""
    ctx = site_context.open_context(site, catalog)
    report = operations.status(ctx)
    running = background.jobs(ctx.engine)
    tasks = task_runs.unfinished(ctx.engine)
    stopped = interrupted(ctx)
    agents = agents_by_version(ctx)
    held = held_agents(ctx) if agents is not None else []
    newer = release_feed.newer_than_site(
        release_feed.last_check(ctx.site, ctx.catalog.versions), report.release
    )
    following = _next(report, stopped, newer, ctx.catalog.versions, _finishing(running, tasks))
    if json:
        jobs = [
            {"change": j.label, "state": j.state, "fraction": j.fraction, "eta_s": j.eta()}
            for j in running
        ]
        emit_json(
            {
                **views.status_json(report),
                "background": jobs,
                "tasks": [{**dataclasses.asdict(t), "retry": t.retry} for t in tasks],
                "interrupted_upgrade": _interrupted_json(stopped),
                "agents": _agents_json(agents),
                "held_agents": [{"agent": a, "version": v, "reason": r} for a, v, r in held],
                "newer_release": newer.model_dump(mode="json") if newer else None,
                "next": following.as_json(),
            }
        )
    else:
        out.print(views.status_table(report))
        if report.adopt:
            out.print(f"[yellow]{escape(report.adopt)}[/yellow]", highlight=False)
        if stopped is not None:
            out.print(f"[yellow]{plain(stopped.describe())}[/yellow]", highlight=False)
        for job in running:
            out.print(f"background migration {job.describe()}", highlight=False)
        for run in tasks:
            out.print(plain(run.describe()), highlight=False)
        if agents is not None:
            out.print(plain(_agents_line(agents, held)), highlight=False)
        _say_newer(newer)
        out.print(plain(following.describe()), highlight=False)
    if strict and report.troubles:
        raise ManualStepNeeded(
            "the site is not in order: " + "; ".join(report.troubles),
            hint="`stairway repair` re-records drifted changes once checked, `stairway migrate` "
            "applies pending ones; changes not in the catalog mean the catalog is older than "
            "the database",
        )


def _interrupted_json(stopped: Interrupted | None) -> dict[str, str] | None:
    if stopped is None:
        return None
    return {"upgrade_id": stopped.upgrade_id, "at": stopped.where, "settle": stopped.settle}


def _agents_json(agents: list[tuple[str, int, int]] | None) -> list[dict[str, Any]] | None:
    if agents is None:
        return None
    return [{"version": v or None, "enrolled": n, "connected": on} for v, n, on in agents]


def _agents_line(agents: list[tuple[str, int, int]], held: list[tuple[str, str, str]]) -> str:
    """``agents by version: 1.0.0: 1 (1 connected, 1 held), 2.0.0: 3 (3 connected); held:
    relay-1 (held: agent release 1.0.0 is ...)``."""
    if not agents:
        return "agents by version: none enrolled"
    shown = [
        f"{v or 'not heard from'}: {n} ({on} connected{_held(v, held)})" for v, n, on in agents
    ]
    reasons = "; held: " + ", ".join(f"{a} ({why})" for a, _, why in held) if held else ""
    return "agents by version: " + ", ".join(shown) + reasons


def _held(version: str, held: list[tuple[str, str, str]]) -> str:
    count = sum(1 for _, v, _ in held if v == version)
    return f", {count} held" if count else ""


def _finishing(jobs: list[background.Job], tasks: list[TaskRun]) -> tuple[str, ...]:
    """The commands that finish the background work: a paused migration resumed, the runner
    for migrations not done and tasks queued (or cut short), the retry of each failed task."""
    unfinished = [j for j in jobs if j.state is not background.JobState.DONE]
    resumed = tuple(
        f"stairway background resume {j.number}"
        for j in unfinished
        if j.state is background.JobState.PAUSED
    )
    waiting = bool(unfinished) or any(t.retry is None for t in tasks)
    retries = tuple(t.retry for t in tasks if t.retry)
    return resumed + ((task_runs.WORKER,) if waiting else ()) + retries


def _next(
    report: operations.Status,
    stopped: Interrupted | None,
    newer: IndexedRelease | None,
    versions: GrammarName,
    background_work: tuple[str, ...] = (),
) -> NextStep:
    """What to run next, from what the status found; releases read in the catalog's
    ``versions`` grammar."""
    state = report.state
    site = next_step.Site(
        report.release,
        stopped.command if stopped else None,
        unadopted=report.release is None and bool(report.adopt),
        drifted=bool(state.drifted),
        pending=bool(report.pending or (report.release and report.repeatables)),
        unknown=bool(state.unknown),
        catalog_latest=report.latest,
        index_newest=str(newer.version) if newer else None,
        versions=versions,
        background=background_work,
    )
    return next_step.next_step(site)


def _say_newer(newer: IndexedRelease | None) -> None:
    """One line when the last release check (no network here) found a newer release."""
    if newer is not None:
        out.print(
            f"[cyan]{plain(newer.describe())} is available[/cyan]: "
            f"{plain(release_feed.next_steps(newer.version))}",
            highlight=False,
        )


@app.command()
def plan(
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    rolling: Annotated[
        bool, typer.Option("--rolling", help="exit 3 unless the path is rolling-safe")
    ] = False,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="locks, table sizes and predicted time per step")
    ] = False,
    window: Annotated[
        str | None, typer.Option("--window", help="with --estimate: downtime allowed, e.g. 30m")
    ] = None,
    probe: Annotated[
        str | None, typer.Option("--probe", help="with --estimate: a startup probe, e.g. 60s")
    ] = None,
    transaction_limit: Annotated[
        str | None, typer.Option("--transaction-limit", help="with --estimate: e.g. 5m")
    ] = None,
    lock_limit: Annotated[
        str | None, typer.Option("--lock-limit", help="with --estimate: writes may wait, e.g. 5s")
    ] = None,
    recalibrate: Annotated[
        bool, typer.Option("--recalibrate", help="with --estimate: measure the rates again")
    ] = False,
    from_index: FromIndexOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """The path through required stops, each step's changes and phases, and rolling safety;
    with --estimate, each step's lock and predicted time, and exit 3 when a limit is broken."""
    if from_index is not None:
        catalog = indexed_catalog("plan", site, catalog, to, from_index)
    ctx = site_context.open_context(site, catalog, to)
    if estimate:
        limits = _limits(window, probe, transaction_limit, lock_limit)
        _estimate(ctx, to, limits, recalibrate, json)
        return
    value = operations.plan(ctx, to)
    moves = plan_moves(ctx, value)
    if json:
        emit_json(views.plan_json(value, ctx.catalog.warnings, moves))
    elif value.nothing_to_do:
        out.print(value.describe(), highlight=False)
        _say_repeatables(value)
        return
    else:
        out.print(views.plan_table(value, ctx.catalog.warnings, moves))
        said = f"rolling-safe: {value.rolling_safety().describe()}"
        out.print(said, highlight=False, markup=False)
    if rolling and not value.rolling_safe and not value.nothing_to_do:
        raise typer.Exit(ExitCode.NEEDS_OPERATOR)


def _say_repeatables(value: UpgradePlan) -> None:
    """At the target already, an upgrade runs nothing: `migrate` applies what repeatables are
    due."""
    if value.repeatables:
        shown = ", ".join(r.describe() for r in value.repeatables)
        out.print(
            f"repeatable migrations pending (`stairway migrate` applies them): {shown}",
            highlight=False,
            markup=False,
        )


def _limits(*given: str | None) -> Limits:
    names = ("--window", "--probe", "--transaction-limit", "--lock-limit")
    values = []
    for name, value in zip(names, given, strict=True):
        try:
            values.append(parse_duration(value) if value else None)
        except ValueError as problem:
            raise UsageRefused(f"{name}: {problem}", hint="e.g. 90s, 15m or 2h") from None
    return Limits(*values)


def _estimate(
    ctx: site_context.Context, to: str | None, limits: Limits, again: bool, json: bool
) -> None:
    found = estimate_upgrade(ctx, to, limits, again)
    if json:
        emit_json(estimate_json(found))
    else:
        out.print(estimate_table(found))
        out.print(estimate_summary(found), highlight=False)
        for flag in found.flags:
            out.print(f"[yellow]over a limit:[/yellow] {escape(flag)}", highlight=False)
    if found.flags:
        raise typer.Exit(ExitCode.NEEDS_OPERATOR)


@app.command()
def migrate(
    to: Annotated[str | None, typer.Option("--to", help="release whose schema to reach")] = None,
    phase: Annotated[
        Phase | None, typer.Option("--phase", help="apply only the leading run of this phase")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the SQL, change nothing")
    ] = False,
    down_to: Annotated[
        int | None, typer.Option("--down-to", help="revert changes above this number")
    ] = None,
    allow_data_loss: Annotated[
        bool, typer.Option("--allow-data-loss", help="accept what the down direction loses")
    ] = False,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", help="seconds to wait for another migrator")
    ] = 30.0,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Only the schema: apply pending changes (or, with --down-to, revert declared ones)."""
    ctx = site_context.open_context(site, catalog, to)
    if down_to is not None:
        done = operations.downgrade(ctx, down_to, allow_data_loss, reverting(json))
        _report_applied(done, json, "reverted")
        return
    request = operations.MigrateRequest(to=to, only=phase, lock_timeout=lock_timeout)
    say_adopting(ctx, json)
    if dry_run:
        _dry_run(ctx, request, json)
        return
    _report_applied(operations.migrate(ctx, request, applying(json)), json, "applied")


def _dry_run(ctx: site_context.Context, request: operations.MigrateRequest, json: bool) -> None:
    """The changes and the Flyway repeatables the migration would apply, and their SQL."""
    pending = operations.pending_changes(ctx, request)
    due = operations.pending_repeatables(ctx, request)
    sql = operations.render_sql(pending, due)
    if json:
        emit_json(
            {
                "pending": [views.change_json(c) for c in pending],
                "repeatables": [views.repeatable_json(r) for r in due],
                "sql": sql,
            }
        )
    else:
        out.print(sql or "-- nothing to apply", highlight=False, markup=False)


def _report_applied(done: list[Any], json: bool, verb: str) -> None:
    if json:
        emit_json({verb: views.applied_json(done)})
    elif done:
        out.print(f"[green]{verb} {len(done)} change(s)[/green]")
    elif verb == "reverted":
        out.print("nothing to revert: no applied change is above that number")
    else:
        out.print("nothing to do: the schema is up to date")


@app.command()
def baseline(
    at: Annotated[int, typer.Option("--at", help="number of the last change already present")],
    version: Annotated[
        str | None, typer.Option("--version", help="release the database is at")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="skip the check that the tables of 1..N are there")
    ] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Adopt an existing database: record changes 1..N as present without running them."""
    done = operations.baseline(site_context.open_context(site, catalog), at, version, force)
    if json:
        emit_json({"baseline": done})
    else:
        out.print(f"[green]baselined at change {done}[/green]")


@app.command()
def repair(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Accept the current text of drifted changes after checking the database matches them."""
    fixed = operations.repair(site_context.open_context(site, catalog))
    if json:
        emit_json({"repaired": fixed})
    else:
        out.print(f"re-recorded: {', '.join(fixed)}" if fixed else "no drift to repair")
