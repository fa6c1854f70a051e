"""Findings on what the upgrade does outside the database: the operator's config files it will
rewrite or leave to a hand, and the deltas it would report rather than apply."""

from __future__ import annotations

from stairway.configfiles import ConfigRun, plan_config_files
from stairway.context import Context
from stairway.errors import ConfigFileError
from stairway.handwork import HandItem, config_item, delta_item
from stairway.objects import delta_run
from stairway.operations import lifecycle_path, object_store
from stairway.verify.findings import Finding, FindingSeverity, Topic
from stairway.versions import Version


def config_findings(ctx: Context, current: Version, target: Version) -> list[Finding]:
    """Each config file the upgrade changes automatically, and each item it leaves to a hand."""
    files = ctx.site.site.config_files
    try:
        run = plan_config_files(files, ctx.catalog.config_migrations, current, target)
    except ConfigFileError as err:
        return [
            Finding(
                Topic.CONFIG, FindingSeverity.CRITICAL, err.message, blocking=True, hint=err.hint
            )
        ]
    items = [config_item(str(o.path), a.describe()) for o in run.outcomes for a in o.attention]
    return _config_changes(run) + [_by_hand(Topic.CONFIG, item) for item in items]


def delta_findings(ctx: Context, target: Version) -> list[Finding]:
    """The deltas up to ``target`` that, judged on the objects as they are now, would be
    reported rather than applied (read-only: a dry run)."""
    due = [d for d in ctx.catalog.deltas if d.release <= target]
    if not due:
        return []
    store = object_store(ctx, str(target))
    judged = delta_run.apply_deltas(store, due, lifecycle_path(ctx), dry_run=True)
    return [_by_hand(Topic.DELTAS, delta_item(r.delta.id, r.reason)) for r in judged.reported]


def _by_hand(topic: Topic, item: HandItem) -> Finding:
    said = f"{item.what} will need an operator: {item.reason}"
    return Finding(topic, FindingSeverity.WARNING, said, hint=item.command, needs_hand=True)


def _config_changes(run: ConfigRun) -> list[Finding]:
    return [
        Finding(
            Topic.CONFIG,
            FindingSeverity.INFO,
            f"{outcome.path}: {len(outcome.applied)} change(s) will be made automatically, "
            f"the original kept beside it",
            count=len(outcome.applied),
            hint=f"see the diff with `stairway config migrate --to {run.target} --dry-run`",
        )
        for outcome in run.changed
    ]
