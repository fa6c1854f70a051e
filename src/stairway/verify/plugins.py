"""Findings on plug-ins: the objects each plug-in the upgrade moves to another version will
move with it (``3 connector objects move ldap 1.2.0 -> 1.3.0``)."""

from __future__ import annotations

from stairway.context import Context
from stairway.operations import plugins
from stairway.plan import UpgradePlan
from stairway.verify.findings import Finding, FindingSeverity, Topic


def plugin_move_findings(ctx: Context, plan: UpgradePlan) -> list[Finding]:
    """One finding per plug-in move on the path, with the objects it moves; its directory is
    snapshotted first."""
    return [
        Finding(
            Topic.PLUGINS,
            FindingSeverity.INFO,
            f"{move.describe()} (the plug-in's directory is snapshotted first)",
        )
        for move in plugins.plan_moves(ctx, plan)
    ]
