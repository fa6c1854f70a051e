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


HOP = (StepKind.SCHEMA, StepKind.OBJECTS, StepKind.DELTAS, StepKind.CONFIG_FILES)


@dataclass(frozen=True)
class Step:
    """One step of an upgrade: its kind and, for a hop's step, the releases it moves between."""

    kind: StepKind
    release: str | None = None  # the release a hop step moves to
    source: str | None = None  # the release that hop starts from

    def describe(self) -> str:
        """The step as plans and logs show it: ``schema 1.0.4 -> 2.0.0``, or its kind alone."""
        return f"{self.kind} {self.source} -> {self.release}" if self.release else str(self.kind)

    def as_json(self) -> dict[str, Any]:
        """The step as the journal's plan record holds it."""
        return {"kind": str(self.kind), "release": self.release, "source": self.source}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Step:
        """The step the journal wrote as ``value``."""
        return cls(StepKind(value["kind"]), value.get("release"), value.get("source"))


def plan_steps(plan: UpgradePlan, releases: bool = False, agents: bool = False) -> list[Step]:
    """Every step of ``plan``, in the order the upgrade runs them.

    The product is backed up and stopped first; the transient paths of each release on the path
    that lists some (``clear``) are removed; each hop then moves schema, objects, deltas and
    config files; with ``releases`` the ``current`` link moves to the target; the product is then
    started, checked and audited; with ``agents`` (some were connected to the site's control
    plane) it then waits for them to come back.
    """
    steps = [Step(StepKind.BACKUP), Step(StepKind.MAINTENANCE_ON), Step(StepKind.STOP)]
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
    finish = [
        StepKind.START,
        StepKind.HEALTH,
        StepKind.SMOKE,
        StepKind.MAINTENANCE_OFF,
        *([StepKind.AGENTS] if agents else []),
        StepKind.AUDIT,
    ]
    return [*steps, *(Step(kind) for kind in finish)]


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
}


def changed_site(state: JournalState) -> bool:
    """Whether any step that changes the site began (a begun step may have half-run)."""
    steps = [Step.from_json(s) for s in state.plan["steps"]]
    begun = {r.step for r in state.records if r.event == "begin" and r.step is not None}
    return any(steps[i].kind in CHANGING for i in begun if i < len(steps))
