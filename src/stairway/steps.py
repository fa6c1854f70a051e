"""The steps of an upgrade as values: what kind each is and which hop it belongs to, planned
before anything runs and written as the journal's first record. What runs each kind is in
``stairway.runners``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stairway.journal import JournalState
from stairway.plan import UpgradePlan


class StepKind(StrEnum):
    """What an upgrade step does; the journal records each by its value."""

    BACKUP = "backup"
    PLUGIN_SNAPSHOT = "plugin-snapshot"  # the directories of the plug-ins the path moves
    MAINTENANCE_ON = "maintenance-on"
    STOP = "stop"
    INTERRUPT_JOBS = "interrupt-jobs"
    CLEAR = "clear"  # a release's transient paths removed from the data directory
    SCHEMA = "schema"
    OBJECTS = "objects"
    DELTAS = "deltas"
    CONFIG_FILES = "config-files"
    RELEASE = "release"  # the `current` link swapped to the new release
    START = "start"
    HEALTH = "health"
    SMOKE = "smoke-checks"
    MAINTENANCE_OFF = "maintenance-off"
    AGENTS = "agents-back"  # the agents connected before the upgrade are connected again
    AUDIT = "audit"
    EXPAND = "expand"  # rolling: a hop's changes but the target's deferred contract ones
    INSTANCE = "instance"  # rolling: one instance drained, restarted on the new release
    CONTRACT = "contract"  # rolling: the deferred contract changes, once no old one is left
    PLUGIN_OBJECTS = "plugin-objects"  # rolling: objects repointed to moved plug-ins, likewise
    TASK = "task"  # a release's post-upgrade task: a reindex or a product command


HOP = (StepKind.SCHEMA, StepKind.OBJECTS, StepKind.DELTAS, StepKind.CONFIG_FILES)


@dataclass(frozen=True)
class Step:
    """One step of an upgrade: its kind and, for a hop's step, the releases it moves between."""

    kind: StepKind
    release: str | None = None  # the release a hop step moves to
    source: str | None = None  # the release that hop starts from
    task: str | None = None  # a task step: the task's name (of ``release``)

    def describe(self) -> str:
        """The step as plans and logs show it: ``schema 1.0.4 -> 2.0.0``, ``task rebuild
        (2.0.0)``, or its kind alone."""
        if self.task is not None:
            return f"{self.kind} {self.task} ({self.release})"
        return f"{self.kind} {self.source} -> {self.release}" if self.release else str(self.kind)

    def as_json(self) -> dict[str, Any]:
        """The step as the journal's plan record holds it."""
        found = {"kind": str(self.kind), "release": self.release, "source": self.source}
        return found | ({"task": self.task} if self.task is not None else {})

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Step:
        """The step the journal wrote as ``value``."""
        kind, release, source = StepKind(value["kind"]), value.get("release"), value.get("source")
        return cls(kind, release, source, value.get("task"))


def plan_steps(
    plan: UpgradePlan, releases: bool = False, agents: bool = False, plugins: bool = False
) -> list[Step]:
    """Every step of ``plan``, in the order the upgrade runs them.

    The product is backed up and stopped first; the transient paths of each release on the path
    that lists some (``clear``) are removed; each hop then moves schema, objects, deltas and
    config files; with ``releases`` the ``current`` link moves to the target; the product is then
    started, checked and audited. The releases' post-upgrade tasks (``stairway.tasks``) run
    after the last hop: those declared ``serving = false`` before the start, the others once
    the product serves again, after its checks (and, with ``agents``: some were connected to
    the site's control plane, after waiting for them to come back) and before the audit. With
    ``plugins`` (the path moves a plug-in to another version) the plug-ins' directories are
    snapshotted right after the backup.
    """
    steps = [Step(StepKind.BACKUP)]
    steps += [Step(StepKind.PLUGIN_SNAPSHOT)] if plugins else []
    steps += [Step(StepKind.MAINTENANCE_ON), Step(StepKind.STOP)]
    steps.append(Step(StepKind.INTERRUPT_JOBS))
    steps += [
        Step(StepKind.CLEAR, str(hop.release.version), str(hop.source))
        for hop in plan.steps
        if hop.release.clear
    ]
    for hop in plan.steps:
        release, source = str(hop.release.version), str(hop.source)
        steps += [Step(kind, release, source) for kind in HOP]
    if releases:
        steps.append(Step(StepKind.RELEASE, str(plan.target), str(plan.current)))
    steps += task_steps(plan, serving=False)
    finish = [StepKind.START, StepKind.HEALTH, StepKind.SMOKE, StepKind.MAINTENANCE_OFF]
    finish += [StepKind.AGENTS] if agents else []
    steps += [Step(kind) for kind in finish]
    return [*steps, *task_steps(plan, serving=True), Step(StepKind.AUDIT)]


def task_steps(plan: UpgradePlan, serving: bool) -> list[Step]:
    """A step for each task of the path that runs while the product serves, or does not."""
    tasks = [task for task in plan.tasks if task.serving == serving]
    return [Step(StepKind.TASK, task.release, None, task.name) for task in tasks]


def serving_down(kinds: Iterable[StepKind]) -> list[bool]:
    """For each step kind in the order they run, whether the product is not serving during it:
    from the stop through the start. A backup or maintenance mode switched on is not downtime."""
    down, result = False, []
    for kind in kinds:
        down = down or kind == StepKind.STOP
        result.append(down and kind not in (StepKind.BACKUP, StepKind.MAINTENANCE_ON))
        down = down and kind != StepKind.START
    return result


def path_of(steps: Iterable[Step]) -> list[str]:
    """The releases a run of ``steps`` walked through: the first hop's source, then each hop's
    release in turn; empty when no hop began."""
    path: list[str] = []
    for step in steps:
        if step.kind not in (*HOP, StepKind.EXPAND) or step.release is None:
            continue
        if not path and step.source is not None:
            path.append(step.source)
        if not path or path[-1] != step.release:
            path.append(step.release)
    return path


# Steps after which the site no longer is what the backup holds: undoing them means a restore.
CHANGING = {
    StepKind.INTERRUPT_JOBS,
    StepKind.CLEAR,
    StepKind.SCHEMA,
    StepKind.OBJECTS,
    StepKind.DELTAS,
    StepKind.CONFIG_FILES,
    StepKind.RELEASE,
    StepKind.START,
    StepKind.EXPAND,
    StepKind.INSTANCE,
    StepKind.CONTRACT,
    StepKind.PLUGIN_OBJECTS,
    StepKind.TASK,
}


def changed_site(state: JournalState) -> bool:
    """Whether any step that changes the site began (a begun step may have half-run)."""
    steps = [Step.from_json(s) for s in state.plan["steps"]]
    begun = {r.step for r in state.records if r.event == "begin" and r.step is not None}
    return any(steps[i].kind in CHANGING for i in begun if i < len(steps))
