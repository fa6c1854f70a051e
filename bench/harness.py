"""Shared helpers: throwaway PostgreSQL databases, timing, result records, the JSON summary.

Every benchmark compares a subject with a baseline measured in the same process and run, so a
busy or slow machine moves both numbers and the ratio stays meaningful.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import sql

from stairway.database import dispose_all

HOST = os.environ.get("BENCH_PGHOST", "127.0.0.1")
PORT = int(os.environ.get("BENCH_PGPORT", "5432"))
USER = os.environ.get("BENCH_PGUSER", "postgres")
ADMIN_DB = os.environ.get("BENCH_PGDATABASE", "test")
RESULTS_DIR = Path(__file__).resolve().parent / "results"

T = TypeVar("T")
_counter = itertools.count(1)


@dataclass(frozen=True)
class Sizes:
    """How big a run is; ``--quick`` shrinks everything to a smoke check."""

    changes: int
    apply_repeats: int
    guard_calls: int
    cold_repeats: int
    objects: int

    @classmethod
    def choose(cls, quick: bool) -> Sizes:
        if quick:
            return cls(changes=50, apply_repeats=1, guard_calls=200, cold_repeats=3, objects=20_000)
        return cls(
            changes=500, apply_repeats=3, guard_calls=2000, cold_repeats=5, objects=1_000_000
        )


@dataclass
class Result:
    """One benchmark's outcome: ``ratio`` = subject / baseline, met when ratio <= goal.

    A ``goal`` of None reports the ratio without judging it: the result is met on its
    ``absolute`` goals alone (a benchmark whose goal is not a speed).
    """

    name: str
    subject: str
    baseline: str
    subject_seconds: float
    baseline_seconds: float
    goal: float | None
    timings: dict[str, list[float]]
    details: dict[str, float | int | str] = field(default_factory=dict)
    # "time": ratio = subject / baseline seconds, met at or under the goal; "throughput": ratio =
    # baseline / subject seconds (subject's rate over the baseline's), met at or over the goal.
    measure: str = "time"
    # Further results of the same run worth a line each (secondary ratios, extrapolations).
    notes: list[str] = field(default_factory=list)
    # Records too long for ``details`` (lists of migrations), written to the JSON summary as is.
    records: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # Goals stated in absolute terms (agents held, seconds): label -> (value, ">=" or "<=", goal);
    # the result is met only when these hold too.
    absolute: dict[str, tuple[float, str, float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        if self.measure == "throughput":
            return self.baseline_seconds / self.subject_seconds
        return self.subject_seconds / self.baseline_seconds

    @property
    def goal_text(self) -> str:
        if self.goal is None:
            return "none (reported only)"
        return f"{'>=' if self.measure == 'throughput' else '<='} {self.goal:g}"

    @property
    def met(self) -> bool:
        return self._ratio_met() and all(
            value >= goal if sign == ">=" else value <= goal
            for value, sign, goal in self.absolute.values()
        )

    def _ratio_met(self) -> bool:
        if self.goal is None:
            return True
        if self.measure == "throughput":
            return self.ratio >= self.goal
        return self.ratio <= self.goal

    def to_json(self) -> dict[str, object]:
        record = asdict(self)
        record.update(ratio=self.ratio, goal=self.goal, goal_text=self.goal_text)
        record["met"] = self.met
        return record


class NotRun(Exception):
    """A benchmark that cannot run on this machine: why, and what would let it run."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint

    def to_json(self, name: str) -> dict[str, object]:
        return {"name": name, "not_run": self.reason, "hint": self.hint, "met": False}


def conninfo(database: str) -> str:
    return f"host={HOST} port={PORT} user={USER} dbname={database}"


def admin_conninfo() -> str:
    return conninfo(ADMIN_DB)


def sqlalchemy_url(database: str) -> str:
    return f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{database}"


def _admin(statement: sql.Composed) -> None:
    # CREATE/DROP DATABASE refuse to run inside a transaction block.
    with psycopg.connect(admin_conninfo(), autocommit=True) as conn:
        conn.execute(statement)


@dataclass(frozen=True)
class TempDatabase:
    name: str

    @property
    def url(self) -> str:
        return sqlalchemy_url(self.name)

    def scalar(self, query: str) -> object:
        """One value, read on a separate plain psycopg connection (outside what is measured)."""
        with psycopg.connect(conninfo(self.name), autocommit=True) as conn:
            row = conn.execute(query.encode()).fetchone()
            return None if row is None else row[0]


@contextmanager
def temp_database(label: str) -> Iterator[TempDatabase]:
    """A fresh, empty database for one measurement; always dropped afterwards."""
    name = f"bench_{label}_{os.getpid()}_{next(_counter)}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield TempDatabase(name)
    finally:
        # Stairway caches one engine per URL; close its pooled connections before the drop.
        dispose_all()
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def leftover_databases() -> list[str]:
    """Databases this process created and failed to drop (should always be empty)."""
    prefix = f"bench_%_{os.getpid()}_%"
    with psycopg.connect(admin_conninfo(), autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix,))
        return [str(row[0]) for row in rows]


def timed(action: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = action()
    return value, time.perf_counter() - started


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def best(values: Sequence[float]) -> float:
    return min(values)


def write_summary(
    results: Sequence[Result], quick: bool, not_run: Mapping[str, NotRun] | None = None
) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "summary.json"
    skipped = [reason.to_json(name) for name, reason in (not_run or {}).items()]
    summary = {
        "quick": quick,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "benchmarks": [r.to_json() for r in results] + skipped,
    }
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path
