"""Findings on the post-upgrade tasks of the releases on the path: what each runs, when, and how
long this site last took for it; a command the site cannot run is a warning, not a block (the
product's new release may bring it)."""

from __future__ import annotations

import shutil

from stairway.context import Context
from stairway.estimate.predict import say_duration
from stairway.estimate.rates import read_rates
from stairway.plan import UpgradePlan
from stairway.tasks import Task
from stairway.verify.findings import Finding, FindingSeverity, Topic


def task_findings(ctx: Context, plan: UpgradePlan) -> list[Finding]:
    """One finding per task the upgrade along ``plan`` runs."""
    rates = read_rates(ctx.site.site.backup_dir, ctx.engine.dialect.name)
    measured = rates.tasks if rates else {}
    return [_finding(ctx, task, measured.get(task.name)) for task in plan.tasks]


def _finding(ctx: Context, task: Task, seconds: float | None) -> Finding:
    when = (
        "after the start, while the product serves (a failure is reported, not rolled back)"
        if task.serving
        else "before the start, while the product is stopped (a failure rolls back)"
    )
    took = f"; it took {say_duration(seconds)} here last time" if seconds is not None else ""
    message = f"task {task.name} of release {task.release} runs {task.what()} {when}{took}"
    program = task.argv[0] if task.argv else ""
    home = ctx.site.path.resolve().parent
    if program and shutil.which(program, path=None) is None and not (home / program).exists():
        return Finding(
            Topic.TASKS,
            FindingSeverity.WARNING,
            f"{message}, but {program} is not found on this host's PATH",
            hint=f"install the release that provides {program}, or the task will fail",
        )
    return Finding(Topic.TASKS, FindingSeverity.INFO, message, hint="`stairway plan --estimate`")
