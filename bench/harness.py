"""Shared helpers: throwaway PostgreSQL databases, timing, result records, the JSON summary.

Every benchmark compares a subject with a baseline measured in the same process and run, so a
busy or slow machine moves both numbers and the ratio stays meaningful.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import sql

from stairway.database import dispose_all, forget

HOST = os.environ.get("BENCH_PGHOST", "127.0.0.1")
PORT = int(os.environ.get("BENCH_PGPORT", "5432"))
USER = os.environ.get("BENCH_PGUSER", "postgres")
ADMIN_DB = os.environ.get("BENCH_PGDATABASE", "test")
RESULTS_DIR = Path(__file__).resolve().parent / "results"

T = TypeVar("T")
_counter = itertools.count(1)


MIN_REPEATS = 3  # every benchmark: at least this many alternating runs of each side


@dataclass(frozen=True)
class Sizes:
    """How big a run is; ``--quick`` shrinks everything to a smoke check."""

    changes: int
    apply_repeats: int
    guard_calls: int
    cold_repeats: int
    objects: int
    # Runs of each side in the benchmarks that grow with the data; fewer only at sizes where
    # one run takes minutes (``--scale``).
    repeats: int = MIN_REPEATS

    @classmethod
    def choose(cls, quick: bool) -> Sizes:
        if quick:
            return cls(changes=50, apply_repeats=3, guard_calls=200, cold_repeats=3, objects=20_000)
        return cls(
            changes=500, apply_repeats=5, guard_calls=2000, cold_repeats=5, objects=1_000_000
        )


@dataclass(frozen=True)
class Paired:
    """Both sides' figures, one per run, and which side went first in each round."""

    subject: tuple[float, ...]
    baseline: tuple[float, ...]
    first: tuple[str, ...]

    @property
    def ratios(self) -> tuple[float, ...]:
        """Subject over baseline, round by round: how much the ratio itself moves."""
        return tuple(
            s / b if b else float("inf") for s, b in zip(self.subject, self.baseline, strict=True)
        )


def alternate(subject: Callable[[], float], baseline: Callable[[], float], repeats: int) -> Paired:
    """Run each side ``repeats`` times, taking turns at going first.

    Round 0 runs subject then baseline, round 1 baseline then subject, and so on, so neither
    side always meets the warmer cache or the busier machine. Each callable does one run and
    returns its own figure (usually the seconds of just the part it measures; setup it does
    before its clock starts is not counted).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1 (got {repeats})")
    sides: dict[str, tuple[Callable[[], float], list[float]]] = {
        "subject": (subject, []),
        "baseline": (baseline, []),
    }
    first: list[str] = []
    for round_ in range(repeats):
        order = ("subject", "baseline") if round_ % 2 == 0 else ("baseline", "subject")
        first.append(order[0])
        for side in order:
            action, figures = sides[side]
            figures.append(action())
    return Paired(tuple(sides["subject"][1]), tuple(sides["baseline"][1]), tuple(first))


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a side's runs, and how many there were."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


@dataclass
class Result:
    """One benchmark's outcome: ``ratio`` = subject / baseline, met when ratio <= goal.

    ``runs`` holds every run of both sides; the ratio is the subject's median over the
    baseline's. A ``goal`` of None reports the ratio without judging it: the result is met on
    its ``absolute`` goals alone (a benchmark whose goal is not a speed).
    """

    name: str
    subject: str
    baseline: str
    runs: Paired
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
    # What the figures are: seconds unless a benchmark counts something else.
    unit: str = "s"

    @property
    def subject_seconds(self) -> float:
        return statistics.median(self.runs.subject)

    @property
    def baseline_seconds(self) -> float:
        return statistics.median(self.runs.baseline)

    @property
    def ratio(self) -> float:
        if self.measure == "throughput":
            return self.baseline_seconds / self.subject_seconds
        return self.subject_seconds / self.baseline_seconds

    @property
    def round_ratios(self) -> tuple[float, ...]:
        """The ratio of each round alone, the same way round as ``ratio``: how much it moves."""
        if self.measure == "throughput":
            return tuple(1 / r if r else float("inf") for r in self.runs.ratios)
        return self.runs.ratios

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
        del record["runs"]
        record.update(
            subject_seconds=self.subject_seconds,
            baseline_seconds=self.baseline_seconds,
            subject_runs=spread(self.runs.subject) | {"each": list(self.runs.subject)},
            baseline_runs=spread(self.runs.baseline) | {"each": list(self.runs.baseline)},
            first=list(self.runs.first),
            ratio=self.ratio,
            ratio_runs=spread(self.round_ratios) | {"each": list(self.round_ratios)},
            goal=self.goal,
            goal_text=self.goal_text,
            met=self.met,
        )
        return record


class NotRun(Exception):
    """A benchmark that cannot run on this machine: why, and what would let it run."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint

    def to_json(self, name: str) -> dict[str, object]:
        return {"name": name, "not_run": self.reason, "hint": self.hint, "met": False}


def require_tool(name: str, package: str, fallback: str | None = None) -> str:
    """The path of an external program a benchmark needs, or ``NotRun`` saying how to get it."""
    found = shutil.which(name) or (fallback if fallback and os.path.exists(fallback) else None)
    if found is None:
        raise NotRun(
            f"{name} is not installed (not on PATH{f' nor at {fallback}' if fallback else ''})",
            hint=f"apt-get install {package}",
        )
    return found


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
def temp_database(label: str, template: TempDatabase | None = None) -> Iterator[TempDatabase]:
    """A fresh database for one measurement, empty or a copy of ``template``; always dropped.

    Raises:
        NotRun: PostgreSQL does not answer at ``BENCH_PGHOST``:``BENCH_PGPORT``.
    """
    name = f"bench_{label}_{os.getpid()}_{next(_counter)}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        dispose_all()  # a template may have no other connection while it is copied
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template.name)
        )
    try:
        _admin(create)
    except psycopg.OperationalError as error:
        raise NotRun(
            f"PostgreSQL does not answer at {HOST}:{PORT}: {str(error).strip()}",
            hint="start PostgreSQL (trust auth for the user), or point BENCH_PGHOST, "
            "BENCH_PGPORT, BENCH_PGUSER and BENCH_PGDATABASE at one",
        ) from error
    try:
        yield TempDatabase(name)
    finally:
        # Stairway caches one engine per URL; close its pooled connections before the drop,
        # and forget this database's engine: kept, every run's engine and its statement cache
        # would grow the heap that the next runs' garbage collections walk.
        dispose_all()
        forget(TempDatabase(name).url)
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


def machine() -> dict[str, object]:
    """What the figures were measured on, so two summaries can be told apart."""
    return {
        "cores": os.cpu_count(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "postgresql": _server_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": _commit(),
    }


def _server_version() -> str:
    try:
        with psycopg.connect(admin_conninfo(), connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return "unknown" if row is None else str(row[0])
    except psycopg.Error as error:
        return f"unreachable: {error}".strip()


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=Path(__file__).resolve().parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def write_summary(
    results: Sequence[Result],
    sizes: Sizes,
    quick: bool,
    not_run: Mapping[str, NotRun] | None = None,
    failed: Mapping[str, str] | None = None,
    scale: Mapping[str, object] | None = None,
) -> Path:
    """The JSON summary: the machine, the sizes, every result with all its runs and goals, and
    with ``--scale`` every size's figures, the processes' peak memory and the growth goals."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "summary.json"
    skipped = [reason.to_json(name) for name, reason in (not_run or {}).items()]
    broken = [{"name": n, "failed": why, "met": False} for n, why in (failed or {}).items()]
    summary = {
        "format": 2,
        "quick": quick,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:],
        "machine": machine(),
        "sizes": asdict(sizes),
        "benchmarks": [r.to_json() for r in results] + skipped + broken,
    }
    if scale is not None:
        summary["scale"] = scale
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path
