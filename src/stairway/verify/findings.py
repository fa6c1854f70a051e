"""What ``verify`` reports, as values: a finding says what was found, how loudly, and what to do;
a report holds every finding for one upgrade. Nothing here reads the site."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from stairway.versions import Version

EXAMPLES = 5  # ids shown with a finding: enough to find the others, few enough to read


class FindingSeverity(StrEnum):
    """How loudly a finding is reported, most severe first (the order ``group`` keeps).

    Attributes:
        CRITICAL: Must be fixed before the upgrade (when the finding blocks).
        WARNING: Worth fixing or knowing before the upgrade.
        SUGGESTION: A deprecation to act on some time.
        INFO: What the upgrade will do.
    """

    CRITICAL = "critical"
    WARNING = "warning"
    SUGGESTION = "suggestion"
    INFO = "info"


class Topic(StrEnum):
    """What part of the site a finding is about."""

    PATH = "path"
    DATABASE = "database"
    SCHEMA = "schema"
    BACKGROUND = "background"
    OBJECTS = "objects"
    PLUGINS = "plug-ins"
    CHECKS = "checks"
    JOBS = "jobs"
    DISK = "disk"
    DATA = "data"
    ENVIRONMENT = "environment"
    CONFIG = "config"
    DELTAS = "deltas"
    LICENCE = "licence"
    TASKS = "tasks"
    SESSIONS = "sessions"
    RELEASES = "releases"


@dataclass(frozen=True)
class Finding:
    """One thing ``verify`` found, with what to do about it."""

    topic: Topic
    severity: FindingSeverity
    message: str
    blocking: bool = False
    count: int | None = None
    examples: tuple[str, ...] = ()
    hint: str = ""
    needs_hand: bool = False  # the upgrade will leave it for an operator (and exit 3)

    def describe(self) -> str:
        """The finding as one line: severity, topic, message and the first examples."""
        shown = f" (first: {', '.join(self.examples)})" if self.examples else ""
        return f"[{self.severity}] {self.topic}: {self.message}{shown}"


@dataclass(frozen=True)
class Report:
    """Every finding for an upgrade from ``current`` to ``target``."""

    current: Version
    target: Version
    findings: tuple[Finding, ...]

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """The findings that stop the upgrade."""
        return tuple(f for f in self.findings if f.blocking)

    @property
    def by_hand(self) -> tuple[Finding, ...]:
        """The findings the upgrade will leave for an operator."""
        return tuple(f for f in self.findings if f.needs_hand)


def group(findings: Sequence[Finding]) -> dict[FindingSeverity, list[Finding]]:
    """Findings by severity, most severe first."""
    return {
        s: [f for f in findings if f.severity == s]
        for s in FindingSeverity
        if any(f.severity == s for f in findings)
    }
