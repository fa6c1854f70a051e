"""Findings on plug-ins: the objects each plug-in the upgrade moves to another version will
move with it (``3 connector objects move ldap 1.2.0 -> 1.3.0``), and where the copies on
agent hosts are snapshotted."""

from __future__ import annotations

from stairway.context import Context
from stairway.operations import plugins
from stairway.operations.plugins import HopMove
from stairway.plan import UpgradePlan
from stairway.serving import agents_by_version
from stairway.verify.findings import Finding, FindingSeverity, Topic


def plugin_move_findings(ctx: Context, plan: UpgradePlan) -> list[Finding]:
    """One finding per plug-in move on the path, with the objects it moves; its directory is
    snapshotted first. When agents are enrolled, a note that their hosts' copies are
    snapshotted by each agent before it takes the new build."""
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
    """Each agent snapshots the moved plug-ins' directories it holds before it takes the new
    build (and refuses the build when it cannot): said, so that an operator whose agents hold
    plug-ins checks they were enrolled with ``--data-dir``."""
    if not moves:
        return []
    enrolled = sum(n for _, n, _ in agents_by_version(ctx) or [])
    if not enrolled:
        return []
    names = ", ".join(sorted({m.move.plugin for m in moves}))
    return [
        Finding(
            Topic.PLUGINS,
            FindingSeverity.INFO,
            f"on agent hosts: {enrolled} agents are enrolled and the upgrade moves {names}; "
            "each agent enrolled with --data-dir snapshots the directories it holds before it "
            "takes the new build, and refuses the build when it cannot",
        )
    ]
