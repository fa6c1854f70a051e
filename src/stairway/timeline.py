"""How long a run of the upgrade took, as its journal recorded it: each step's own time (from
its ``begin`` record to its ``done`` or ``failed`` one), the rollback's time, and the downtime
from the real stop of the product to its real start again, by the new release or by the
rollback.

Read from the journal rather than timed beside the run: after a step fails, the rollback's
restore, restart and health wait follow before the command returns, and none of that is the
step's own time. Pure: the records in, the times out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stairway.errors import StairwayError
from stairway.journal import Journal, JournalState, Record
from stairway.journal import read as read_journal
from stairway.steps import Step, StepKind


@dataclass(frozen=True)
class Rollback:
    """The rollback that followed a failed step: the release it put back, how long it took,
    and how it ended."""

    to: str
    seconds: float
    outcome: str  # done | failed | unfinished (the journal ends inside it)


@dataclass(frozen=True)
class Downtime:
    """How long the product was not serving, and whether the journal ends with it still down."""

    seconds: float
    ended_down: bool


@dataclass(frozen=True)
class Timeline:
    """A run's times: the steps that ended, in the order they ran, the rollback, the downtime."""

    steps: tuple[tuple[Step, float], ...]
    failed: Step | None  # the step whose failure began the rollback
    rollback: Rollback | None
    downtime: Downtime


def of_run(journal: Journal, before: list[Path], foreign: bool = False) -> Timeline | None:
    """The timeline of the run that began after the history held the files ``before``: a
    journal new in the history, else the active one (a rollback that failed leaves it open)
    unless it is ``foreign`` (an interrupted upgrade's, open before a run that did not resume
    it); None when the run wrote no journal (it was refused before its first step)."""
    new = [path for path in journal.history_files() if path not in set(before)]
    if not new and foreign:
        return None
    try:
        state = read_journal(new[-1]) if new else journal.active()
        return read(state) if state is not None else None
    except (OSError, StairwayError, ValueError, KeyError, IndexError):  # unreadable, or untimed
        return None


def read(state: JournalState) -> Timeline:
    """The times ``state``'s records give."""
    steps = [Step.from_json(s) for s in state.plan["steps"]]
    timed, failed = _steps(steps, state.records)
    return Timeline(
        tuple(timed), failed, _rollback(str(state.plan["from"]), state.records), _down(steps, state)
    )


def _steps(
    steps: list[Step], records: tuple[Record, ...]
) -> tuple[list[tuple[Step, float]], Step | None]:
    timed: list[tuple[Step, float]] = []
    failed: Step | None = None
    begun: dict[int, datetime] = {}
    for record in records:
        index = record.step
        if record.event == "begin" and index is not None:
            begun[index] = _at(record)  # a step begun again on resuming: its last begin counts
        elif record.event in ("done", "failed") and index in begun:
            timed.append((steps[index], _seconds(begun.pop(index), _at(record))))
            failed = steps[index] if record.event == "failed" else failed
        elif record.event == "rollback-begin" and begun:
            # the failure itself went unrecorded (a full disk): the step ended where this begins
            index, since = begun.popitem()
            timed.append((steps[index], _seconds(since, _at(record))))
            failed = steps[index]
    return timed, failed


def _rollback(origin: str, records: tuple[Record, ...]) -> Rollback | None:
    began = [r for r in records if r.event == "rollback-begin"]
    if not began:
        return None
    after = records[records.index(began[-1]) :]
    ends = {"rolled-back": "done", "rollback-failed": "failed"}
    end = next((r for r in after if r.event in ends), None)
    last = end or after[-1]
    outcome = ends[end.event] if end else "unfinished"
    return Rollback(origin, _seconds(_at(began[-1]), _at(last)), outcome)


def _down(steps: list[Step], state: JournalState) -> Downtime:
    """From the begin of the stop to the start's end; a rollback after the product was stopped
    stops it again (its restore) and ends the downtime when it has started the old release."""
    total, since, stopped = 0.0, None, False
    for record in state.records:
        kind = steps[record.step].kind if record.step is not None else None
        if record.event == "begin" and kind == StepKind.STOP and since is None:
            since, stopped = _at(record), True
        elif record.event == "rollback-begin" and stopped and since is None:
            since = _at(record)
        elif since is not None and _started(record, kind):
            total += _seconds(since, _at(record))
            since = None
    if since is not None and state.records:
        return Downtime(total + _seconds(since, _at(state.records[-1])), True)
    return Downtime(total, False)


def _started(record: Record, kind: StepKind | None) -> bool:
    # a journal written before the rollback noted its start ends with ``rolled-back`` alone
    done_start = record.event == "done" and kind == StepKind.START
    return done_start or record.event in ("rollback-started", "rolled-back")


def _at(record: Record) -> datetime:
    return datetime.fromisoformat(record.at)


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())
