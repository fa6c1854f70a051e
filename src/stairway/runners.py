"""What runs each kind of upgrade step (``stairway.steps`` holds the values), in one table.

A runner does its step's work and returns what the journal records of it; a kill between any
two of its side effects leaves the site for ``upgrade --resume`` or ``rollback``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from sqlalchemy import text

from stairway import (
    agents_back,
    audit,
    clearing,
    faults,
    handwork,
    maintenance,
    recovery,
    releases,
    rolling,
    service,
    smoke,
    task_runs,
)
from stairway.backup import Backup
from stairway.context import Context, backup_dir
from stairway.errors import TaskFailed, UpgradeError
from stairway.handwork import HandItem
from stairway.journal import Journal, JournalState
from stairway.objects.rewrite import rewrite_all
from stairway.operations import plugins as site_plugins
from stairway.operations import schema as site_schema
from stairway.operations import tasks as run_tasks
from stairway.operations.backups import backup as take_backup
from stairway.operations.config import migrate_config
from stairway.operations.objects import apply_deltas, object_store
from stairway.operations.schema import MigrateRequest
from stairway.operations.tasks import find_task
from stairway.steps import Step, StepKind, path_of
from stairway.tasks import Task, TaskProgress
from stairway.verify import licence_findings

log = logging.getLogger(__name__)
Runner = Callable[[Context, Step, JournalState], dict[str, Any]]


def timed_backup(ctx: Context) -> tuple[Backup, float]:
    """Take a backup of the site; returns it and the seconds it took."""
    started = time.monotonic()
    return take_backup(ctx), time.monotonic() - started


def _backup(ctx: Context, _step: Step, _state: JournalState) -> dict[str, Any]:
    """A backup taken now: a resumed run, whose early backup went with the killed process."""
    return _backed_up(timed_backup(ctx))


def _early(taken: Future[tuple[Backup, float]]) -> Runner:
    """The backup step of a run that started its backup while verify read (both only read:
    overlapping them saves the backup's time)."""
    return lambda _ctx, _step, _state: _backed_up(taken.result())


def _backed_up(done: tuple[Backup, float]) -> dict[str, Any]:
    taken, took = done
    faults.point("after:backup")
    return {"backup": taken.id, "bytes": taken.manifest.size, "took": round(took, 3)}


def _maintenance_on(ctx: Context, _step: Step, state: JournalState) -> dict[str, Any]:
    before, after = faults.around("maintenance-on")
    faults.point(before)
    maintenance.switch_on(ctx.engine, f"upgrade to {state.plan['to']}")
    faults.point(after)
    return {}


def _maintenance_off(ctx: Context, _step: Step, _state: JournalState) -> dict[str, Any]:
    before, after = faults.around("maintenance-off")
    faults.point(before)
    maintenance.switch_off(ctx.engine)
    faults.point(after)
    return {}


def _stop(ctx: Context, _step: Step, _state: JournalState) -> dict[str, Any]:
    """Stopped and shown down: the steps after this one change what the product reads."""
    return {"ran": recovery.stop(ctx)}


def _release(ctx: Context, step: Step, state: JournalState) -> dict[str, Any]:
    """``current`` swapped to the new release, its intent (with what it named) journaled first
    so that a kill right after the swap still knows what to point back at."""
    where = ctx.site.site.releases_dir
    assert where is not None and step.release is not None  # planned only with releases_dir
    made = recovery.swaps(state)
    previous = made[0].previous if made else releases.current_release(where)
    if not made:
        Journal(backup_dir(ctx)).record(
            "intent", action=recovery.SWAP, previous=previous, to=step.release
        )
    before, after = faults.around(recovery.SWAP)
    faults.point(before)
    releases.switch_current(where, step.release)
    faults.point(after)
    return {"swapped": True, "previous": previous}


def _start(ctx: Context, _step: Step, _state: JournalState) -> dict[str, Any]:
    """Whatever answers now is not the new release started by this step: down with it first."""
    recovery.stop(ctx)
    return {"ran": service.start(ctx.site.service, recovery.home(ctx))}


def _health(ctx: Context, _step: Step, state: JournalState) -> dict[str, Any]:
    expected = recovery.expected(ctx, str(state.plan["to"]))
    return {"checked": service.wait_healthy(ctx.site.service, expected, recovery.home(ctx))}


def _smoke(ctx: Context, _step: Step, state: JournalState) -> dict[str, Any]:
    checks = ctx.catalog.manifest.smoke if ctx.catalog.manifest else []
    for check in checks:
        smoke.run_check(ctx.engine, check)
    target = ctx.catalog.version(state.plan["to"])
    for finding in licence_findings(ctx, target):  # the licence as the new release reads it
        if finding.blocking:
            raise UpgradeError(f"smoke check licence: {finding.message}", hint=finding.hint)
    return {"passed": [c.name for c in checks]}


def _agents_back(ctx: Context, _step: Step, state: JournalState) -> dict[str, Any]:
    return agents_back.run(ctx, state.plan.get("agents", []))


def _audit(ctx: Context, _step: Step, state: JournalState) -> dict[str, Any]:
    data = {
        "upgrade": state.upgrade_id,
        "from": state.plan["from"],
        "to": state.plan["to"],
        "backup": (Journal(backup_dir(ctx)).active() or state).value("backup"),
    }
    with ctx.engine.begin() as conn:
        entry = audit.append(conn, "site.upgrade", data)
    faults.point("after:audit")
    return {"audit": entry.id}


def _interrupt_jobs(ctx: Context, _step: Step, _state: JournalState) -> dict[str, Any]:
    jobs = ctx.catalog.manifest.job if ctx.catalog.manifest else []
    marked = 0
    with ctx.engine.begin() as conn:
        for job in jobs:
            if job.interrupt:
                marked += conn.execute(text(job.interrupt)).rowcount or 0
    return {"interrupted": marked}


def _clear(ctx: Context, step: Step, state: JournalState) -> dict[str, Any]:
    """The release's transient paths removed, only once a backup that holds them is recorded:
    a rollback restores them from it."""
    paths = ctx.catalog.release(step.release or "").clear
    data_dir = ctx.site.site.data_dir
    if data_dir is None or state.value("backup") is None:
        raise UpgradeError(
            f"release {step.release} clears {', '.join(paths)} from the data directory, but "
            "there is no data_dir in site.toml or no backup recorded to restore them from",
            hint="set data_dir in the [site] table (`stairway verify` checks it)",
        )
    return {"cleared": clearing.clear(data_dir, paths)}


def _schema(ctx: Context, step: Step, _state: JournalState) -> dict[str, Any]:
    done = site_schema.migrate(ctx, MigrateRequest(to=step.release))
    return {
        "changes": [a.change.label for a in done],
        "ms": {a.change.label: a.duration_ms for a in done},
    }


def _plugin_snapshot(ctx: Context, _step: Step, state: JournalState) -> dict[str, Any]:
    """The directories of the plug-ins the path moves, kept for ``stairway plugin rollback``."""
    path = path_of(Step.from_json(s) for s in state.plan["steps"])
    return {"plugin_snapshots": site_plugins.snapshot_before(ctx, path)}


def _objects(ctx: Context, step: Step, _state: JournalState) -> dict[str, Any]:
    """Objects rewritten to the release's shape, then those naming a plug-in the hop moves
    repointed to its new version (a failure restores them with the rest of the site)."""
    if ctx.catalog.objects is None:
        return {}
    report = rewrite_all(object_store(ctx, step.release))
    assert step.release is not None and step.source is not None  # a hop's step
    moved = site_plugins.move_for_upgrade(ctx, step.release, step.source)
    return {"rewritten": report.rewritten} | ({"plugins": moved} if moved else {})


def _deltas(ctx: Context, _step: Step, _state: JournalState) -> dict[str, Any]:
    if not ctx.catalog.deltas:
        return {}
    report = apply_deltas(ctx)
    hand = [handwork.delta_item(r.delta.id, r.reason) for r in report.reported]
    return {"reported": [r.delta.id for r in report.reported], "hand": _json(hand)}


def _config_files(ctx: Context, step: Step, _state: JournalState) -> dict[str, Any]:
    result = migrate_config(ctx, step.release, step.source)
    return {
        "changed": [str(o.path) for o in result.run.changed],
        "attention": [a.describe() for a in result.run.attention],
        "hand": _json(
            handwork.config_item(str(o.path), a.describe())
            for o in result.run.outcomes
            for a in o.attention
        ),
    }


def _task(ctx: Context, step: Step, state: JournalState) -> dict[str, Any]:
    """A release's post-upgrade task. One the product may serve during is handed to the
    background (``stairway.task_runs``): ``stairway background run`` runs it once the upgrade
    has returned. One that needs the product stopped runs here, and its failure rolls back."""
    task = find_task(ctx.catalog, step.task or "", step.release)
    if task.serving:
        task_runs.queue(ctx.engine, task)
        log.info("task %s handed to the background: %s", task.name, task.what())
        return {"task": task.name, "kind": str(task.kind), "background": True}
    return _run_once(ctx, task, state)


def _run_once(ctx: Context, task: Task, state: JournalState) -> dict[str, Any]:
    """A reindex, or a command declared idempotent, runs again on a resume; any other command
    has its start and its end journaled, and is never run twice: one that ended is not run
    again, one a crash cut short (its end unrecorded) is a failure for an operator to judge."""
    if task.rerunnable:
        return run_tasks.run_task(ctx, task, _logged)
    said = {r.data.get("action") for r in state.records if _about(r.data, task)}
    if "ran" in said:
        return {"task": task.name, "kind": str(task.kind), "ran_before": True}
    if "begun" in said:
        raise TaskFailed(
            f"task {task.name} of release {task.release}: {task.what()} was started by the "
            "interrupted run and its end was not recorded; it is not declared idempotent, so "
            "it is not run again",
            hint=f"check what it did, then `{task.rerun_command()}` if it must run again",
            task=task.name,
            release=task.release,
        )
    journal = Journal(backup_dir(ctx))
    journal.record("task", action="begun", task=task.name, release=task.release)
    data = run_tasks.run_task(ctx, task, _logged)
    journal.record("task", action="ran", task=task.name, release=task.release)
    return data


def _logged(_done: int, _total: int | None, found: TaskProgress, /) -> None:
    log.info("task %s", found.describe())  # an upgrade's own output is one line a step


def _about(data: dict[str, Any], task: Task) -> bool:
    return data.get("task") == task.name and data.get("release") == task.release


def _json(items: Iterable[HandItem]) -> list[dict[str, str]]:
    return [item.as_json() for item in items]


# In the order an upgrade runs them; a rolling upgrade's own kinds where they fall in its run.
RUNNERS: dict[StepKind, Runner] = {
    StepKind.BACKUP: _backup,
    StepKind.PLUGIN_SNAPSHOT: _plugin_snapshot,
    StepKind.MAINTENANCE_ON: _maintenance_on,
    StepKind.STOP: _stop,
    StepKind.INTERRUPT_JOBS: _interrupt_jobs,
    StepKind.CLEAR: _clear,
    StepKind.EXPAND: rolling.expand,
    StepKind.SCHEMA: _schema,
    StepKind.OBJECTS: _objects,
    StepKind.DELTAS: _deltas,
    StepKind.CONFIG_FILES: _config_files,
    StepKind.RELEASE: _release,
    StepKind.INSTANCE: rolling.instance,
    StepKind.START: _start,
    StepKind.HEALTH: _health,
    StepKind.SMOKE: _smoke,
    StepKind.PLUGIN_OBJECTS: rolling.plugin_objects,
    StepKind.CONTRACT: rolling.contract,
    StepKind.MAINTENANCE_OFF: _maintenance_off,
    StepKind.TASK: _task,
    StepKind.AGENTS: _agents_back,
    StepKind.AUDIT: _audit,
}


def with_early_backup(taken: Future[tuple[Backup, float]]) -> dict[StepKind, Runner]:
    """The table for a run whose backup was started early."""
    return {**RUNNERS, StepKind.BACKUP: _early(taken)}
