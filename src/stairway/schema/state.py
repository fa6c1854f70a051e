"""Comparing what the database has applied with what the catalog ships. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stairway.errors import DriftError, SchemaError
from stairway.schema.change import Change
from stairway.schema.recorder import AppliedChange


@dataclass(frozen=True)
class Drift:
    applied: AppliedChange
    change: Change

    def describe(self) -> str:
        return (
            f"{self.change.label}: file changed since it was applied "
            f"(recorded {self.applied.checksum[:12]}, now {self.change.checksum[:12]})"
        )


@dataclass(frozen=True)
class SchemaState:
    applied: tuple[AppliedChange, ...]
    drifted: tuple[Drift, ...]
    unknown: tuple[AppliedChange, ...]  # applied here, but not shipped by this catalog

    @property
    def level(self) -> int:
        return max((a.number for a in self.applied), default=0)

    def pending(self, changes: Sequence[Change], target: int) -> list[Change]:
        done = {a.number for a in self.applied}
        return [c for c in changes if c.number <= target and c.number not in done]

    def refuse_unsafe(self) -> None:
        """Stop before migrating a database that drifted or that is ahead of the catalog."""
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
            )


def compare(applied: Sequence[AppliedChange], changes: Sequence[Change]) -> SchemaState:
    shipped = {c.number: c for c in changes}
    drifted = tuple(
        Drift(a, shipped[a.number])
        for a in applied
        if a.number in shipped and a.checksum != shipped[a.number].checksum
    )
    unknown = tuple(a for a in applied if a.number not in shipped)
    return SchemaState(tuple(applied), drifted, unknown)
