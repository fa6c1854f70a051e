"""The steps of an upgrade as values: what kind each is and which hop it belongs to, planned
before anything runs and written as the journal's first record. What runs each kind is in
``stairway.runners``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stairway.journal import JournalState
from stairway.plan import UpgradePlan


class Kind(StrEnum):
    BACKUP = "backup"
    MAINTENANCE_ON = "maintenance-on"
    STOP = "stop"
    INTERRUPT_JOBS = "interrupt-jobs"
    SCHEMA = "schema"
    OBJECTS = "objects"
    DELTAS = "deltas"
    CONFIG_FILES = "config-files"
    RELEASE = "release"  # the `current` link swapped to the new release
    START = "start"
    HEALTH = "health"
    SMOKE = "smoke-checks"
    MAINTENANCE_OFF = "maintenance-off"
    AUDIT = "audit"
    EXPAND = "expand"  # rolling: a hop's changes but the target's deferred contract ones
    INSTANCE = "instance"  # rolling: one instance drained, restarted on the new release
    CONTRACT = "contract"  # rolling: the deferred contract changes, once no old one is left


HOP = (Kind.SCHEMA, Kind.OBJECTS, Kind.DELTAS, Kind.CONFIG_FILES)


@dataclass(frozen=True)
class Step:
    kind: Kind
    release: str | None = None  # the release a hop step moves to
    source: str | None = None  # the release that hop starts from

    def describe(self) -> str:
        return f"{self.kind} {self.source} -> {self.release}" if self.release else str(self.kind)

    def as_json(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "release": self.release, "source": self.source}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Step:
        return cls(Kind(value["kind"]), value.get("release"), value.get("source"))


def plan_steps(plan: UpgradePlan, releases: bool = False) -> list[Step]:
    steps = [Step(Kind.BACKUP), Step(Kind.MAINTENANCE_ON), Step(Kind.STOP)]
    steps.append(Step(Kind.INTERRUPT_JOBS))
    for hop in plan.steps:
        release, source = str(hop.release.version), str(hop.source)
        steps += [Step(kind, release, source) for kind in HOP]
    if releases:
        steps.append(Step(Kind.RELEASE, str(plan.target), str(plan.current)))
    finish = [Kind.START, Kind.HEALTH, Kind.SMOKE, Kind.MAINTENANCE_OFF, Kind.AUDIT]
    return [*steps, *(Step(kind) for kind in finish)]


# Steps after which the site no longer is what the backup holds: undoing them means a restore.
CHANGING = {
    Kind.INTERRUPT_JOBS,
    Kind.SCHEMA,
    Kind.OBJECTS,
    Kind.DELTAS,
    Kind.CONFIG_FILES,
    Kind.RELEASE,
    Kind.START,
    Kind.EXPAND,
    Kind.INSTANCE,
    Kind.CONTRACT,
}


def changed_site(state: JournalState) -> bool:
    """Whether any step that changes the site began (a begun step may have half-run)."""
    steps = [Step.from_json(s) for s in state.plan["steps"]]
    begun = {r.step for r in state.records if r.event == "begin" and r.step is not None}
    return any(steps[i].kind in CHANGING for i in begun if i < len(steps))
