"""``guard_cost``: what ``stairway.guard()`` costs a product at start, against a bare query.

The baseline is one ``SELECT 1`` through a pooled connection of the same engine, the very
connect-and-query pattern guard uses, so the ratio shows guard's own overhead (manifest lookup,
reading the bookkeeping rows, the checks). Goal: at most twice a bare round trip.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

import stairway
from bench.harness import Paired, Result, Sizes, alternate, median, temp_database
from stairway.catalog import load_catalog
from stairway.database import dispose_all, engine_for
from stairway.schema import migrator

NAME = "guard_cost"
GOAL = 2.0  # of one SELECT 1 on a pooled connection
SHOP = Path(__file__).resolve().parent.parent / "tests" / "catalogs" / "shop"
VERSION = "2.1.0"
SCHEMA = 6
# ``stairway.guard`` is the function; the module behind it holds the manifest cache.
guard_module = importlib.import_module("stairway.startup")
# guard and SELECT 1 take turns in blocks, so drift on the machine hits both; a block is a run,
# its figure the median per call within it
BLOCKS = 10


def copy_shop(tmp: Path) -> Path:
    target = tmp / "shop"
    shutil.copytree(SHOP, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def select_one(url: str) -> None:
    with engine_for(url).connect() as conn:
        conn.execute(text("SELECT 1"))


def call_guard(url: str, catalog_dir: Path) -> None:
    stairway.guard(url, catalog_dir, VERSION)


def per_call(action: Callable[[], None], calls: int) -> list[float]:
    timings: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return timings


def cold(action: Callable[[], None]) -> float:
    """One call as the first of a fresh process: no pooled connection, no cached manifest."""
    dispose_all()
    guard_module._MANIFESTS.clear()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(sizes: Sizes) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-guard-") as tmp, temp_database("guard") as db:
        catalog_dir = copy_shop(Path(tmp))
        migrator.migrate(engine_for(db.url), load_catalog(catalog_dir), SCHEMA)
        return _measure(db.url, catalog_dir, sizes)


def _measure(url: str, catalog_dir: Path, sizes: Sizes) -> Result:
    def guard() -> None:
        call_guard(url, catalog_dir)

    def baseline() -> None:
        select_one(url)

    guard()  # warm-up: the engine, a pooled connection and the cached manifest exist after it
    baseline()
    guard_times: list[float] = []
    select_times: list[float] = []
    block = max(1, sizes.guard_calls // BLOCKS)

    def guard_block() -> float:
        times = per_call(guard, block)
        guard_times.extend(times)
        return median(times)

    def select_block() -> float:
        times = per_call(baseline, block)
        select_times.extend(times)
        return median(times)

    runs = alternate(guard_block, select_block, BLOCKS)
    cold_guard = [cold(guard) for _ in range(sizes.cold_repeats)]
    cold_select = [cold(baseline) for _ in range(sizes.cold_repeats)]
    return _result(sizes, runs, guard_times, select_times, cold_guard, cold_select)


def _result(
    sizes: Sizes,
    runs: Paired,
    guard_times: list[float],
    select_times: list[float],
    cold_guard: list[float],
    cold_select: list[float],
) -> Result:
    return Result(
        name=NAME,
        subject=f"stairway.guard() x {sizes.guard_calls}, per call (median of a block)",
        baseline=f"SELECT 1 via engine.connect() x {sizes.guard_calls}, per call (median)",
        runs=runs,
        goal=GOAL,
        timings={
            "guard_call_s": guard_times,
            "select1_call_s": select_times,
            "guard_cold_s": cold_guard,
            "select1_cold_s": cold_select,
        },
        details={
            "calls": sizes.guard_calls,
            "blocks": BLOCKS,
            "guard_call_median_s": median(guard_times),
            "select1_call_median_s": median(select_times),
            "guard_total_s": sum(guard_times),
            "select1_total_s": sum(select_times),
            "total_ratio": sum(guard_times) / sum(select_times),
            "guard_cold_median_s": median(cold_guard),
            "select1_cold_median_s": median(cold_select),
        },
    )
