"""Findings on the transient paths the releases on the path clear from the data directory:
what the upgrade will remove (the backup holds it), and what stops it from removing safely."""

from __future__ import annotations

from stairway import clearing
from stairway.context import Context
from stairway.plan import UpgradePlan
from stairway.verify.findings import Finding, FindingSeverity, Topic


def clear_findings(ctx: Context, plan: UpgradePlan) -> list[Finding]:
    """One finding per release on ``plan`` that lists paths to clear."""
    return [
        _finding(ctx, str(s.release.version), s.release.clear)
        for s in plan.steps
        if s.release.clear
    ]


def _finding(ctx: Context, release: str, paths: tuple[str, ...]) -> Finding:
    data_dir = ctx.site.site.data_dir
    if data_dir is None:
        return Finding(
            Topic.DATA,
            FindingSeverity.CRITICAL,
            f"release {release} clears {', '.join(paths)} from the data directory, but site.toml "
            "names no data_dir",
            blocking=True,
            hint="set data_dir in the [site] table: the backup must hold what is cleared",
        )
    escaping = [r for p in paths if (r := clearing.outside(data_dir, p)) is not None]
    if escaping:
        return Finding(
            Topic.DATA,
            FindingSeverity.CRITICAL,
            f"release {release} clears paths that lead out of the data directory: "
            + "; ".join(escaping),
            blocking=True,
            hint="replace those symbolic links with directories of the data directory's own",
        )
    found = clearing.present(data_dir, paths)
    there = f" ({len(found)} there now: {', '.join(found)})" if found else " (none there now)"
    return Finding(
        Topic.DATA,
        FindingSeverity.INFO,
        f"the upgrade to {release} removes {', '.join(paths)} from {data_dir} after the backup, "
        f"which holds them{there}",
    )
