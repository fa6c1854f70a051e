"""``verify --to V``: read-only checks on the old version, before anything is touched, so that
what would stop an upgrade halfway is found while the site still runs the release it trusts.

Each check returns findings; nothing here writes. A finding that blocks makes the command exit 2
so that the upgrade never starts on a site that needs a hand first. One module per family of
checks: the database and the plan, stored objects, declared conditions and running jobs, config
files and deltas, paths cleared from the data directory, disk space, the licence, newer
releases.
"""

from __future__ import annotations

from stairway.context import Context, current_version
from stairway.plan import make_plan
from stairway.schema import migrator
from stairway.targets import target_version
from stairway.verify.cleared import clear_findings
from stairway.verify.conditions import check_findings, job_findings
from stairway.verify.config import config_findings, delta_findings
from stairway.verify.database import (
    adoption_findings,
    background_findings,
    database_findings,
    path_findings,
    schema_findings,
)
from stairway.verify.findings import Finding, FindingSeverity, Report, Topic, group
from stairway.verify.licensing import licence_findings
from stairway.verify.objects import object_findings
from stairway.verify.plugins import plugin_move_findings
from stairway.verify.releases import release_findings
from stairway.verify.sessions import session_findings
from stairway.verify.space import disk_findings
from stairway.verify.tasks import task_findings

__all__ = [
    "Finding",
    "FindingSeverity",
    "Report",
    "Topic",
    "group",
    "licence_findings",
    "verify",
]


def verify(ctx: Context, to: str | None) -> Report:
    """Every finding for an upgrade of the site to ``to`` (default: the latest release)."""
    current = current_version(ctx)
    target = target_version(ctx.catalog, to)
    state = migrator.read_state(ctx.engine, ctx.catalog)
    findings = adoption_findings(ctx, state) + database_findings(ctx, state, current)
    if not any(f.blocking for f in findings):  # else the plan would be meaningless
        plan = make_plan(ctx.catalog, current, state.level, target, state.patches)
        findings += path_findings(plan) + schema_findings(plan, state) + clear_findings(ctx, plan)
        findings += object_findings(ctx, plan) + plugin_move_findings(ctx, plan)
        findings += check_findings(ctx, current, target)
        findings += job_findings(ctx) + config_findings(ctx, current, target)
        findings += delta_findings(ctx, target) + disk_findings(ctx)
        findings += licence_findings(ctx, target) + background_findings(ctx)
        findings += task_findings(ctx, plan)
        findings += session_findings(ctx)
    findings += release_findings(ctx, current, target)
    return Report(current, target, tuple(findings))
