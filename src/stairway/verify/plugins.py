"""Findings on plug-ins: the objects each plug-in the upgrade moves to another version will
move with it (``3 connector objects move ldap 1.2.0 -> 1.3.0``)."""

from __future__ import annotations

import itertools

from stairway.context import Context
from stairway.operations import plugins
from stairway.plan import UpgradePlan
from stairway.verify.findings import Finding, FindingSeverity, Topic


def plugin_move_findings(ctx: Context, plan: UpgradePlan) -> list[Finding]:
    """One finding per plug-in move on the path, with the objects it moves; its directory is
    snapshotted first."""
    said = []
    for source, target in itertools.pairwise(plugins.release_path(plan)):
        for line in plugins.counted_moves(ctx, source, target):
            said.append(
                Finding(
                    Topic.PLUGINS,
                    FindingSeverity.INFO,
                    f"{line} (the plug-in's directory is snapshotted first)",
                )
            )
    return said
