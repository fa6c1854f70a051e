"""A run's times read from its journal's records (stairway.timeline), from plain records: each
step's own time, the rollback's, and the downtime from the real stop to the real start."""

from __future__ import annotations

from typing import Any

from stairway.journal import JournalState, Record
from stairway.timeline import Downtime, Rollback, read

KINDS = ["backup", "stop", "schema", "start", "health", "maintenance-off"]


def _state(*events: tuple[str, int | None, float]) -> JournalState:
    plan: dict[str, Any] = {"from": "1.0", "to": "2.0", "steps": [{"kind": k} for k in KINDS]}
    records = tuple(
        Record(event, step, {}, f"2030-01-01T00:00:{at:06.3f}+00:00") for event, step, at in events
    )
    return JournalState("u", plan, records)


def test_a_finished_run_is_down_from_the_stop_through_the_start() -> None:
    events = [("begin", 0, 0.0), ("done", 0, 1.0), ("begin", 1, 1.5), ("done", 1, 2.0)]
    events += [("begin", 3, 10.0), ("done", 3, 12.0), ("begin", 4, 12.0), ("done", 4, 20.0)]
    timeline = read(_state(*events, ("finished", None, 20.5)))
    assert [seconds for _, seconds in timeline.steps] == [1.0, 0.5, 2.0, 8.0]
    assert timeline.downtime == Downtime(10.5, False)
    assert timeline.rollback is None and timeline.failed is None


def test_a_failed_step_ends_at_its_failure_and_the_rollback_ends_the_downtime() -> None:
    events = [("begin", 1, 1.0), ("done", 1, 2.0), ("begin", 2, 2.0), ("failed", 2, 2.5)]
    events += [("rollback-begin", None, 2.6), ("rollback-started", None, 6.0)]
    timeline = read(_state(*events, ("rolled-back", None, 9.0)))
    assert [(s.kind, seconds) for s, seconds in timeline.steps][-1] == ("schema", 0.5)
    assert timeline.failed is not None and timeline.failed.kind == "schema"
    assert timeline.rollback == Rollback("1.0", 6.4, "done")
    assert timeline.downtime == Downtime(5.0, False)


def test_a_rollback_after_the_start_is_downtime_again_from_its_begin() -> None:
    events = [("begin", 1, 1.0), ("done", 1, 2.0), ("begin", 3, 4.0), ("done", 3, 5.0)]
    events += [("begin", 4, 5.0), ("failed", 4, 7.0), ("rollback-begin", None, 7.0)]
    timeline = read(_state(*events, ("rollback-started", None, 10.0), ("rolled-back", None, 11)))
    assert timeline.downtime == Downtime(4.0 + 3.0, False)


def test_a_failure_before_the_stop_is_no_downtime_and_a_failed_rollback_ends_down() -> None:
    before = [("begin", 0, 0.0), ("failed", 0, 1.0), ("rollback-begin", None, 1.0)]
    calm = read(_state(*before, ("rollback-started", None, 2.0), ("rolled-back", None, 3.0)))
    assert calm.downtime == Downtime(0.0, False)
    events = [("begin", 1, 1.0), ("done", 1, 2.0), ("begin", 2, 2.0), ("failed", 2, 3.0)]
    events += [("rollback-begin", None, 3.0), ("rollback-failed", None, 8.0)]
    broken = read(_state(*events))
    assert broken.downtime == Downtime(7.0, True)
    assert broken.rollback == Rollback("1.0", 5.0, "failed")
