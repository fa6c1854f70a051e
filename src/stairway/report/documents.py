"""The report of each command: verify (the plan and its findings), upgrade and rehearse (what
ran, how long each step took against its prediction, how it ended)."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from stairway import operations
from stairway.context import Context
from stairway.errors import StairwayError
from stairway.estimate import Estimate, Limits, estimate_upgrade
from stairway.notes import release_notes
from stairway.plan import UpgradePlan
from stairway.rehearse import Rehearsal
from stairway.report.model import Document, Run, StepClock, build_document
from stairway.steps import StepKind
from stairway.upgrade import UpgradeReport
from stairway.verify import Report


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
) -> Document:
    done = outcome.done if outcome else ()
    backup = next((d.get("backup") for s, d in done if s.kind == StepKind.BACKUP), None)
    run = Run(clock.durations(), failure)
    return _document("upgrade", ctx, plan, findings, estimate, run, backup)


def rehearsal_document(
    ctx: Context, plan: UpgradePlan, estimate: Estimate | None, rehearsal: Rehearsal
) -> Document:
    run = Run(rehearsal.steps, rehearsal.failure)
    end = rehearsal.end
    state = (
        f"the scratch copy ended at {end.release}, schema level {end.state.level}, "
        f"{len(end.pending)} change(s) pending; restored from backup {rehearsal.backup_id}"
        if end
        else None
    )
    return _document(
        "rehearsal", ctx, plan, rehearsal.findings, estimate, run, rehearsal.backup_id, state
    )


def _document(
    kind: str,
    ctx: Context,
    plan: UpgradePlan,
    findings: Report | None,
    estimate: Estimate | None,
    run: Run | None,
    backup: str | None,
    end_state: str | None = None,
) -> Document:
    notes = release_notes(ctx.catalog, plan.current, plan.target)
    releases = ctx.site.site.releases_dir is not None
    return build_document(
        kind, ctx.catalog.product, plan, findings, estimate, run, backup, notes, releases, end_state
    )
