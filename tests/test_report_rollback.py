"""The report of a real upgrade of the example product that fails after its first object
migration and is rolled back (see real_reports.py): each step's time is its own, the rollback
has a row of its own, and the downtime runs from the real stop of the product to its real start
again by the rollback, as the journal recorded them. The journal's times are read here directly,
not through the code the report uses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import lxml.html
import pytest

from real_reports import FAULT, example_site
from stairway.estimate.predict import say_duration
from stairway.journal import Journal, JournalState, Record


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, JournalState]]:
    root = tmp_path_factory.mktemp("rollback-report")
    with example_site(root / "demo") as site:
        report = root / "rolled-back.html"
        done = site.cli("upgrade", "--to", "2.0.0", "--report", str(report), **FAULT)
        assert done.returncode == 1, done.stderr + done.stdout
        (journal,) = Journal(root / "demo" / "backups").history()
        yield lxml.html.fromstring(report.read_text()), journal


def _seconds(start: Record, end: Record) -> float:
    return (datetime.fromisoformat(end.at) - datetime.fromisoformat(start.at)).total_seconds()


def _record(journal: JournalState, event: str, kind: str | None = None) -> Record:
    steps = journal.plan["steps"]
    (found,) = [
        r
        for r in journal.records
        if r.event == event and (kind is None or steps[r.step]["kind"] == kind)
    ]
    return found


def _cells(page: Any, label: str) -> list[str]:
    (row,) = [tr for tr in page.xpath("//tbody/tr") if tr[1].text_content().strip() == label]
    return [td.text_content().strip() for td in row]


def test_the_downtime_runs_from_the_stop_to_the_rollbacks_start(
    failed: tuple[Any, JournalState],
) -> None:
    page, journal = failed
    stopped = _record(journal, "begin", "stop")
    started = _record(journal, "rollback-started")
    assert _record(journal, "rollback-begin").at <= started.at <= _record(journal, "rolled-back").at
    downtime = page.get_element_by_id("downtime").text_content().strip()
    assert downtime == say_duration(_seconds(stopped, started))


def test_the_failed_step_takes_its_own_time_and_the_rollback_its_own(
    failed: tuple[Any, JournalState],
) -> None:
    page, journal = failed
    begun, broke = _record(journal, "begin", "objects"), _record(journal, "failed", "objects")
    own = _cells(page, "objects 1.0.0 -> 1.0.4")
    assert own[-2:] == [say_duration(_seconds(begun, broke)), "failed"]
    rollback = _cells(page, "rollback to 1.0.0")
    took = _seconds(_record(journal, "rollback-begin"), _record(journal, "rolled-back"))
    assert rollback[-2:] == [say_duration(took), "done"]
    # the rollback restores, restarts and waits for health: far longer than the failed step
    assert _seconds(begun, broke) < took / 4
