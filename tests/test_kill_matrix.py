"""The kill matrix: the example product's upgrade 1.0.0 -> 2.0.0 (through the required stop
1.0.4), with its real service running, killed with SIGKILL immediately before and immediately
after every side effect, then recovered separately by ``upgrade --resume`` and by ``rollback``;
and every rollback killed at each of its own side effects, then run again. On SQLite and
PostgreSQL.

After each recovery the site must be wholly old or wholly new (digests of the product's rows,
config files, data directory, the release recorded and the one ``current`` names), the running
service must say the release and schema level the database holds, no process may hold a replaced
database file, and maintenance must be off. The tally is printed; torn, rows lost and
served-wrong must be 0.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from example_sites import ExampleSite, ExampleSites, example_sites
from stairway.journal import ACTIVE

TARGET = "2.0.0"
WORKERS = 3  # scenarios run side by side: most of their time is spent waiting on processes


# Scenarios run in threads that share the process's engine cache: one thread's dispose_all()
# may drop a pooled connection another thread's engine opened to its own scratch database.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.heavy,
]


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def sites(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExampleSites]:
    yield from example_sites(request, tmp_path_factory)


@dataclass(frozen=True)
class Ends:
    """The two whole states a recovery may reach, and their row counts."""

    old: dict[str, str]
    new: dict[str, str]
    old_rows: int
    new_rows: int


def trace(site: ExampleSite, *args: str) -> list[str]:
    """Every kill point one clean run of ``args`` passes, in order."""
    log = site.root / "points.trace"
    done = site.cli(*args, STAIRWAY_FAULT_TRACE=str(log))
    assert done.returncode == 0, done.stderr
    return log.read_text("utf-8").split()


def distinct(points: list[str]) -> list[str]:
    """The points that differ in what has happened: each step begun (its side effect not yet
    made) and each side effect made (not yet journaled), plus the plan, intents and the end.
    A record written right after another with nothing done between adds no state."""
    kept: list[str] = []
    previous = ""
    for point in points:
        name = point.split("#")[0]
        begin = name.endswith(":begin")
        after = name.startswith("after:") and not previous.startswith("after:")
        if begin or after or name.startswith("None:") or name.startswith("between:"):
            kept.append(point)
        previous = name
    return kept


def ends(sites: ExampleSites) -> tuple[Ends, list[str]]:
    reference = sites.new(f"reference-{uuid.uuid4().hex[:8]}")
    try:
        old, old_rows = reference.state(), reference.rows()
        points = trace(reference, "upgrade", "--to", TARGET)
        new, new_rows = reference.state(), reference.rows()
    finally:
        reference.stop()
    return Ends(old, new, old_rows, new_rows), points


def judge(site: ExampleSite, how: str, ending: Ends, tally: Counter[str]) -> list[str]:
    """Count what the recovered site is; the problems found, for the assertion message."""
    problems = []
    state = site.state()
    want, rows = (
        (ending.new, ending.new_rows) if how == "resumed" else (ending.old, ending.old_rows)
    )
    if state != want:
        tally["torn"] += 1
        problems.append(
            f"not wholly {'new' if how == 'resumed' else 'old'}: "
            f"{sorted(k for k in want if state.get(k) != want[k])}"
        )
    lost = max(0, rows - site.rows())
    tally["rows lost"] += lost
    said = site.health()
    if (
        said is None
        or said.get("release") != state["release"]
        or str(said.get("schema")) != state["level"]
        or site.stale_holders()
    ):
        tally["served-wrong"] += 1
        problems.append(
            f"serves {said} over {state['release']}/{state['level']}, "
            f"stale holders {site.stale_holders()}"
        )
    if site.maintenance():
        tally["maintenance left on"] += 1
        problems.append("maintenance still on")
    tally[how] += 1
    return problems


def kill_and_recover(
    sites: ExampleSites, name: str, point: str, how: str, ending: Ends, tally: Counter[str]
) -> list[str]:
    site = sites.new(name)
    try:
        killed = site.cli("upgrade", "--to", TARGET, fault=point)
        if killed.returncode != -9:
            return [f"not killed ({killed.returncode}: {killed.stderr[-300:]})"]
        tally["tried"] += 1
        if not (site.root / "backups" / ACTIVE).exists():
            return ["no active journal after the kill"]
        args = ("upgrade", "--resume") if how == "resumed" else ("rollback",)
        recovered = site.cli(*args)
        if recovered.returncode != 0:
            tally["failed"] += 1
            return [f"{' '.join(args)} exited {recovered.returncode}: {recovered.stderr[-400:]}"]
        return judge(site, how, ending, tally)
    finally:
        site.stop()


def run_all(jobs: list[tuple[str, str, str]], work: object) -> dict[str, list[str]]:
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {key: pool.submit(work, *job) for key, *job in jobs}  # type: ignore[operator]
    return {key: problems for key, future in futures.items() if (problems := future.result())}


@pytest.mark.timeout(1800)
def test_kill_before_and_after_every_side_effect_then_resume_or_roll_back(
    sites: ExampleSites, capsys: pytest.CaptureFixture[str]
) -> None:
    ending, traced = ends(sites)
    points = distinct(traced)
    assert len(points) >= 35, points
    assert {"after:release-swap#1", "None:intent#1", "after:service-start#1"} <= set(points)
    tally: Counter[str] = Counter()
    recoveries = ("resumed", "rolled back")
    jobs = [
        (f"{point} {how}", f"u{n}-{how[:3]}", point, how)
        for n, point in enumerate(points)
        for how in recoveries
    ]
    failures = run_all(
        jobs, lambda name, point, how: kill_and_recover(sites, name, point, how, ending, tally)
    )
    with capsys.disabled():
        print(f"\n  kill matrix ({sites.kind}): {len(points)} points, {dict(tally)}")
    assert not failures, failures
    assert tally["tried"] == len(jobs)
    assert tally["torn"] == tally["rows lost"] == tally["served-wrong"] == 0


def rollback_killed(
    sites: ExampleSites, name: str, point: str, ending: Ends, tally: Counter[str]
) -> list[str]:
    site = sites.new(name)
    try:
        assert site.cli("upgrade", "--to", TARGET, fault="after:service-start").returncode == -9
        killed = site.cli("rollback", fault=point)
        if killed.returncode != -9:
            return [f"rollback not killed ({killed.returncode}: {killed.stderr[-300:]})"]
        tally["tried"] += 1
        again = site.cli("rollback")
        if again.returncode != 0:
            tally["failed"] += 1
            return [f"rollback again exited {again.returncode}: {again.stderr[-400:]}"]
        return judge(site, "rolled back", ending, tally)
    finally:
        site.stop()


@pytest.mark.timeout(900)
def test_a_rollback_killed_at_each_of_its_side_effects_finishes_when_run_again(
    sites: ExampleSites, capsys: pytest.CaptureFixture[str]
) -> None:
    ending, _ = ends(sites)
    probe = sites.new("probe")
    try:
        assert probe.cli("upgrade", "--to", TARGET, fault="after:service-start").returncode == -9
        points = [p for p in distinct(trace(probe, "rollback")) if not p.startswith("None:")]
    finally:
        probe.stop()
    assert {"after:db-swap#1", "after:data-swap#1", "after:service-stop#1"} <= set(points)
    tally: Counter[str] = Counter()
    jobs = [(point, f"r{n}", point) for n, point in enumerate(points)]
    failures = run_all(jobs, lambda name, point: rollback_killed(sites, name, point, ending, tally))
    with capsys.disabled():
        print(f"\n  rollback kills ({sites.kind}): {len(points)} points, {dict(tally)}")
    assert not failures, failures
    assert tally["torn"] == tally["rows lost"] == tally["served-wrong"] == 0
