"""The benchmark harness's pure parts: taking turns, the spread, and comparing two summaries."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rich.console import Console

from bench.compare import compare, machine_differences, table
from bench.harness import Paired, Result, alternate, spread


def _side(name: str, log: list[str], figures: list[float]) -> Callable[[], float]:
    def run() -> float:
        log.append(name)
        return figures[len([n for n in log if n == name]) - 1]

    return run


def test_alternate_takes_turns_at_going_first_and_keeps_every_figure() -> None:
    log: list[str] = []
    runs = alternate(_side("s", log, [3.0, 1.0, 2.0]), _side("b", log, [4.0, 6.0, 5.0]), 3)
    assert log == ["s", "b", "b", "s", "s", "b"]
    assert runs.first == ("subject", "baseline", "subject")
    assert runs.subject == (3.0, 1.0, 2.0)
    assert runs.baseline == (4.0, 6.0, 5.0)


def test_alternate_refuses_no_runs() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        alternate(lambda: 1.0, lambda: 1.0, 0)


def test_spread_and_ratios_follow_the_measure() -> None:
    runs = Paired(subject=(1.0, 3.0, 2.0), baseline=(2.0, 2.0, 8.0), first=("subject",) * 3)
    assert spread(runs.subject) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3}
    timed = Result("t", "s", "b", runs, goal=1.0, timings={})
    assert timed.ratio == 1.0 and timed.round_ratios == (0.5, 1.5, 0.25) and timed.met
    faster = Result("f", "s", "b", runs, goal=1.0, timings={}, measure="throughput")
    assert faster.ratio == 1.0 and faster.round_ratios == (2.0, 2 / 3, 4.0)
    record = timed.to_json()
    assert record["subject_runs"] == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3} | {
        "each": [1.0, 3.0, 2.0]
    }


def _summary(ratios: dict[str, float], machine: dict[str, object]) -> dict[str, object]:
    benchmarks: list[dict[str, object]] = [
        {"name": n, "ratio": r, "goal_text": "<= 1", "met": r <= 1, "measure": "time"}
        for n, r in ratios.items()
    ]
    benchmarks.append({"name": "rolling", "not_run": "nginx is not installed", "met": False})
    return {"machine": machine, "sizes": {}, "benchmarks": benchmarks}


def test_compare_gives_each_ratio_change_goal_and_verdict() -> None:
    old = _summary({"a": 0.8, "b": 2.0, "gone": 1.0}, {"cores": 2, "python": "3.11.7"})
    new = _summary({"a": 1.2, "b": 1.0}, {"cores": 4, "python": "3.11.7"})
    rows = {change.name: change for change in compare(old, new)}
    assert list(rows) == ["a", "b", "rolling", "gone"]
    assert rows["a"].percent == pytest.approx(50.0) and rows["a"].better is False
    assert rows["a"].met is False and rows["a"].goal == "<= 1"
    assert rows["b"].percent == pytest.approx(-50.0) and rows["b"].better is True
    assert rows["rolling"].old is None and rows["rolling"].met is None
    assert rows["gone"].new is None and rows["gone"].percent is None
    assert machine_differences(old, new) == ["cores: 2 -> 4"]
    console = Console(width=200, record=True)
    console.print(table(list(rows.values()), "old.json", "new.json"))
    text = console.export_text()
    assert "+50.0" in text and "-50.0" in text and "not run" in text
