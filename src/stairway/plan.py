"""The upgrade plan as a value: the path through required stops and the changes of each step."""

from __future__ import annotations

from dataclasses import dataclass

from stairway.catalog import Catalog
from stairway.schema.change import Change, Phase
from stairway.versions import Release, Version, upgrade_path


@dataclass(frozen=True)
class PlanStep:
    source: Version
    release: Release
    changes: tuple[Change, ...]

    @property
    def online(self) -> bool:
        return all(c.phase.online for c in self.changes)

    def describe(self) -> str:
        phases = ", ".join(c.describe() for c in self.changes) or "no schema changes"
        return f"{self.source} -> {self.release.version}: {phases}"


@dataclass(frozen=True)
class UpgradePlan:
    current: Version
    target: Version
    level: int
    steps: tuple[PlanStep, ...]

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(c for step in self.steps for c in step.changes)

    @property
    def deferred_contract(self) -> tuple[Change, ...]:
        """The target's contract changes, which a rolling upgrade runs after the last instance
        of an older release is gone (GitLab's post-deployment migrations). Only a release
        marked ``rolling`` defers them."""
        if not self.steps or not self.steps[-1].release.rolling:
            return ()
        return tuple(c for c in self.steps[-1].changes if c.phase == Phase.CONTRACT)

    @property
    def blocking_rolling(self) -> tuple[Change, ...]:
        """Changes that stop the path from being done without downtime."""
        deferred = self.deferred_contract
        return tuple(c for c in self.changes if not c.phase.online and c not in deferred)

    @property
    def rolling_safe(self) -> bool:
        return bool(self.steps) and not self.blocking_rolling and self.steps[-1].release.rolling

    def describe(self) -> str:
        path = " -> ".join([str(self.current), *(str(s.release.version) for s in self.steps)])
        return f"{path} ({'rolling-safe' if self.rolling_safe else 'needs downtime'})"


def make_plan(catalog: Catalog, current: Version, level: int, target: Version) -> UpgradePlan:
    """``level`` is the database's schema level: changes at or below it are already applied."""
    steps: list[PlanStep] = []
    source, done = current, level
    for release in upgrade_path(catalog.releases, current, target):
        changes = tuple(catalog.changes_between(done, release.schema))
        steps.append(PlanStep(source, release, changes))
        source, done = release.version, max(done, release.schema)
    return UpgradePlan(current, target, level, tuple(steps))
