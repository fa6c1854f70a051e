"""``python -m bench --scale 100k,1m,10m``: the benchmarks whose cost grows with the data, at
each size, with every Stairway process's peak memory, and how rate and memory moved.

Each size runs the chosen benchmarks as a full run would (subject and baseline taking turns,
the median of the runs and their spread) under an :class:`~bench.memory.RssSampler`. From
``ONE_RUN_FROM`` objects up a run takes minutes, so each side runs once there; the output and
the summary say so. The goals compare the two largest sizes (1M and 10M when both are asked
for): the subject's rate and the largest process's peak each flat within 20%; the 100M
projection starts from the largest size (:mod:`bench.growth`).
"""

from __future__ import annotations

import itertools
import re
import shutil
import statistics
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from bench import backfill, object_rewrite, transfer
from bench.growth import Growth, project
from bench.harness import MIN_REPEATS, NotRun, Result, Sizes, admin_conninfo, spread
from bench.memory import Peaks, RssSampler

RUNS: dict[str, Callable[[Sizes], Result | list[Result]]] = {
    transfer.NAME: transfer.run,
    object_rewrite.NAME: object_rewrite.run,
    backfill.NAME: backfill.run,
}
# Each result's timings: (the subject's seconds, the baseline's seconds), one per run.
TIMINGS = {
    transfer.NAME: ("import_s", "copy_from_s"),
    transfer.EXPORT_NAME: ("export_s", "copy_to_s"),
    object_rewrite.NAME: ("rewrite_s", "update_s"),
    backfill.NAME: ("migration_s", "plain_update_s"),
}
MIN_OBJECTS = 1_000
ONE_RUN_FROM = 5_000_000
ONE_RUN_REASON = "one run per side: a run at this size takes minutes"
# Disk per object at the largest benchmark's high point, measured at 100k: the bulk rewrite
# holds three tables of ~0.9 KB rows, two of them updated in place (1.9 KB each until vacuumed),
# the transfer three tables plus its COPY text and export files; 6 KB leaves room for the WAL.
BYTES_PER_OBJECT = 6_000
SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000}


class ScaleError(ValueError):
    """A ``--scale`` that cannot run: what is wrong, and a hint."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"100k,1m,10m"`` -> (100000, 1000000, 10000000); growing, each at least ``MIN_OBJECTS``."""
    hint = "give growing sizes such as 100k,1m,10m (k = 1,000, m = 1,000,000), each at least 1k"
    counts: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)([km]?)", part.strip().lower())
        if match is None:
            raise ScaleError(f"--scale: {part.strip()!r} is not a size", hint)
        counts.append(int(match[1]) * SUFFIXES[match[2]])
    if any(count < MIN_OBJECTS for count in counts):
        raise ScaleError(f"--scale: {min(counts):,} objects is too few to time", hint)
    if any(a >= b for a, b in itertools.pairwise(counts)):
        raise ScaleError(f"--scale: {text} does not grow from size to size", hint)
    return tuple(counts)


def check_disk(counts: Sequence[int], where: Sequence[Path]) -> None:
    """Refuse before anything runs when the largest size would not fit on the disk."""
    needed = max(counts) * BYTES_PER_OBJECT
    for path in where:
        free = shutil.disk_usage(path).free
        if free < needed:
            raise ScaleError(
                f"--scale: {max(counts):,} objects need about {needed / 1e9:.1f} GB free on "
                f"{path}, which has {free / 1e9:.1f} GB",
                "free some space, or ask for smaller sizes",
            )


def disk_paths() -> list[Path]:
    """Where the benchmark's files go, and PostgreSQL's data directory when it can be seen."""
    paths = [Path(tempfile.gettempdir())]
    data = _data_directory()
    if data is not None:
        paths.append(data)
    return paths


def _data_directory() -> Path | None:
    try:
        with psycopg.connect(admin_conninfo(), connect_timeout=5) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
    except psycopg.Error:
        return None  # not a superuser, or not running: the benchmark itself will say so
    path = Path(str(row[0])) if row else None
    while path is not None and not _visible(path):
        path = path.parent if path != path.parent else None
    return path


def _visible(path: Path) -> bool:
    try:
        shutil.disk_usage(path)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Point:
    """One result at one size: each run's rate for both sides, and the processes' peaks."""

    result: Result
    objects: int
    peaks: Peaks
    runs_per_side: int

    @property
    def name(self) -> str:
        return self.result.name

    def rates(self, side: int) -> tuple[float, ...]:
        key = TIMINGS[self.name][side]
        return tuple(self.objects / s if s else float("inf") for s in self.result.timings[key])

    @property
    def subject_rate(self) -> float:
        return statistics.median(self.rates(0))

    def to_json(self) -> dict[str, object]:
        subject, baseline = self.rates(0), self.rates(1)
        return {
            "objects": self.objects,
            "runs_per_side": self.runs_per_side,
            "one_run_reason": ONE_RUN_REASON if self.runs_per_side == 1 else None,
            "subject_rate": spread(subject) | {"each": list(subject)},
            "baseline_rate": spread(baseline) | {"each": list(baseline)},
            "rate_ratio": statistics.median(subject) / statistics.median(baseline),
            "rss": self.peaks.to_json(),
            "result": self.result.to_json(),
        }


@dataclass
class Measured:
    points: list[Point]
    not_run: dict[str, NotRun]
    failed: dict[str, str]


def measure(names: Sequence[str], counts: Sequence[int], sizes: Sizes) -> Measured:
    """Every named benchmark at every size, smallest size first, printing each point."""
    done = Measured([], {}, {})
    for count in counts:
        repeats = repeats_for(count)
        for name in names:
            label = f"{name}@{count}"
            print(f"running {name} at {count:,} objects ({_runs(repeats)}) ...", flush=True)
            try:
                with RssSampler() as sampler:
                    outcome = RUNS[name](replace(sizes, objects=count, repeats=repeats))
            except NotRun as reason:
                print(f"  {label}: NOT RUN: {reason.reason}\n    to fix: {reason.hint}")
                done.not_run[label] = reason
                continue
            except Exception as error:  # recorded, and the other sizes and benchmarks go on
                traceback.print_exc()
                print(f"  {label}: FAILED: {error!r}", flush=True)
                done.failed[label] = repr(error)
                continue
            for result in outcome if isinstance(outcome, list) else [outcome]:
                point = Point(result, count, sampler.peaks(), repeats)
                print(point_line(point), flush=True)
                done.points.append(point)
    return done


def repeats_for(count: int) -> int:
    """Runs of each side at ``count`` objects: once where a run takes minutes."""
    return 1 if count >= ONE_RUN_FROM else MIN_REPEATS


def _runs(repeats: int) -> str:
    return ONE_RUN_REASON if repeats == 1 else f"{repeats} runs per side"


@dataclass(frozen=True)
class Trend:
    """One result across its sizes: the goals between the two largest and the projection."""

    name: str
    points: tuple[Point, ...]

    @property
    def rate(self) -> Growth:
        small, large = self.points[-2], self.points[-1]
        return Growth("rate", small.objects, large.objects, small.subject_rate, large.subject_rate)

    @property
    def memory(self) -> Growth:
        small, large = self.points[-2], self.points[-1]
        return Growth(
            "peak rss",
            small.objects,
            large.objects,
            small.peaks.largest_bytes,
            large.peaks.largest_bytes,
        )

    def to_json(self) -> dict[str, object]:
        record: dict[str, object] = {
            "name": self.name,
            "unit": "objects/s",
            "points": [p.to_json() for p in self.points],
        }
        if len(self.points) >= 2:
            record["goals"] = {"rate_flat": self.rate.to_json(), "rss_flat": self.memory.to_json()}
            record["projection"] = project(self.rate, self.memory).to_json()
        return record


def trends(points: Sequence[Point]) -> list[Trend]:
    names = list(dict.fromkeys(p.name for p in points))
    return [
        Trend(name, tuple(sorted((p for p in points if p.name == name), key=lambda p: p.objects)))
        for name in names
    ]


def summary(counts: Sequence[int], found: Sequence[Trend]) -> dict[str, object]:
    return {"sizes": list(counts), "benchmarks": [t.to_json() for t in found]}


def point_line(point: Point) -> str:
    subject, baseline = spread(point.rates(0)), spread(point.rates(1))
    peaks = point.peaks
    worker_max = max((p.peak_bytes for p in peaks.workers), default=0)
    workers = f", {len(peaks.workers)} workers up to {_mb(worker_max)}" if peaks.workers else ""
    return (
        f"  {point.name} @ {point.objects:,}: subject {_rate(subject)}, "
        f"baseline {_rate(baseline)}\n"
        f"    peak RSS: benchmark process {_mb(peaks.benchmark_bytes)}{workers}"
    )


def trend_lines(trend: Trend) -> list[str]:
    if len(trend.points) < 2:
        return [f"  {trend.name}: one size only, no growth to judge"]
    rate, memory = trend.rate, trend.memory
    ahead = project(rate, memory)
    return [
        f"  {trend.name}: rate {rate.small_size:,} -> {rate.large_size:,}: "
        f"{rate.small:,.0f} -> {rate.large:,.0f} objects/s ({rate.change:+.1%}, "
        f"goal flat within {rate.tolerance:.0%}: {'met' if rate.flat else 'MISSED'})",
        f"  {trend.name}: peak RSS {memory.small_size:,} -> {memory.large_size:,}: "
        f"{_mb(memory.small)} -> {_mb(memory.large)} ({memory.change:+.1%}, "
        f"goal flat within {memory.tolerance:.0%}: {'met' if memory.flat else 'MISSED'})",
        f"  {trend.name}: {ahead.objects:,} objects projected: {ahead.seconds / 3600:,.2f} h at "
        f"the {ahead.from_objects:,} rate; memory {_mb(ahead.memory_bytes)} "
        f"({ahead.memory_method})",
    ]


def _rate(figures: dict[str, float]) -> str:
    return (
        f"{figures['median']:,.0f} objects/s ({figures['min']:,.0f}..{figures['max']:,.0f}, "
        f"{int(figures['runs'])} runs)"
    )


def _mb(value: float) -> str:
    return f"{value / 1e6:,.1f} MB"
