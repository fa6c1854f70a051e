"""``python -m bench --compare OLD.json NEW.json``: how each ratio moved between two summaries,
and when either was run with ``--scale``, how each size's rate moved.

Reading and comparing is pure (:func:`compare` takes two loaded summaries); only
:func:`print_comparison` reads files and prints. A ratio of a "time" benchmark is better when
it falls, of a "throughput" one when it rises; the table colours the change accordingly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

MACHINE_KEYS = ("cores", "memory_bytes", "postgresql", "python")


@dataclass(frozen=True)
class Change:
    """One benchmark's ratio in both summaries; None where it did not run."""

    name: str
    old: float | None
    new: float | None
    goal: str
    met: bool | None  # in the new summary; None when it did not run there
    measure: str = "time"

    @property
    def percent(self) -> float | None:
        if self.old is None or self.new is None or self.old == 0:
            return None
        return (self.new - self.old) / self.old * 100

    @property
    def better(self) -> bool | None:
        """Whether the new ratio is the better one, given which way the measure points."""
        if self.old is None or self.new is None or self.new == self.old:
            return None
        return (self.new > self.old) == (self.measure == "throughput")


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """One row per benchmark in either summary: the new summary's order, then the old's rest."""
    olds = {b["name"]: b for b in old.get("benchmarks", [])}
    news = {b["name"]: b for b in new.get("benchmarks", [])}
    names = list(news) + [name for name in olds if name not in news]
    return [_change(name, olds.get(name), news.get(name)) for name in names]


def _change(name: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> Change:
    either = new if new is not None and "ratio" in new else old or {}
    return Change(
        name=name,
        old=_ratio(old),
        new=_ratio(new),
        goal=str(either.get("goal_text", "")),
        met=bool(new["met"]) if new is not None and "ratio" in new else None,
        measure=str(either.get("measure", "time")),
    )


def _ratio(record: Mapping[str, Any] | None) -> float | None:
    if record is None or "ratio" not in record:
        return None
    return float(record["ratio"])


@dataclass(frozen=True)
class RateChange:
    """One result's subject rate (objects/s, median) at one size of ``--scale``, in both."""

    name: str
    objects: int
    old: float | None
    new: float | None

    @property
    def percent(self) -> float | None:
        if self.old is None or self.new is None or self.old == 0:
            return None
        return (self.new - self.old) / self.old * 100


def rate_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[RateChange]:
    """One row per result and size in either summary's ``scale``; empty when neither has one."""
    olds, news = _rates(old), _rates(new)
    keys = list(news) + [key for key in olds if key not in news]
    return [
        RateChange(name, objects, olds.get((name, objects)), news.get((name, objects)))
        for name, objects in keys
    ]


def _rates(summary: Mapping[str, Any]) -> dict[tuple[str, int], float]:
    found: dict[tuple[str, int], float] = {}
    for trend in summary.get("scale", {}).get("benchmarks", []):
        for point in trend.get("points", []):
            found[(str(trend["name"]), int(point["objects"]))] = float(
                point["subject_rate"]["median"]
            )
    return found


def rate_table(changes: list[RateChange], old_label: str, new_label: str) -> Table:
    grid = Table(title=f"rates at each size (objects/s): old {old_label}, new {new_label}")
    grid.add_column("name", no_wrap=True)
    grid.add_column("objects", justify="right")
    grid.add_column("old rate", justify="right")
    grid.add_column("new rate", justify="right")
    grid.add_column("change %", justify="right")
    for change in changes:
        grid.add_row(
            change.name,
            f"{change.objects:,}",
            _whole(change.old),
            _whole(change.new),
            _signed(change.percent, better=None if change.percent is None else change.percent > 0),
        )
    return grid


def _whole(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def machine_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The machine facts that differ: ratios from different machines compare only roughly."""
    before, after = old.get("machine", {}), new.get("machine", {})
    return [
        f"{key}: {before.get(key, '?')} -> {after.get(key, '?')}"
        for key in MACHINE_KEYS
        if before.get(key) != after.get(key)
    ]


def table(changes: list[Change], old_label: str, new_label: str) -> Table:
    grid = Table(title=f"benchmark ratios: old {old_label}, new {new_label}")
    grid.add_column("name", no_wrap=True)
    grid.add_column("old ratio", justify="right")
    grid.add_column("new ratio", justify="right")
    grid.add_column("change %", justify="right")
    grid.add_column("goal")
    grid.add_column("met")
    for change in changes:
        grid.add_row(
            change.name,
            _number(change.old),
            _number(change.new),
            _percent(change),
            change.goal,
            "not run" if change.met is None else ("yes" if change.met else "NO"),
        )
    return grid


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _percent(change: Change) -> str:
    return _signed(change.percent, change.better)


def _signed(percent: float | None, better: bool | None) -> str:
    if percent is None:
        return "-"
    colour = {True: "green", False: "red", None: "default"}[better]
    return f"[{colour}]{percent:+.1f}[/{colour}]"


def print_comparison(old_path: Path, new_path: Path, console: Console | None = None) -> int:
    """Print the table for two summary files; 0, or 2 when a file cannot be read."""
    out = console or Console()
    try:
        old, new = (json.loads(path.read_text(encoding="utf-8")) for path in (old_path, new_path))
    except (OSError, ValueError) as error:
        out.print(f"cannot read a summary: {error}", markup=False)
        return 2
    out.print(table(compare(old, new), str(old_path), str(new_path)))
    rates = rate_changes(old, new)
    if rates:
        out.print(rate_table(rates, str(old_path), str(new_path)))
    for line in machine_differences(old, new):
        out.print(f"machine differs, {line}", markup=False)
    if old.get("sizes") != new.get("sizes") or old.get("quick") != new.get("quick"):
        out.print("sizes differ: the ratios were measured on different amounts of work")
    return 0
