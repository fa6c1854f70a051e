"""The upgrade plan as a value: the path through required stops and the changes of each step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stairway.catalog import Catalog
from stairway.schema.change import Change, Phase
from stairway.schema.histories.repeatable_runs import DueRepeatable
from stairway.schema.recorder import AppliedChange
from stairway.schema.state import refuse_uncarried
from stairway.tasks import Task, on_path
from stairway.versions import Release, Version, upgrade_path


@dataclass(frozen=True)
class PlanStep:
    """One step of an upgrade: from ``source`` to ``release``, with the changes it runs."""

    source: Version
    release: Release
    changes: tuple[Change, ...]

    @property
    def online(self) -> bool:
        """Whether every change of the step can run while the product serves."""
        return all(c.phase.online for c in self.changes)

    def describe(self) -> str:
        """The step's versions and each change's phase, on one line."""
        phases = ", ".join(c.describe() for c in self.changes) or "no schema changes"
        return f"{self.source} -> {self.release.version}: {phases}"


@dataclass(frozen=True)
class RollingSafety:
    """Whether a path can be done one instance at a time, without downtime, and why not: the one
    answer ``plan``, ``verify`` and ``upgrade --rolling`` all give."""

    blocking: tuple[Change, ...]  # changes the old release cannot run on, not deferred
    deferred: tuple[Change, ...]  # the target's contract changes, run once no old instance is left
    target: Version
    marked: bool  # the target release is marked ``rolling`` in the catalog
    moves: bool  # the path has a step at all
    clears: tuple[Release, ...] = ()  # releases that clear data-directory paths before starting
    offline_tasks: tuple[Task, ...] = ()  # post-upgrade tasks that need the product stopped

    @property
    def safe(self) -> bool:
        """Yes only for a path to a release marked rolling whose every change keeps the old
        release working (the target's contract changes excepted: they wait), and that clears no
        path the running release may be using."""
        return (
            self.moves
            and self.marked
            and not self.blocking
            and not self.clears
            and not self.offline_tasks
        )

    def reasons(self) -> list[str]:
        """Why the path is not rolling-safe; empty when it is."""
        found = []
        if self.blocking:
            found.append(
                "these changes need the product stopped: "
                + ", ".join(c.describe() for c in self.blocking)
            )
        if self.clears:
            shown = "; ".join(f"{r.version} clears {', '.join(r.clear)}" for r in self.clears)
            found.append(f"clearing data-directory paths needs the product stopped: {shown}")
        if self.offline_tasks:
            shown = "; ".join(t.describe() for t in self.offline_tasks)
            found.append(f"these tasks need the product stopped: {shown}")
        if self.moves and not self.marked:
            found.append(f"release {self.target} is not marked rolling in the catalog")
        if not self.moves:
            found.append(f"already at {self.target}: nothing to upgrade")
        return found

    def describe(self) -> str:
        """``yes``, with the changes that wait for the old instances, or ``no``, with why."""
        if not self.safe:
            return "no (" + "; ".join(self.reasons()) + ")"
        waits = ", ".join(c.label for c in self.deferred)
        return "yes" + (f" ({waits} deferred until no older instance is left)" if waits else "")


@dataclass(frozen=True)
class UpgradePlan:
    """The path from ``current`` to ``target`` through required stops, step by step."""

    current: Version
    target: Version
    level: int
    steps: tuple[PlanStep, ...]
    # Flyway repeatables new or changed, which run after the versioned changes of a migration
    repeatables: tuple[DueRepeatable, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every change the plan runs, in order."""
        return tuple(c for step in self.steps for c in step.changes)

    @property
    def deferred_contract(self) -> tuple[Change, ...]:
        """The target's contract changes, which a rolling upgrade runs after the last instance
        of an older release is gone (GitLab's post-deployment migrations). Only a release
        marked ``rolling`` defers them."""
        if not self.steps or not self.steps[-1].release.rolling:
            return ()
        return tuple(c for c in self.steps[-1].changes if c.phase == Phase.CONTRACT)

    def rolling_safety(self) -> RollingSafety:
        """Whether the path can be done without downtime, and why not: the one owner of that
        answer."""
        deferred = self.deferred_contract
        blocking = tuple(c for c in self.changes if not c.phase.online and c not in deferred)
        marked = bool(self.steps) and self.steps[-1].release.rolling
        clears = tuple(s.release for s in self.steps if s.release.clear)
        offline = tuple(t for t in self.tasks if not t.serving)
        moves = bool(self.steps)
        return RollingSafety(blocking, deferred, self.target, marked, moves, clears, offline)

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The post-upgrade tasks of the releases on the path, each name once (a later release
        that declares a task of the same name replaces it)."""
        return tuple(on_path((str(s.release.version), s.release.tasks) for s in self.steps))

    @property
    def blocking_rolling(self) -> tuple[Change, ...]:
        """Changes that stop the path from being done without downtime."""
        return self.rolling_safety().blocking

    @property
    def rolling_safe(self) -> bool:
        """Whether the whole path can be done one instance at a time, without downtime."""
        return self.rolling_safety().safe

    @property
    def nothing_to_do(self) -> bool:
        """Whether the site is at the target already: no step, so no downtime either."""
        return not self.steps

    def describe(self) -> str:
        """The path through its releases, and whether it needs downtime."""
        if self.nothing_to_do:
            return f"nothing to do: the site is at {self.current}"
        path = " -> ".join([str(self.current), *(str(s.release.version) for s in self.steps)])
        return f"{path} ({'rolling-safe' if self.rolling_safe else 'needs downtime'})"


def make_plan(
    catalog: Catalog,
    current: Version,
    level: int,
    target: Version,
    patches: Sequence[AppliedChange] = (),
    repeatables: Sequence[DueRepeatable] = (),
) -> UpgradePlan:
    """``level`` is the database's schema level: mainline changes at or below it are already
    applied; ``patches`` are the patch changes it holds; ``repeatables`` are the Flyway
    repeatables due. A step applies what its release needs and the database lacks, so a patch
    runs once on any path, out of order if need be."""
    steps: list[PlanStep] = []
    source, done = current, level
    held = {a.key for a in patches}
    for release in upgrade_path(catalog.releases, current, target):
        held_here = [a for a in patches if a.key not in release.patches]
        refuse_uncarried(release, held_here, catalog.carriers)
        changes = tuple(
            c for c in catalog.needs(release) if (c.key not in held if c.patch else c.number > done)
        )
        steps.append(PlanStep(source, release, changes))
        source, done = release.version, max(done, release.schema)
        held |= set(release.patches)
    return UpgradePlan(current, target, level, tuple(steps), tuple(repeatables))
