"""Comparing what the database has applied with what the catalog ships. Pure."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from stairway.errors import DriftError, PlanError, SchemaError
from stairway.schema.change import Change
from stairway.schema.recorder import AppliedChange
from stairway.versions import Release


@dataclass(frozen=True)
class Drift:
    """An applied change whose file differs from what was applied: both checksums."""

    applied: AppliedChange
    change: Change

    def describe(self) -> str:
        """The change and the start of both checksums, for an error message."""
        return (
            f"{self.change.label}: file changed since it was applied "
            f"(recorded {self.applied.checksum[:12]}, now {self.change.checksum[:12]})"
        )


@dataclass(frozen=True)
class SchemaState:
    """What the database records beside the catalog: every applied change, those whose files
    changed since, and those the catalog does not ship.
    """

    applied: tuple[AppliedChange, ...]
    drifted: tuple[Drift, ...]
    unknown: tuple[AppliedChange, ...]  # applied here, but not shipped by this catalog
    recognised: str = ""  # an adopted tool's table read in place of Stairway's records

    @property
    def level(self) -> int:
        """The highest mainline change applied; patch changes N.K do not move it."""
        return max((a.number for a in self.applied if not a.patch), default=0)

    @property
    def patches(self) -> tuple[AppliedChange, ...]:
        """The applied patch changes N.K."""
        return tuple(a for a in self.applied if a.patch)

    def pending(
        self, changes: Sequence[Change], target: int, patches: Collection[tuple[int, int]] = ()
    ) -> list[Change]:
        """Changes 1..target and the patch changes ``patches`` that are not applied, in order.

        What is applied, not the level, decides: a patch N.K runs on a database beyond N."""
        done = {a.key for a in self.applied}
        wanted = [c for c in changes if (c.key in patches if c.patch else c.number <= target)]
        return [c for c in wanted if c.key not in done]

    def uncarried(self, carried: Collection[tuple[int, int]]) -> list[AppliedChange]:
        """The applied patch changes that a release carrying ``carried`` does not know."""
        return [a for a in self.patches if a.key not in carried]

    def refuse_unsafe(self) -> None:
        """Stop before migrating a database that drifted or that is ahead of the catalog."""
        self.refuse_unknown_patch()
        if self.unknown:
            first = self.unknown[0]
            raise SchemaError(
                f"the database holds change {first.label}, which this catalog does not ship "
                f"(database at level {self.level})",
                hint="use the catalog of the release that applied it (a newer one); "
                "Stairway never moves a database backwards",
            )
        if self.drifted:
            lines = "; ".join(d.describe() for d in self.drifted)
            raise DriftError(
                f"drift: {lines}",
                hint="restore the file as it was applied, or record the new text with "
                "`stairway repair` after checking the database really matches it",
                changes=tuple(d.applied.number for d in self.drifted),
            )

    def refuse_unknown_patch(self) -> None:
        """A catalog published before a patch of an LTS line cannot move a database holding it."""
        patch = next((a for a in self.unknown if a.patch), None)
        if patch is not None:
            raise SchemaError(
                f"the database holds patch change {patch.label}, applied by release "
                f"{patch.release}, which this catalog does not ship: its releases were "
                "published before that patch",
                hint=f"use the catalog of a later release that carries patch {patch.code}; "
                "its release notes name it",
            )


def compare(
    applied: Sequence[AppliedChange], changes: Sequence[Change], recognised: str = ""
) -> SchemaState:
    """The state of a database that records ``applied``, beside the catalog's ``changes``;
    ``recognised`` says what an adopted tool's table said when ``applied`` comes from it."""
    shipped = {c.key: c for c in changes}
    drifted = tuple(
        Drift(a, shipped[a.key])
        for a in applied
        if a.key in shipped and a.checksum != shipped[a.key].checksum
    )
    unknown = tuple(a for a in applied if a.key not in shipped)
    return SchemaState(tuple(applied), drifted, unknown, recognised)


def refuse_uncarried(
    release: Release,
    held: Sequence[AppliedChange],
    carriers: Callable[[tuple[int, int]], Sequence[Release]],
) -> None:
    """A release published before a patch of an LTS line does not know it: moving a database
    that holds the patch to that release would leave it with a change the release never had.
    ``held`` are the patches the database holds that ``release`` does not carry."""
    if not held:
        return
    patch = held[0]
    later = [r.version for r in carriers(patch.key) if r.version > release.version]
    where = f"upgrade to {later[0]}, which carries it" if later else "upgrade to a later release"
    raise PlanError(
        f"release {release.version} does not carry patch change {patch.label}, which the "
        f"database holds (applied by {patch.release}): {release.version} was published "
        "before that patch",
        hint=f"{where}; a database never moves to a release that lacks one of its changes",
        target=str(release.version),
    )
