"""Findings on plug-ins: the objects each plug-in the upgrade moves to another version will
move with it (``3 connector objects move ldap 1.2.0 -> 1.3.0``), and the plug-in directories
on agent hosts, which no snapshot covers."""

from __future__ import annotations

from stairway.context import Context
from stairway.operations import plugins
from stairway.operations.plugins import HopMove
from stairway.plan import UpgradePlan
from stairway.serving import agents_by_version
from stairway.verify.findings import Finding, FindingSeverity, Topic


def plugin_move_findings(ctx: Context, plan: UpgradePlan) -> list[Finding]:
    """One finding per plug-in move on the path, with the objects it moves; its directory is
    snapshotted first. A warning when agents are enrolled: their hosts' copies are not."""
    moves = plugins.plan_moves(ctx, plan)
    said = [
        Finding(
            Topic.PLUGINS,
            FindingSeverity.INFO,
            f"{move.describe()} (the plug-in's directory is snapshotted first)",
        )
        for move in moves
    ]
    return said + _on_agent_hosts(ctx, moves)


def _on_agent_hosts(ctx: Context, moves: list[HopMove]) -> list[Finding]:
    """The agents carry no file work but their own builds: a plug-in directory on an agent's
    host is neither snapshotted by the upgrade nor put back by ``plugin rollback``."""
    if not moves:
        return []
    enrolled = sum(n for _, n, _ in agents_by_version(ctx) or [])
    if not enrolled:
        return []
    names = ", ".join(sorted({m.move.plugin for m in moves}))
    return [
        Finding(
            Topic.PLUGINS,
            FindingSeverity.WARNING,
            f"plug-in directories on agent hosts are not snapshotted: {enrolled} agents are "
            f"enrolled and the upgrade moves {names}; only the site's own data_dir is covered, "
            "and `stairway plugin rollback` puts back only that copy",
            hint="back up the plug-in directories on the agent hosts yourself before upgrading "
            "(docs/plugins.md)",
        )
    ]
