"""The upgrade and what surrounds it: ``verify`` before, ``upgrade``, ``rehearse`` on a scratch
copy, and ``rollback``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stairway import background_stop, operations, views
from stairway import context as site_context
from stairway import upgrade as upgrading
from stairway import verify as checks
from stairway.cli.from_index import FromIndexOpt, indexed_catalog
from stairway.cli.output import (
    PASS_YES,
    confirm,
    reported,
    say_adopting,
    steps,
    warn_of_restore,
)
from stairway.errors import UpgradeFailed, UsageRefused, VerifyBlocked
from stairway.handwork import left_for_operator, left_in_rehearsal
from stairway.losses import LossReport
from stairway.open_sessions import SessionPolicy
from stairway.options import CatalogOpt, JsonOpt, ReportOpt, SiteOpt, emit_json, out, plain
from stairway.rehearse import rehearse
from stairway.release_source import interrupted_target
from stairway.site import load_site
from stairway.steps import Step

app = typer.Typer()
ROLLBACK_REFUSED = "rolling back a finished upgrade discards what was written since"


@app.command()
def verify(
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    from_index: FromIndexOpt = None,
    report_file: ReportOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Read-only pre-upgrade checks on the old version; exit 2 when anything blocks. Lists
    the deltas and config items the upgrade will leave for an operator, with what to run."""
    if from_index is not None:
        catalog = indexed_catalog("verify", site, catalog, to, from_index)
    ctx = site_context.open_context(site, catalog, to)
    report = checks.verify(ctx, to)
    if report_file:
        # the report's templates (Jinja2) are loaded only when a report is asked for
        from stairway.report import write_report
        from stairway.report.documents import predicted, verify_document

        document = verify_document(ctx, report, predicted(ctx, str(report.target)))
        reported(json)(write_report(document, report_file))
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
    drain_sessions: Annotated[
        float | None,
        typer.Option(
            "--drain-sessions",
            metavar="SECONDS",
            min=0,
            help="wait up to SECONDS for open user sessions to close, after a notice; "
            "refuses (exit 2) when some are left, unless --end-sessions",
        ),
    ] = None,
    end_sessions: Annotated[
        bool,
        typer.Option("--end-sessions", help="end the open user sessions, after a notice"),
    ] = False,
    from_index: FromIndexOpt = None,
    report_file: ReportOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """The whole upgrade, journaled: verify, back up, migrate, restart; rolls back on failure
    (exit 1). Exit 3 when it finished but left deltas or config items for an operator."""
    policy = SessionPolicy(drain_sessions, end_sessions)
    if from_index is not None:
        catalog = indexed_catalog("upgrade", site, catalog, to, from_index, resume)
    ctx = site_context.open_context(site, catalog, to or (_interrupted(site) if resume else None))
    say_adopting(ctx, json)
    if report_file is None:
        report = upgrading.upgrade(ctx, to, resume, steps(json), rolling, policy)
    else:
        # the report's templates (Jinja2) are loaded only when a report is asked for
        from stairway.report import StepClock
        from stairway.report.documents import reported_upgrade

        clock = StepClock()
        say = steps(json)

        def timed(index: int, total: int | None, step: Step, /) -> None:
            clock(index, total, step)
            say(index, total, step)

        report = reported_upgrade(
            ctx, to, resume, timed, clock, report_file, reported(json), rolling, policy
        )
    if json:
        emit_json(views.upgrade_json(report))
    elif report.upgrade_id is None:
        out.print(f"already at {report.target}: nothing to upgrade")
    else:
        done = f"{report.current} -> {report.target} ({report.upgrade_id})"
        out.print(f"[green]upgraded[/green] {done}", highlight=False)
    if report.sessions is not None and not json:
        out.print(report.sessions.describe(), highlight=False)
    if report.background_said() and not json:
        out.print(plain(report.background_said() or ""), highlight=False, soft_wrap=True)
    if from_index is not None and catalog != ctx.site.site.catalog and not json:
        said = (
            f'the site now runs {report.target}: set `catalog = "{catalog}"` in the [site] '
            "table of site.toml (or install the release), so that later commands read its "
            "catalog"
        )
        out.print(plain(said), highlight=False, soft_wrap=True)
    if report.attention:
        raise left_for_operator(report.target, report.attention)


def _interrupted(site: Path | None) -> str | None:
    """The release an interrupted upgrade was going to: its catalog knows every step taken."""
    return interrupted_target(load_site(site).site)


@app.command("rehearse")
def rehearse_command(
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    scratch_url: Annotated[
        str | None,
        typer.Option("--scratch-url", help="a database to create for the rehearsal"),
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="keep the scratch copy afterwards")] = False,
    from_backup: Annotated[
        str | None,
        typer.Option(
            "--from-backup",
            metavar="ID",
            help="reuse this backup of the live release instead of taking a fresh one",
        ),
    ] = None,
    from_index: FromIndexOpt = None,
    report_file: ReportOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """The whole upgrade on a scratch copy restored from a fresh backup (or, with --from-backup,
    one of the live release and schema level); nothing live moves."""
    # the report's templates (Jinja2) load with the estimate the rehearsal is shown against
    from stairway.report import write_report
    from stairway.report.documents import predicted, rehearsal_document

    if from_index is not None:
        catalog = indexed_catalog("rehearse", site, catalog, to, from_index)
    ctx = site_context.open_context(site, catalog, to)
    plan = operations.plan(ctx, to)
    estimate = predicted(ctx, to)
    found = rehearse(ctx, to, scratch_url, keep, steps(json), from_backup)
    if found.backup_reason and not json:
        out.print(f"backup {found.backup_id} taken: {found.backup_reason}", highlight=False)
    if report_file:
        document = rehearsal_document(ctx, plan, estimate, found)
        reported(json)(write_report(document, report_file))
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
        raise left_in_rehearsal(str(plan.target), left)
    if not json:
        walked = " -> ".join(found.path)
        backup = f"from backup {found.backup_id} (release {found.backup_release})"
        out.print(f"[green]rehearsed[/green] {walked} {backup}: the upgrade works", highlight=False)


@app.command("rollback")
def rollback_command(
    yes: Annotated[
        bool, typer.Option("--yes", help="roll back a finished upgrade without asking")
    ] = False,
    wait: Annotated[
        float,
        typer.Option("--wait", min=0, help="seconds to wait for a background runner asked to stop"),
    ] = background_stop.WAIT,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Back to the backup taken by the interrupted or last upgrade, and start the old release.

    Undoing a finished upgrade first lists what was written since (and is lost) and asks. A
    `stairway background run` holding the site is asked to stop first (the reindex it runs is
    cancelled) and waited for.
    """
    ctx = site_context.open_context(site, catalog, _interrupted(site))
    shown: list[LossReport] = []

    def agreed(report: LossReport) -> bool:
        shown.append(report)
        if json and not yes:
            emit_json({"rolled_back": False, "losses": report.as_json()})
            raise UsageRefused("--json does not ask: nothing was changed", hint=PASS_YES)
        if not json:
            out.print("\n".join(report.describe()), highlight=False, markup=False, soft_wrap=True)
        return yes or confirm("roll back and lose what is listed above?", ROLLBACK_REFUSED)

    version = upgrading.rollback(ctx, agreed, wait)
    warn_of_restore(ctx)
    if json:
        losses = shown[0].as_json() if shown else None
        emit_json({"rolled_back": True, "version": version, "losses": losses})
        return
    out.print(f"[green]rolled back[/green]: the site is at {version} again")
