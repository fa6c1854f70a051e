"""What a report shows, gathered from the plan, the estimate, the run and verify."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stairway.estimate.predict import Estimate, say_duration
from stairway.plan import UpgradePlan
from stairway.steps import Step, StepKind, path_of, plan_steps, serving_down
from stairway.timeline import Downtime, Rollback, Timeline
from stairway.verify import Finding, FindingSeverity, Report

ROLLBACK = "rollback"  # the kind of the row of the rollback that followed a failed step


@dataclass(frozen=True)
class StepRow:
    """One step's row in a report: its phase and lock, predicted and actual time, status."""

    label: str
    kind: str
    phase: str  # the schema changes' phases, for a schema step
    lock: str  # the heaviest lock its statements hold (PostgreSQL)
    predicted: float | None
    actual: float | None
    status: str  # done | failed | not run | planned; a rollback's: done | failed | unfinished


@dataclass(frozen=True)
class Timing:
    """A report's totals: the wall time of its steps and how long the product was not serving.

    Measured from the steps that ran when any did; predicted from the estimate otherwise.
    """

    total: float | None  # None: a step's time is unknown
    downtime: float | None
    measured: bool
    down_at_end: bool  # the run ended after the stop and before the start was done

    def describe(self) -> tuple[str, str]:
        """The total and the downtime, each as a person reads it."""
        total = "unknown" if self.total is None else say_duration(self.total)
        if self.downtime is None:
            return total, "unknown"
        if self.downtime == 0 and not self.down_at_end:
            return total, "none: the product kept serving"
        down = say_duration(self.downtime)
        if self.down_at_end:
            return total, f"at least {down}: the run ended before the product was started again"
        return total, down


def timing(rows: Sequence[StepRow], measured_down: Downtime | None = None) -> Timing:
    """The totals of ``rows``: the sum of the steps' times (and the rollback's) and, unless
    the journal measured it (``measured_down``), the sum of those from the stop through the
    start."""
    measured = any(row.actual is not None for row in rows)
    if measured:
        seconds: list[float | None] = [row.actual or 0.0 for row in rows]
    else:
        seconds = [row.predicted for row in rows]
    if measured and measured_down is not None:
        return Timing(_sum(seconds), measured_down.seconds, True, measured_down.ended_down)
    rows = [row for row in rows if row.kind != ROLLBACK]
    seconds = seconds[: len(rows)]  # the rollback's row comes last
    down = serving_down(StepKind(row.kind) for row in rows)
    while_down = [s for s, d in zip(seconds, down, strict=True) if d]
    started = any(row.kind == StepKind.START and row.status == "done" for row in rows)
    stopped = any(d and row.actual is not None for row, d in zip(rows, down, strict=True))
    return Timing(_sum(seconds), _sum(while_down), measured, measured and stopped and not started)


def _sum(seconds: list[float | None]) -> float | None:
    return None if None in seconds else sum(s or 0.0 for s in seconds)


@dataclass(frozen=True)
class Stair:
    """One release on the report's path: where the site is, a required stop, or the target."""

    version: str
    role: str  # current | stop | target


@dataclass(frozen=True)
class Document:
    """Everything a report shows, ready to render as HTML or Markdown."""

    kind: str  # upgrade | rehearsal | verify
    product: str
    current: str
    target: str
    outcome: str
    ok: bool
    stairs: tuple[Stair, ...]
    steps: tuple[StepRow, ...]
    findings: dict[FindingSeverity, tuple[Finding, ...]]
    backup: str | None
    notes: str  # Markdown
    end_state: str | None = None
    backup_lead: str = "Backup taken:"  # what the backup is to this run: taken, or restored
    backup_detail: str = ""  # after its id: the release it holds, why it was taken
    generated: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    downtime: Downtime | None = None  # as the journal measured it, from the real stop and start

    @property
    def timing(self) -> Timing:
        """The total time and the downtime, from the steps' records."""
        return timing(self.steps, self.downtime)

    @property
    def title(self) -> str:
        """The product, the versions and the kind of report, for the heading."""
        return f"{self.product} {self.current} → {self.target}: {self.kind}"


class StepClock:
    """A progress callback that times every step the upgrade begins."""

    def __init__(self) -> None:
        self.begun: list[tuple[Step, float]] = []
        self.ended: float | None = None

    def __call__(self, _index: int, _total: int | None, step: Step, /) -> None:
        """Note the time ``step`` begins."""
        self.begun.append((step, time.monotonic()))

    def stop(self) -> None:
        """Mark the end of the last step begun."""
        self.ended = time.monotonic()

    def durations(self) -> list[tuple[Step, float]]:
        """Each step begun with its seconds: until the next began, or until the end."""
        end = self.ended or time.monotonic()
        return [
            (step, (self.begun[i + 1][1] if i + 1 < len(self.begun) else end) - began)
            for i, (step, began) in enumerate(self.begun)
        ]


@dataclass(frozen=True)
class Run:
    """What happened, for an upgrade or a rehearsal: timed steps and how it ended; from its
    journal, the rollback that followed a failure and the downtime, measured."""

    timed: list[tuple[Step, float]]
    failure: str | None = None
    rollback: Rollback | None = None
    downtime: Downtime | None = None

    @classmethod
    def of(cls, timeline: Timeline, failure: str | None) -> Run:
        """The run its journal's ``timeline`` records, ended by ``failure`` if it failed."""
        return cls(list(timeline.steps), failure, timeline.rollback, timeline.downtime)


def build_document(
    kind: str,
    product: str,
    plan: UpgradePlan,
    findings: Report | None,
    estimate: Estimate | None,
    run: Run | None,
    backup: str | None,
    notes: str,
    releases: bool,
    end_state: str | None = None,
    backup_said: tuple[str, str] = ("Backup taken:", ""),
) -> Document:
    """Gather a report from the plan, the estimate, what ran and the findings. The path, the
    title and the outcome are those of the steps that ran when the run finished; of the plan
    when nothing ran or the run failed part way.

    Args:
        kind: ``upgrade``, ``rehearsal`` or ``verify``.
        product: The product's name.
        plan: The upgrade plan.
        findings: The pre-upgrade findings, if any; blocking ones make the report not ok.
        estimate: Predicted times per step, if any.
        run: The timed steps and the failure; None when nothing ran (verify).
        backup: The id of the backup taken, if any.
        notes: The release notes of the path, in Markdown.
        releases: Whether the site switches release directories, which adds that step.
        end_state: How the site ended, for a rehearsal.
        backup_said: What the backup is to this run, before and after its id (default: the
            one it took).
    """
    steps = plan_steps(plan, releases)
    planned = {step.describe() for step in steps}
    if run is not None and any(step.describe() not in planned for step, _ in run.timed):
        steps = [step for step, _ in run.timed]  # a rolling upgrade walks its own steps
    rows = _rows(steps, plan, estimate, run) + _rollback_row(run)
    ok = run is None or run.failure is None
    blocking = [f for f in findings.findings if f.blocking] if findings else []
    stairs = _stairs(_path(plan, run))
    outcome = _outcome(kind, run, blocking, stairs)
    return Document(
        kind,
        product,
        stairs[0].version,
        stairs[-1].version,
        outcome,
        ok and not blocking,
        stairs,
        tuple(rows),
        _by_severity(findings.findings if findings else ()),
        backup,
        notes,
        end_state,
        *backup_said,
        downtime=run.downtime if run else None,
    )


def _path(plan: UpgradePlan, run: Run | None) -> list[str]:
    """The releases walked: by the steps that ran, if the run finished; else by the plan."""
    walked = path_of(step for step, _ in run.timed) if run and not run.failure else []
    return walked or [str(plan.current), *(str(hop.release.version) for hop in plan.steps)]


def _outcome(kind: str, run: Run | None, blocking: list[Finding], stairs: tuple[Stair, ...]) -> str:
    target = stairs[-1].version
    if run is not None and run.failure:
        return f"failed: {run.failure}"
    if blocking:
        return f"{len(blocking)} finding(s) block the upgrade to {target}"
    if run is None:
        return f"nothing blocks the upgrade to {target}"
    done = "rehearsed" if kind == "rehearsal" else "upgraded"
    return f"{done} {stairs[0].version} → {target}"


def _stairs(path: list[str]) -> tuple[Stair, ...]:
    last = len(path) - 1
    roles = ["current", *("target" if i == last else "stop" for i in range(1, len(path)))]
    return tuple(Stair(version, role) for version, role in zip(path, roles, strict=True))


def _rows(
    steps: list[Step], plan: UpgradePlan, estimate: Estimate | None, run: Run | None
) -> list[StepRow]:
    predicted = {s.label: s for s in estimate.steps} if estimate else {}
    actual = {step.describe(): seconds for step, seconds in run.timed} if run else {}
    failed_at = run.timed[-1][0].describe() if run and run.failure and run.timed else None
    hops = {str(h.release.version): h for h in plan.steps}
    rows = []
    for step in steps:
        label = step.describe()
        guess = predicted.get(label)
        hop = hops.get(step.release or "") if step.kind == StepKind.SCHEMA else None
        phases = sorted({c.phase.value for c in hop.changes}) if hop else []
        rows.append(
            StepRow(
                label,
                str(step.kind),
                ", ".join(phases),
                (guess.lock or "") if guess else "",
                guess.seconds if guess else None,
                actual.get(label),
                _status(label, run, actual, failed_at),
            )
        )
    return rows


def _rollback_row(run: Run | None) -> list[StepRow]:
    """The rollback's own row, after the steps: its time is no step's."""
    rollback = run.rollback if run else None
    if rollback is None:
        return []
    label = f"rollback to {rollback.to}"
    return [StepRow(label, ROLLBACK, "", "", None, rollback.seconds, rollback.outcome)]


def _status(label: str, run: Run | None, actual: dict[str, float], failed_at: str | None) -> str:
    if run is None:
        return "planned"
    if label == failed_at:
        return "failed"
    return "done" if label in actual else "not run"


def _by_severity(
    findings: tuple[Finding, ...] | list[Finding],
) -> dict[FindingSeverity, tuple[Finding, ...]]:
    return {s: tuple(f for f in findings if f.severity == s) for s in FindingSeverity}
