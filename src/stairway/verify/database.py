"""Findings on the database and the plan: a database this catalog cannot know, drifted changes,
the path of releases, pending schema changes, and unfinished background migrations and tasks."""

from __future__ import annotations

from stairway import task_runs
from stairway.context import Context
from stairway.errors import SchemaError
from stairway.plan import UpgradePlan
from stairway.schema import background, migrator
from stairway.schema.state import SchemaState
from stairway.task_runs import RunState, TaskRun
from stairway.verify.findings import Finding, FindingSeverity, Topic
from stairway.versions import Version


def database_findings(ctx: Context, state: SchemaState, current: Version) -> list[Finding]:
    """A database newer than the catalog, and every applied change whose file drifted."""
    found = []
    if state.unknown or current > ctx.catalog.latest.version:
        found.append(
            Finding(
                Topic.DATABASE,
                FindingSeverity.CRITICAL,
                f"the database is newer than this catalog (site {current}, schema level "
                f"{state.level}; the catalog ends at {ctx.catalog.latest.version})",
                blocking=True,
                hint="use the catalog of the release the site runs or a newer one",
            )
        )
    found += [
        Finding(
            Topic.SCHEMA,
            FindingSeverity.CRITICAL,
            d.describe(),
            blocking=True,
            hint="restore the file as applied, or `stairway repair` after checking the database",
        )
        for d in state.drifted
    ]
    return found


def adoption_findings(ctx: Context, state: SchemaState) -> list[Finding]:
    """What an adopted tool's table says, checked against the tables (read-only: the changes it
    names are replayed in a scratch database)."""
    if not state.recognised:
        return []
    try:
        migrator.refuse_unlike_recognised(ctx.engine, ctx.catalog, state)
    except SchemaError as unlike:
        return [
            Finding(
                Topic.DATABASE, FindingSeverity.CRITICAL, unlike.message, True, hint=unlike.hint
            )
        ]
    return [Finding(Topic.DATABASE, FindingSeverity.INFO, f"adopting: {state.recognised}")]


def path_findings(plan: UpgradePlan) -> list[Finding]:
    """The releases the upgrade passes through."""
    if not plan.steps:
        return [
            Finding(
                Topic.PATH, FindingSeverity.INFO, f"already at {plan.target}: nothing to upgrade"
            )
        ]
    stops = [str(s.release.version) for s in plan.steps[:-1]]
    via = f" through the required stop(s) {', '.join(stops)}" if stops else ""
    return [Finding(Topic.PATH, FindingSeverity.INFO, f"{plan.describe()}{via}")]


def schema_findings(plan: UpgradePlan, state: SchemaState) -> list[Finding]:
    """The schema changes still to apply, and whether they can run without downtime, as
    ``plan`` says it (``UpgradePlan.rolling_safety``)."""
    done = {a.key for a in state.applied}
    pending = [c for c in plan.changes if c.key not in done]
    if not pending:
        return []
    said = f"{len(pending)} pending change(s): " + ", ".join(c.describe() for c in pending)
    return [
        Finding(Topic.SCHEMA, FindingSeverity.INFO, said, count=len(pending)),
        rolling_finding(plan),
    ]


def rolling_finding(plan: UpgradePlan) -> Finding:
    """Whether the path is rolling-safe, in ``plan``'s words: a warning naming the changes that
    need the product stopped, else a note."""
    safety = plan.rolling_safety()
    said = f"rolling-safe: {safety.describe()}"
    if not safety.blocking:
        return Finding(Topic.SCHEMA, FindingSeverity.INFO, said)
    return Finding(
        Topic.SCHEMA,
        FindingSeverity.WARNING,
        said,
        count=len(safety.blocking),
        hint="plan a maintenance window: the upgrade stops the product for these changes",
    )


def background_findings(ctx: Context) -> list[Finding]:
    """GitLab's rule: a background migration queued by an earlier upgrade must be finished
    before the next one starts, since the releases after it count on its data."""
    return [
        Finding(
            Topic.BACKGROUND,
            FindingSeverity.CRITICAL,
            f"background migration {job.describe()}",
            blocking=True,
            hint="let it finish (`stairway background run`, `stairway background status`), "
            "then upgrade",
        )
        for job in background.unfinished(ctx.engine)
    ] + [_unfinished_task(run) for run in task_runs.unfinished(ctx.engine)]


def _unfinished_task(run: TaskRun) -> Finding:
    """A post-upgrade task an earlier upgrade handed to the background and that has not run to
    its end: the release it belongs to counts on it, as on a background migration."""
    if run.state is RunState.FAILED:
        hint = f"fix the cause, then `{run.retry}`; then upgrade"
    else:
        hint = f"let it finish (`{task_runs.WORKER}`, `stairway status`), then upgrade"
    return Finding(
        Topic.BACKGROUND,
        FindingSeverity.CRITICAL,
        f"background {run.describe()}",
        blocking=True,
        hint=hint,
    )
