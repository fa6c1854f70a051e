"""The report of each command: verify (the plan and its findings), upgrade and rehearse (what
ran, how long each step took against its prediction, how it ended)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from stairway import operations, timeline
from stairway.context import Context, backup_dir
from stairway.errors import StairwayError
from stairway.estimate import Estimate, Limits, estimate_upgrade
from stairway.journal import Journal
from stairway.notes import release_notes
from stairway.open_sessions import LEAVE, SessionPolicy
from stairway.plan import UpgradePlan
from stairway.progress import Progress
from stairway.rehearse import Rehearsal
from stairway.report.model import Document, Run, StepClock, build_document
from stairway.report.render import write_report
from stairway.steps import Step, StepKind
from stairway.upgrade import UpgradeReport, upgrade
from stairway.verify import Report, verify


def predicted(ctx: Context, to: str | None) -> Estimate | None:
    """The estimate when one can be made (a calibration needs a scratch database)."""
    try:
        return estimate_upgrade(ctx, to, Limits())
    except (StairwayError, SQLAlchemyError, OSError):
        return None
    except Exception as err:  # psycopg refusing CREATE DATABASE: the report goes without
        if type(err).__module__.startswith("psycopg"):
            return None
        raise


def verify_document(ctx: Context, report: Report, estimate: Estimate | None) -> Document:
    """The report of ``verify``: the plan to the report's target, its estimate and findings."""
    plan = operations.plan(ctx, str(report.target))
    return _document("verify", ctx, plan, report, estimate, None, None)


def upgrade_document(
    ctx: Context,
    plan: UpgradePlan,
    estimate: Estimate | None,
    clock: StepClock,
    outcome: UpgradeReport | None,
    failure: str | None,
    findings: Report | None = None,
    recorded: timeline.Timeline | None = None,
) -> Document:
    """The report of an upgrade, finished or failed: its steps' times as its journal recorded
    them when it wrote one, else as ``clock`` took them.

    Args:
        ctx: The site context.
        plan: The plan the upgrade ran.
        estimate: The prediction to set each step's time against, if one was made.
        clock: The timings of the steps the upgrade began.
        outcome: What the upgrade did; None when it raised.
        failure: Why it failed, or None.
        findings: The pre-upgrade findings, if verify ran.
        recorded: The run's times as its journal recorded them, if it wrote one.
    """
    done = outcome.done if outcome else ()
    backup = next((d.get("backup") for s, d in done if s.kind == StepKind.BACKUP), None)
    run = Run.of(recorded, failure) if recorded else Run(clock.durations(), failure)
    return _document("upgrade", ctx, plan, findings, estimate, run, backup)


def reported_upgrade(
    ctx: Context,
    to: str | None,
    resume: bool,
    progress: Progress[Step],
    clock: StepClock,
    where: Path,
    written: Callable[[list[Path]], None],
    rolling: bool = False,
    sessions: SessionPolicy = LEAVE,
) -> UpgradeReport:
    """The upgrade with its report written to ``where`` however it ends; ``written`` is told
    the files before a failure is raised on."""
    plan = operations.plan(ctx, to)
    estimate = predicted(ctx, to)
    findings = verify(ctx, to) if not resume else None  # as the upgrade's own verify sees it
    journal = Journal(backup_dir(ctx))
    before = journal.history_files()  # the run's own journal is the one new there afterwards
    foreign = journal.path.exists() and not resume  # an interrupted upgrade's, refused below
    try:
        report = upgrade(ctx, to, resume, progress, rolling, sessions)
    except StairwayError as failure:
        clock.stop()
        recorded = timeline.of_run(journal, before, foreign)
        failed = upgrade_document(
            ctx, plan, estimate, clock, None, failure.message, findings, recorded
        )
        written(write_report(failed, where))
        raise
    clock.stop()
    recorded = timeline.of_run(journal, before, foreign)
    document = upgrade_document(ctx, plan, estimate, clock, report, None, findings, recorded)
    written(write_report(document, where))
    return report


def rehearsal_document(
    ctx: Context, plan: UpgradePlan, estimate: Estimate | None, rehearsal: Rehearsal
) -> Document:
    """The report of a rehearsal: its timed steps along the scratch copy's own plan (``plan``,
    the live one, only when the rehearsal failed before making one), its findings, the backup
    it restored and the state the scratch copy ended in."""
    recorded = rehearsal.recorded
    run = (
        Run.of(recorded, rehearsal.failure) if recorded else Run(rehearsal.steps, rehearsal.failure)
    )
    end = rehearsal.end
    state = (
        f"the scratch copy ended at {end.release}, schema level {end.state.level}, "
        f"{len(end.pending)} change(s) pending; restored from backup {rehearsal.backup_id}"
        if end
        else None
    )
    note = ("Restored backup", restored_detail(rehearsal))
    return _document(
        "rehearsal",
        ctx,
        rehearsal.plan or plan,
        rehearsal.findings,
        estimate,
        run,
        rehearsal.backup_id,
        state,
        note,
    )


def restored_detail(rehearsal: Rehearsal) -> str:
    """After the restored backup's id: the release it holds, and why it was taken if it was."""
    held = f"release {rehearsal.backup_release}, schema level {rehearsal.backup_level}"
    reason = rehearsal.backup_reason
    return f" ({held})" + (f"; taken for this rehearsal: {reason}" if reason else "")


def _document(
    kind: str,
    ctx: Context,
    plan: UpgradePlan,
    findings: Report | None,
    estimate: Estimate | None,
    run: Run | None,
    backup: str | None,
    end_state: str | None = None,
    backup_said: tuple[str, str] = ("Backup taken:", ""),
) -> Document:
    notes = release_notes(ctx.catalog, plan.current, plan.target)
    releases = ctx.site.site.releases_dir is not None
    return build_document(
        kind,
        ctx.catalog.product,
        plan,
        findings,
        estimate,
        run,
        backup,
        notes,
        releases,
        end_state,
        backup_said,
    )
