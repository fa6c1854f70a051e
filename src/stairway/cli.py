"""The ``stairway`` command line: arguments in, Rich (or JSON) out; errors become exit codes."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress

from stairway import context as site_context
from stairway import disk, operations, views
from stairway.errors import (
    AuditBroken,
    ExitCode,
    ManualStepNeeded,
    StairwayError,
    UpgradeFailed,
    UsageRefused,
    VerifyBlocked,
)
from stairway.errors import (
    TransferError as TransferBroken,
)
from stairway.files import write_atomic
from stairway.meter import meter
from stairway.objects.checkpoints import Checkpoint
from stairway.options import (
    CatalogOpt,
    JsonOpt,
    ReportOpt,
    ShardOpt,
    SiteOpt,
    WorkersOpt,
    emit_json,
    err,
    out,
)
from stairway.schema.change import Change, Phase
from stairway.steps import Step

app = typer.Typer(
    help="Safe, boring upgrades of self-hosted services: plan, migrate, verify, roll back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def announce(change: Change) -> None:
    out.print(f"  applying {change.label} [{views.phase_text(change)}]")


def quiet(_change: Change) -> None:
    """Progress sink for --json runs: nothing but the JSON goes to stdout."""


@app.command()
def init(
    version: Annotated[str, typer.Option("--version", help="release to create the site at")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a new site at release VERSION: its schema changes and initial objects.

    With releases_dir in site.toml, the verified release is installed and made current first."""
    from stairway.release_source import install_first
    from stairway.site import load_site

    installed = install_first(load_site(site).site, version)
    if installed is not None and not json:
        out.print(f"release {version} verified, installed in {installed} and made current")
    ctx = site_context.open_context(site, catalog, version)
    done = operations.init(ctx, version, progress=quiet if json else announce)
    if json:
        emit_json({"release": version, "applied": views.applied_json(done)})
        return
    out.print(f"[green]site created at {version}[/green] ({len(done)} changes applied)")


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
    """Site version, schema level, applied, pending and drifted changes, background migrations;
    exit 0 whatever they are, unless --strict."""
    from stairway.schema import background

    ctx = site_context.open_context(site, catalog)
    report = operations.status(ctx)
    running = background.jobs(ctx.engine)
    if json:
        jobs = [
            {"change": j.label, "state": j.state, "fraction": j.fraction, "eta_s": j.eta()}
            for j in running
        ]
        emit_json({**views.status_json(report), "background": jobs})
    else:
        out.print(views.status_table(report))
        if report.adopt:
            out.print(f"[yellow]{escape(report.adopt)}[/yellow]", highlight=False)
        for job in running:
            out.print(f"background migration {job.describe()}", highlight=False)
    if strict and report.troubles:
        raise ManualStepNeeded(
            "the site is not in order: " + "; ".join(report.troubles),
            hint="`stairway repair` re-records drifted changes once checked, `stairway migrate` "
            "applies pending ones; changes not in the catalog mean the catalog is older than "
            "the database",
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
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """The path through required stops, each step's changes and phases, and rolling safety;
    with --estimate, each step's lock and predicted time, and exit 3 when a limit is broken."""
    ctx = site_context.open_context(site, catalog, to)
    if estimate:
        limits = _limits(window, probe, transaction_limit, lock_limit)
        _estimate(ctx, to, limits, recalibrate, json)
        return
    value = operations.plan(ctx, to)
    if json:
        emit_json(views.plan_json(value, ctx.catalog.warnings))
    else:
        out.print(views.plan_table(value, ctx.catalog.warnings))
        blockers = ", ".join(c.label for c in value.blocking_rolling)
        out.print(
            f"rolling-safe: {'yes' if value.rolling_safe else 'no'}"
            + (f" (blocked by {blockers})" if blockers else "")
        )
    if rolling and not value.rolling_safe:
        raise typer.Exit(ExitCode.NEEDS_OPERATOR)


def _limits(*given: str | None) -> Any:
    from stairway.estimate import Limits
    from stairway.estimate.predict import parse_duration

    names = ("--window", "--probe", "--transaction-limit", "--lock-limit")
    values = []
    for name, value in zip(names, given, strict=True):
        try:
            values.append(parse_duration(value) if value else None)
        except ValueError as problem:
            raise UsageRefused(f"{name}: {problem}", hint="e.g. 90s, 15m or 2h") from None
    return Limits(*values)


def _estimate(
    ctx: site_context.Context, to: str | None, limits: Any, again: bool, json: bool
) -> None:
    from stairway.estimate import estimate_upgrade
    from stairway.estimate.views import estimate_json, estimate_summary, estimate_table

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
    progress = quiet if json else announce
    if down_to is not None:
        done = operations.downgrade(ctx, down_to, allow_data_loss, progress)
        _report_applied(done, json, "reverted")
        return
    request = operations.MigrateRequest(to=to, only=phase, lock_timeout=lock_timeout)
    if dry_run:
        pending = operations.pending_changes(ctx, request)
        if json:
            emit_json(
                {
                    "pending": [views.change_json(c) for c in pending],
                    "sql": operations.render_sql(pending),
                }
            )
        else:
            out.print(operations.render_sql(pending) or "-- nothing to apply", highlight=False)
        return
    _report_applied(operations.migrate(ctx, request, progress), json, "applied")


def _report_applied(done: list[Any], json: bool, verb: str) -> None:
    if json:
        emit_json({verb: views.applied_json(done)})
    elif done:
        out.print(f"[green]{verb} {len(done)} change(s)[/green]")
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


@app.command()
def quickstart(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="where to build the demo [default: a new temp dir]")
    ] = None,
) -> None:
    """Build a demo site of the bundled identity-sync product on SQLite and upgrade it."""
    from stairway import quickstart as demo
    from stairway import service
    from stairway import upgrade as upgrading
    from stairway import verify as checks

    target = directory or Path(tempfile.mkdtemp(prefix="stairway-demo-"))
    site = demo.write_site(target)
    ctx = demo.open_demo(site)
    out.rule("[bold]Stairway quickstart: identity-sync on SQLite")
    out.print(f"site: {site.site_file}")
    operations.init(ctx, "1.0.0", progress=announce)
    _seed(ctx, demo)
    service.run_command(ctx.site.service, "start")
    service.wait_healthy(ctx.site.service)
    out.print(f"identity-sync 1.0.0 serves: {_health(site.health_url)}")
    out.print(views.plan_table(operations.plan(ctx, "2.0.0"), ctx.catalog.warnings))
    out.print(views.verify_table(checks.verify(ctx, "2.0.0")))
    out.rule("[bold]stairway upgrade --to 2.0.0")

    def step(index: int, total: int, what: Step) -> None:
        out.print(f"  [{index + 1}/{total}] {what.describe()}")

    try:
        report = upgrading.upgrade(ctx, "2.0.0", progress=step)
        for item in report.attention:
            out.print(f"[yellow]needs a hand:[/yellow] {escape(item.describe())}")
        out.print(f"identity-sync 2.0.0 serves: {_health(site.health_url)}")
        credential = _health(site.health_url.replace("/health", "/connectors/1/credential"))
        out.print(f"the LDAP connector's sealed bind password after the upgrade: {credential}")
        out.print(views.status_table(operations.status(ctx)))
        out.print(
            f"[green]done:[/green] {demo.migrated_users(ctx):,} users carry their new display "
            f"name; the journal and the backup are in {target / 'backups'}"
        )
    finally:
        service.run_command(ctx.site.service, "stop")
        out.print(f"(the demo service was stopped; `stairway status --site {site.site_file}`)")


def _health(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


@app.command()
def verify(
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    report_file: ReportOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Read-only pre-upgrade checks on the old version; exit 2 when anything blocks. Lists
    the deltas and config items the upgrade will leave for an operator, with what to run."""
    from stairway import verify as checks

    ctx = site_context.open_context(site, catalog, to)
    report = checks.verify(ctx, to)
    if report_file:
        from stairway.report.documents import predicted, verify_document

        estimate = predicted(ctx, str(report.target))
        _write_report(verify_document(ctx, report, estimate), report_file, json)
    if json:
        emit_json(views.verify_json(report))
    else:
        out.print(views.verify_table(report))
    if report.blocking:
        raise VerifyBlocked(
            f"{len(report.blocking)} finding(s) block the upgrade to {report.target}",
            hint="fix each critical finding above, then run verify again",
        )
    if not json:
        out.print(f"[green]nothing blocks the upgrade to {report.target}[/green]")
    if report.by_hand and not json:
        out.print(
            f"[yellow]{len(report.by_hand)} item(s) above will need an operator:[/yellow] the "
            "upgrade will do the rest, leave these as they are and exit 3; 'what to do' says how",
            highlight=False,
        )


objects_app = typer.Typer(
    help="Stored objects: rewrite them in bulk, show one as the code reads it."
)
app.add_typer(objects_app, name="objects")


@objects_app.command("rewrite")
def objects_rewrite(
    batch: Annotated[int, typer.Option("--batch", help="objects per transaction")] = 1000,
    rate: Annotated[
        float | None, typer.Option("--rate", help="at most this many objects per second")
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write every stale object back in its migrated form; resumes after a kill."""
    ctx = site_context.open_context(site, catalog)
    if json:
        report = operations.rewrite_objects(ctx, batch, rate)
        emit_json(dataclasses.asdict(report))
        return
    with Progress(*Progress.get_default_columns(), console=out) as bar:
        task = bar.add_task("rewriting objects", total=None)

        def advance(point: Checkpoint, total: int) -> None:
            bar.update(task, completed=point.scanned, total=total)

        report = operations.rewrite_objects(ctx, batch, rate, advance)
    out.print(f"[green]done:[/green] {report.describe()}")


@objects_app.command("show")
def objects_show(
    oid: Annotated[str, typer.Argument(help="the object's id")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """One object as the site's release reads it, and the migrations that applied (read-only)."""
    store = operations.object_store(site_context.open_context(site, catalog))
    found = operations.peek_object(store, oid)
    if json:
        emit_json(views.object_json(found))
        return
    out.print(views.object_panel(found))


@app.command("upgrade")
def upgrade_command(
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="finish an upgrade that was interrupted")
    ] = False,
    rolling: Annotated[
        bool,
        typer.Option("--rolling", help="instance by instance, without downtime (expand only)"),
    ] = False,
    report_file: ReportOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """The whole upgrade, journaled: verify, back up, migrate, restart; rolls back on failure
    (exit 1). Exit 3 when it finished but left deltas or config items for an operator."""
    from stairway import upgrade as upgrading
    from stairway.handwork import left_for_operator
    from stairway.report import StepClock

    ctx = site_context.open_context(site, catalog, to or (_interrupted(site) if resume else None))
    clock = StepClock()

    def announce_step(index: int, total: int, step: Step) -> None:
        clock(index, total, step)
        if not json:
            out.print(f"  [{index + 1}/{total}] {step.describe()}")

    if report_file is None:
        report = upgrading.upgrade(ctx, to, resume, announce_step, rolling)
    else:
        report = _upgrade_reported(
            ctx, to, resume, announce_step, clock, report_file, json, rolling
        )
    if json:
        emit_json(views.upgrade_json(report))
    elif report.upgrade_id is None:
        out.print(f"already at {report.target}: nothing to upgrade")
    else:
        done = f"{report.current} -> {report.target} ({report.upgrade_id})"
        out.print(f"[green]upgraded[/green] {done}", highlight=False)
    if report.attention:
        raise left_for_operator(report.target, report.attention)


def _interrupted(site: Path | None) -> str | None:
    """The release an interrupted upgrade was going to: its catalog knows every step taken."""
    from stairway.release_source import interrupted_target
    from stairway.site import load_site

    return interrupted_target(load_site(site).site)


def _upgrade_reported(
    ctx: site_context.Context,
    to: str | None,
    resume: bool,
    announce: Any,
    clock: Any,
    report_file: Path,
    json: bool,
    rolling: bool = False,
) -> Any:
    """The upgrade with its report written however it ends."""
    from stairway import upgrade as upgrading
    from stairway.report.documents import predicted, upgrade_document
    from stairway.verify import verify as check

    plan = operations.plan(ctx, to)
    estimate = predicted(ctx, to)
    findings = check(ctx, to) if not resume else None  # as the upgrade's own verify sees it
    try:
        report = upgrading.upgrade(ctx, to, resume, announce, rolling)
    except StairwayError as failure:
        clock.stop()
        said = upgrade_document(ctx, plan, estimate, clock, None, failure.message, findings)
        _write_report(said, report_file, json)
        raise
    clock.stop()
    said = upgrade_document(ctx, plan, estimate, clock, report, None, findings)
    _write_report(said, report_file, json)
    return report


def _write_report(document: Any, where: Path, json: bool) -> None:
    from stairway.report import write_report

    written = write_report(document, where)
    if not json:
        out.print(f"report: {', '.join(str(p) for p in written)}")


@app.command("rehearse")
def rehearse_command(
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    scratch_url: Annotated[
        str | None,
        typer.Option("--scratch-url", help="a database to create for the rehearsal"),
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="keep the scratch copy afterwards")] = False,
    report_file: ReportOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """The whole upgrade on a scratch copy restored from the latest backup; nothing live moves."""
    from stairway.rehearse import rehearse
    from stairway.report.documents import predicted, rehearsal_document

    ctx = site_context.open_context(site, catalog, to)
    plan = operations.plan(ctx, to)
    estimate = predicted(ctx, to)

    def announce_step(index: int, total: int, step: Step) -> None:
        if not json:
            out.print(f"  [{index + 1}/{total}] {step.describe()}")

    found = rehearse(ctx, to, scratch_url, keep, announce_step)
    if report_file:
        _write_report(rehearsal_document(ctx, plan, estimate, found), report_file, json)
    if json:
        emit_json(views.rehearsal_json(found))
    else:
        out.print(views.rehearsal_table(found, estimate))
        if found.kept:
            out.print(f"kept: {found.scratch_dir} and {found.scratch_database}")
    if found.failure:
        raise UpgradeFailed(
            f"the rehearsal's upgrade failed: {found.failure}",
            hint="fix the cause and rehearse again; the live site was not touched",
        )
    left = list(found.report.attention) if found.report else []
    if left:
        from stairway.handwork import left_in_rehearsal

        raise left_in_rehearsal(str(plan.target), left)
    if not json:
        out.print(f"[green]rehearsed[/green] {plan.current} -> {plan.target}: the upgrade works")


PASS_YES = "pass --yes to confirm"
ROLLBACK_REFUSED = "rolling back a finished upgrade discards what was written since"


@app.command("rollback")
def rollback_command(
    yes: Annotated[
        bool, typer.Option("--yes", help="roll back a finished upgrade without asking")
    ] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Back to the backup taken by the interrupted or last upgrade, and start the old release.

    Undoing a finished upgrade first lists what was written since (and is lost) and asks.
    """
    from stairway import upgrade as upgrading
    from stairway.losses import LossReport

    ctx = site_context.open_context(site, catalog, _interrupted(site))
    shown: list[LossReport] = []

    def confirm(report: LossReport) -> bool:
        shown.append(report)
        if json and not yes:
            emit_json({"rolled_back": False, "losses": report.as_json()})
            raise UsageRefused("--json does not ask: nothing was changed", hint=PASS_YES)
        if not json:
            out.print("\n".join(report.describe()), highlight=False, markup=False, soft_wrap=True)
        return yes or _confirm("roll back and lose what is listed above?", ROLLBACK_REFUSED)

    version = upgrading.rollback(ctx, confirm)
    _warn_of_restore(ctx)
    if json:
        losses = shown[0].as_json() if shown else None
        emit_json({"rolled_back": True, "version": version, "losses": losses})
        return
    out.print(f"[green]rolled back[/green]: the site is at {version} again")


@app.command("backup")
def backup_command(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Snapshot the database, data directory and config files into one checked archive."""
    taken = operations.backup(site_context.open_context(site, catalog))
    if json:
        emit_json(views.backup_json(taken))
        return
    size = taken.path.stat().st_size
    out.print(
        f"[green]backup {taken.id}[/green] written to {taken.path} "
        f"({len(taken.manifest.members)} members, {size / 1e6:,.1f} MB compressed)"
    )


@app.command("backups")
def backups_command(
    site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False
) -> None:
    """The backups in the site's backup_dir, oldest first."""
    found = operations.backups(site_context.open_context(site, catalog))
    if json:
        emit_json([views.backup_json(b) for b in found])
        return
    out.print(views.backups_table(found))


@app.command("restore")
def restore_command(
    backup_id: Annotated[str, typer.Argument(help="the backup's id (see `stairway backups`)")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Put the site back as a backup holds it: every checksum checked first, then the product
    stopped and shown down, the parts swapped, the release restarted and its health checked."""
    ctx = site_context.open_context(site, catalog)
    if not yes and not _confirm(
        f"replace the database, data directory and config files of this "
        f"site with backup {backup_id}?"
    ):
        raise typer.Exit(int(ExitCode.REFUSED))
    from stairway import recovery

    manifest = recovery.restore_site(ctx, backup_id)
    _warn_of_restore(ctx)
    if json:
        emit_json(
            {
                "restored": manifest.id,
                "product": manifest.product,
                "version": manifest.version,
                "schema_level": manifest.schema_level,
            }
        )
        return
    out.print(
        f"[green]restored[/green] {manifest.id}: {manifest.product} {manifest.version}, "
        f"schema level {manifest.schema_level}"
    )


def _warn_of_restore(ctx: site_context.Context) -> None:
    """The restore's entry warns when the audit entries since the backup were not all kept."""
    from stairway.audit_carry import restore_warning

    warning = restore_warning(ctx.engine)
    if warning:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


def _confirm(question: str, refused: str = "restore replaces the live site") -> bool:
    if not sys.stdin.isatty():
        raise UsageRefused(
            f"{refused} and no terminal is here to confirm it: nothing was changed",
            hint=PASS_YES,
        )
    return typer.confirm(question, default=False)


@app.command()
def notes(
    since: Annotated[
        str | None, typer.Option("--from", help="the release upgraded from [default: the site's]")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the Markdown to this file")
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Markdown release notes from the catalog's descriptions of everything in between
    (with --json: {"markdown", "written"})."""
    text = operations.notes(site, catalog, since, to)
    if output is not None:
        write_atomic(output, text.encode("utf-8"))
    if json:
        emit_json({"markdown": text, "written": str(output) if output else None})
    elif output is None:
        sys.stdout.write(text)
    else:
        out.print(f"release notes written to {output}")


config_app = typer.Typer(help="The operator's config files: move them to a release's shape.")
app.add_typer(config_app, name="config")


@config_app.command("migrate")
def config_migrate(
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    since: Annotated[
        str | None, typer.Option("--from", help="release the files are at [default: the site's]")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the diff, write nothing")
    ] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Apply the catalog's config-file migrations; keeps each original as NAME.before-VERSION."""
    result = operations.migrate_config(
        site_context.open_context(site, catalog, to), to, since, dry_run
    )
    if json:
        emit_json(views.config_json(result))
    else:
        _show_config(result, dry_run)
    attention = result.run.attention
    if attention:
        raise ManualStepNeeded(
            f"{len(attention)} config-file item(s) need a hand: "
            + "; ".join(a.describe() for a in attention),
            hint="edit the files as described, then run `stairway config migrate` again",
        )


def _show_config(result: operations.ConfigResult, dry_run: bool) -> None:
    if not result.run.outcomes:
        out.print("no config-file migrations apply to this site's files")
        return
    if dry_run:
        for outcome in result.run.changed:
            out.print(outcome.diff(), markup=False, highlight=False, soft_wrap=True)
    out.print(views.config_table(result))
    changed = len(result.run.changed)
    verb = "would change" if dry_run else "changed"
    out.print(f"[green]{verb} {changed} file(s)[/green]")


deltas_app = typer.Typer(
    help="Configuration deltas: the objects each release adds, changes or marks obsolete."
)
app.add_typer(deltas_app, name="deltas")


@deltas_app.command("apply")
def deltas_apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="judge them, write nothing")] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Apply the deltas of every release up to the site's; exit 3 when some are reported."""
    report = operations.apply_deltas(site_context.open_context(site, catalog), dry_run)
    if json:
        emit_json(views.deltas_json(report))
    else:
        out.print(views.deltas_table(report))
    if report.reported:
        from stairway.handwork import delta_item

        items = [delta_item(r.delta.id, r.reason) for r in report.reported]
        raise ManualStepNeeded(
            f"{len(items)} delta(s) not applied: "
            + "; ".join(f"{i.what}: {i.reason}" for i in items),
            hint="; ".join(i.command for i in items),
        )


@deltas_app.command("skip")
def deltas_skip(
    delta_id: Annotated[str, typer.Argument(help="the delta's id")],
    reason: Annotated[str, typer.Option("--reason", help="why your version stays")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Keep your own version of what a reported delta changes; it is not tried again."""
    found = operations.skip_delta(site_context.open_context(site, catalog), delta_id, reason)
    if json:
        emit_json({"skipped": found.id, "reason": reason})
        return
    out.print(f"delta {found.id} skipped: {reason}")


export_app = typer.Typer(
    help="Export every stored object to one checked NDJSON+zstd file; `export verify FILE`.",
    invoke_without_command=True,
)
app.add_typer(export_app, name="export")


@export_app.callback()
def export_command(
    context: typer.Context,
    out_file: Annotated[Path | None, typer.Option("--out", help="the export file to write")] = None,
    chunk: Annotated[int, typer.Option("--chunk", help="objects per checked chunk")] = 10_000,
    workers: WorkersOpt = 1,
    shard: ShardOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Export the site's objects as stored, and its audit log; resumes an interrupted export
    of the same file. With --shard i/N, only the i-th of N id ranges, into its own file."""
    from stairway.transfer.shards import WHOLE, Shard

    if context.invoked_subcommand is not None:
        return
    if out_file is None:
        raise UsageRefused("no export file given", hint="pass --out FILE (e.g. site.export.zst)")
    part = Shard.parse(shard) if shard else WHOLE
    ctx = site_context.open_context(site, catalog)
    if json:
        report = operations.export(ctx, out_file, chunk, None, workers, part)
        emit_json({**dataclasses.asdict(report), "path": str(report.path)})
        return
    with meter(out, "exporting objects") as update:
        report = operations.export(ctx, out_file, chunk, update, workers, part)
    resumed = f", resumed after {report.resumed_at:,}" if report.resumed_at else ""
    held = views.export_contents(report.objects, report.audit_entries, report.chunks)
    out.print(f"[green]exported[/green] {held} to {report.path}{resumed}")


@export_app.command("verify")
def export_verify(
    export_file: Annotated[Path, typer.Argument(help="the export file to check")],
    json: JsonOpt = False,
) -> None:
    """Check an export without a database: header, every chunk's count and SHA-256, trailer."""
    from stairway.transfer.format import check

    if not export_file.is_file():
        raise UsageRefused(f"{export_file} does not exist", hint="give the export file's path")
    summary = check(export_file)
    if json:
        emit_json(
            {
                "ok": summary.ok,
                "objects": summary.objects,
                "chunks": summary.chunks,
                "counts": summary.counts,
                "problems": [p.describe() for p in summary.problems],
            }
        )
    if not summary.ok:
        shown = "; ".join(p.describe() for p in summary.problems[:5])
        raise TransferBroken(
            f"{export_file} does not check out: {shown}",
            hint="export again; an interrupted export resumes with the same --out",
        )
    if not json:
        out.print(
            f"[green]{export_file} checks out[/green]: "
            f"{views.export_contents(summary.objects, summary.audit_entries, summary.chunks)}, "
            f"{summary.header.get('product')} "
            f"{summary.header.get('version')}"
        )


@app.command("import")
def import_command(
    export_file: Annotated[Path, typer.Argument(help="the export file to import")],
    max_errors: Annotated[
        int, typer.Option("--max-errors", help="stop after this many rejected records")
    ] = 0,
    workers: WorkersOpt = 1,
    shard: ShardOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Import an export, migrating old objects while parsing; resumable and idempotent."""
    from stairway.transfer.shards import WHOLE, Shard

    part = Shard.parse(shard) if shard else WHOLE
    ctx = site_context.open_context(site, catalog)
    if json:
        report = operations.import_file(ctx, export_file, max_errors, None, workers, part)
        emit_json({**dataclasses.asdict(report), "counts": report.counts})
    else:
        with meter(out, "importing objects") as update:
            report = operations.import_file(ctx, export_file, max_errors, update, workers, part)
        out.print(views.import_table(report))
        out.print(views.import_summary(report, part))
    if report.problems or report.rejected:
        raise TransferBroken(
            "; ".join(report.problems) or f"{report.rejected} record(s) rejected",
            hint=f"rejected records are in {export_file}.rejects.ndjson with line and reason",
        )


audit_app = typer.Typer(help="The site's hash-chained audit log.")
app.add_typer(audit_app, name="audit")


@audit_app.command("show")
def audit_show(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Every audit entry, oldest first; those carried over by a restore say where from."""
    from stairway import audit, audit_carry

    ctx = site_context.open_context(site, catalog)
    with ctx.engine.begin() as conn:
        found = audit.entries(conn)
    if json:
        emit_json([dataclasses.asdict(e) for e in found])
        return
    for entry in found:
        carried = audit_carry.carried_from(entry)
        data = {k: v for k, v in entry.data.items() if k != "carried"} if carried else entry.data
        line = f"{entry.id:>5} {entry.at} {entry.actor} {entry.action} {data}"
        said = f"{escape(line)} [cyan]({carried})[/cyan]" if carried else escape(line)
        out.print(said, highlight=False)


@audit_app.command("verify")
def audit_verify(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Check the chain: an entry changed or removed after it was written is named; exit 2."""
    from stairway import audit

    ctx = site_context.open_context(site, catalog)
    with ctx.engine.begin() as conn:
        audit.ensure_table(conn)
        problems = audit.verify(conn)
        count = len(audit.entries(conn))
    if json:
        emit_json({"whole": not problems, "entries": count, "problems": problems})
    if problems:
        raise AuditBroken(
            "the audit log was tampered with: " + "; ".join(problems),
            hint="restore the log from a backup and find out who changed it",
        )
    if not json:
        out.print(f"[green]the audit log is whole[/green] ({count} entries)")


release_app = typer.Typer(
    help="Signed releases: keys, artifacts and manifests (publisher side), and their check."
)
app.add_typer(release_app, name="release")


@release_app.command("keygen")
def release_keygen(
    out_dir: Annotated[Path, typer.Option("--out", help="directory for release.key and .pub")],
    json: JsonOpt = False,
) -> None:
    """A new Ed25519 key pair for signing releases; keep release.key secret."""
    from stairway import releases

    private, public = releases.generate_key(out_dir)
    if json:
        emit_json({"private": str(private), "public": str(public)})
        return
    out.print(f"private key {private} (keep it secret), public key {public} (give it to sites)")


@release_app.command("pack")
def release_pack(
    tree: Annotated[Path, typer.Argument(help="the release's directory tree")],
    artifact: Annotated[Path, typer.Option("--out", help="the .tar.zst to write")],
    json: JsonOpt = False,
) -> None:
    """Pack a release tree into a zstd tar artifact."""
    from stairway import releases

    releases.pack_release(tree, artifact)
    if json:
        emit_json({"packed": str(tree), "artifact": str(artifact)})
        return
    out.print(f"packed {tree} into {artifact}")


@release_app.command("sign")
def release_sign(
    artifact: Annotated[Path, typer.Argument(help="the release artifact")],
    key: Annotated[Path, typer.Option("--key", help="release.key")],
    product: Annotated[str, typer.Option("--product")],
    version: Annotated[str, typer.Option("--version")],
    json: JsonOpt = False,
) -> None:
    """Write release-VERSION.json (artifact name, size, SHA-256) and its signature beside it."""
    from stairway import releases

    manifest = releases.sign_release(key, artifact, product, version)
    if json:
        emit_json({"manifest": str(manifest), "signature": f"{manifest}.sig"})
        return
    out.print(f"signed {artifact.name}: {manifest} and {manifest.name}.sig")


@release_app.command("verify")
def release_verify(
    version: Annotated[str, typer.Option("--version", help="the release to check")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check a release's signature, size and SHA-256 with the site's key; installs nothing.

    The product is the one the catalog names when one is at hand (--catalog or the site's),
    else the one the signed manifest names."""
    from stairway import releases
    from stairway.release_source import catalog_product
    from stairway.site import load_site

    where = load_site(site).site
    if where.artifacts is None or where.release_key is None:
        raise UsageRefused(
            "site.toml names no artifacts and release_key", hint="set both in the [site] table"
        )
    product = catalog_product(catalog or where.catalog)
    found = releases.check_release(where.artifacts, where.release_key, product, version)
    if json:
        emit_json(
            {
                "verified": str(found.artifact),
                "product": found.product,
                "version": str(found.version),
                "sha256": found.sha256,
            }
        )
        return
    out.print(
        f"[green]{found.artifact} verified[/green]: {found.product} {found.version}, "
        f"sha256 {found.sha256}"
    )


@release_app.command("fetch")
def release_fetch(
    version: Annotated[str, typer.Argument(help="the release to install")],
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="URL or directory publishing release-V.json, its .sig and the artifact "
            "[default: the site's artifacts]",
        ),
    ] = None,
    site: SiteOpt = None,
    json: JsonOpt = False,
) -> None:
    """Verify a signed release and unpack it into releases/VERSION; `current` is not moved
    (the upgrade switches it)."""
    from stairway.release_source import fetch
    from stairway.site import load_site

    installed = fetch(load_site(site).site, version, source)
    if json:
        emit_json({"release": version, "installed": str(installed)})
        return
    out.print(f"[green]release {version} verified[/green] and installed in {installed}")


background_app = typer.Typer(help="Background migrations: batches run while the product serves.")
app.add_typer(background_app, name="background")


@background_app.command("run")
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
    from stairway.schema import background

    ctx = site_context.open_context(site, catalog)

    def say(job: background.Job) -> None:
        if not json and (job.batches % 100 == 0 or job.state == "done"):
            out.print(job.describe(), highlight=False)

    found = operations.run_background(ctx, background.Throttle(probe_ms, pause), max_seconds, say)
    if json:
        emit_json([_job_json(j) for j in found])
        return
    for job in found:
        out.print(job.describe(), highlight=False)
    if not found:
        out.print("no background migrations")


@background_app.command("status")
def background_status(
    site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False
) -> None:
    """Each background migration: state, % done, ETA, batches, times throttled."""
    from stairway.schema import background

    found = background.jobs(site_context.open_context(site, catalog).engine)
    if json:
        emit_json([_job_json(j) for j in found])
        return
    for job in found:
        out.print(f"{job.describe()} ({job.batches} batches, throttled {job.throttled})")
    if not found:
        out.print("no background migrations")


@background_app.command("pause")
def background_pause(
    number: Annotated[int, typer.Argument(help="the change number")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Pause a background migration after its current batch."""
    from stairway.schema import background

    job = background.set_paused(site_context.open_context(site, catalog).engine, number, True)
    _say_job(job, json)


@background_app.command("resume")
def background_resume(
    number: Annotated[int, typer.Argument(help="the change number")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Let a paused background migration run again (with `background run`)."""
    from stairway.schema import background

    job = background.set_paused(site_context.open_context(site, catalog).engine, number, False)
    _say_job(job, json)


def _job_json(job: Any) -> dict[str, Any]:
    return {**dataclasses.asdict(job), "fraction": job.fraction, "eta_s": job.eta()}


def _say_job(job: Any, json: bool) -> None:
    if json:
        emit_json(_job_json(job))
    else:
        out.print(job.describe(), highlight=False)


licence_app = typer.Typer(help="The product's signed licence: check it, or issue one (vendors).")
app.add_typer(licence_app, name="licence")


@licence_app.command("check")
def licence_check(
    to: Annotated[
        str | None, typer.Option("--to", help="the version to run [default: the site's]")
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check the site's licence for its version or a target; exit 2 when it does not hold."""
    from stairway.targets import named_release
    from stairway.verify import licence_findings

    ctx = site_context.open_context(site, catalog, to)
    version = named_release(ctx.catalog, to).version if to else site_context.current_version(ctx)
    found = licence_findings(ctx, version)
    if json:
        emit_json({"version": str(version), "findings": [dataclasses.asdict(f) for f in found]})
    elif not found:
        out.print(f"{ctx.catalog.product} needs no licence")
    for finding in [] if json else found:
        out.print(finding.describe(), highlight=False)
    blocking = [f for f in found if f.blocking]
    if blocking:
        raise VerifyBlocked(blocking[0].message, hint=blocking[0].hint)


@licence_app.command("issue")
def licence_issue(
    key: Annotated[Path, typer.Option("--key", help="the vendor's PEM private key")],
    product: Annotated[str, typer.Option("--product")],
    customer: Annotated[str, typer.Option("--customer")],
    versions: Annotated[str, typer.Option("--versions", help='e.g. ">=2.0,<3"')],
    expires: Annotated[str, typer.Option("--expires", help="YYYY-MM-DD")],
    to: Annotated[Path, typer.Option("--out", help="the licence file to write")],
    licence_id: Annotated[str | None, typer.Option("--id")] = None,
    json: JsonOpt = False,
) -> None:
    """Sign a licence (the vendor's side)."""
    import uuid
    from datetime import UTC, datetime

    from stairway import licence

    terms = {
        "id": licence_id or uuid.uuid4().hex[:12],
        "product": product,
        "customer": customer,
        "issued": datetime.now(UTC).date().isoformat(),
        "expires": expires,
        "versions": versions,
    }
    issued = licence.issue(key, terms, to)
    if json:
        emit_json({**terms, "id": issued.id, "expires": str(issued.expires), "path": str(to)})
        return
    out.print(f"licence {issued.id} for {customer}: {product} {versions} until {issued.expires}")


@licence_app.command("keygen")
def licence_keygen(
    folder: Annotated[Path, typer.Option("--out", help="directory for licence.key and .pub")],
    json: JsonOpt = False,
) -> None:
    """The vendor's Ed25519 licence key pair; licence.pub ships in the catalog."""
    from stairway import licence

    private, public = licence.generate_key(folder)
    if json:
        emit_json({"private": str(private), "public": str(public)})
        return
    out.print(f"{private} (keep secret) and {public} (ship in the catalog as [licence] key)")


def _fleet_commands() -> None:
    from stairway.fleet import cli as fleet_cli

    app.command("serve")(fleet_cli.serve)
    app.add_typer(fleet_cli.tokens_app, name="tokens")
    app.add_typer(fleet_cli.agent_app, name="agent")
    from stairway.secrets.cli import secrets_app

    app.add_typer(secrets_app, name="secrets")
    from stairway.service_cli import service_app

    app.add_typer(service_app, name="service")


_fleet_commands()


def _authoring_commands() -> None:
    from stairway.authoring.cli import register

    register(app)


_authoring_commands()


def _seed(ctx: site_context.Context, demo: Any) -> None:
    with Progress(*Progress.get_default_columns(), console=out) as bar:
        task = bar.add_task("demo users", total=demo.DEMO_USERS)
        demo.seed(ctx, lambda n: bar.advance(task, n))


def run(entry: Callable[[], Any]) -> int:
    """Call the Typer app, mapping Stairway errors to the exit codes of the design."""
    try:
        entry()
    except StairwayError as error:
        return _failed(error)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    except Exception as error:
        found = disk.trouble(error)
        if found is None:
            raise
        return _failed(_disk_failure(found))
    return 0


def _failed(error: StairwayError) -> int:
    # a message names TOML tables ("[site]") that Rich would take for markup
    said, hint = escape(error.message), escape(error.hint)
    err.print(f"[red]error:[/red] {said}", highlight=False, soft_wrap=True)
    if error.hint:
        err.print(f"[yellow]hint:[/yellow] {hint}", highlight=False, soft_wrap=True)
    return int(error.exit_code)


def _disk_failure(found: disk.DiskTrouble) -> StairwayError:
    """A write that failed for the disk's sake where no layer below said what it meant: the
    command stopped part way, so an operator looks before anything runs again."""
    where = f"{found.path}: " if found.path else ""
    return ManualStepNeeded(
        f"a write failed ({where}{found.said}); the command stopped part way",
        hint=f"{found.advice(Path.cwd())}, then run the command again "
        "(`stairway status` says where the site stands)",
    )


def main() -> None:
    sys.exit(run(lambda: app(standalone_mode=True)))
