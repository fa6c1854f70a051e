"""A full disk or a failing write while ``stairway restore`` (and the restore inside ``stairway
rollback``) runs: the example product (its real service running) restored from a backup taken
before its database and data directory changed, with ENOSPC injected at each point the restore
passes, then once on a real small tmpfs filled once the product is stopped. On SQLite and
PostgreSQL.

A failure before the first live change leaves the site as it was: the product started again,
exit 2 saying nothing was changed and which directory to free, nothing staged left behind. A
failure after it exits 3 naming ``stairway restore ID --yes --site S``, which then brings the
site wholly to the backup. Either way the product serves what the database holds.
"""

from __future__ import annotations

import errno
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from example_sites import ExampleSite, ExampleSites, example_sites
from stairway import context, disk
from stairway.backup.restore import SPACE_MARGIN
from stairway.faults import FILLER
from stairway.recovery import RESTORING
from test_full_disk import (
    _ENGINES,
    NEXT,
    _bound,
    _require_mount,
    _run_exactly,
    new_site,
    run_all,
    small_disk,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.heavy,
]
FIRST_LIVE = "before:db-swap#1"  # the first point of the swaps: everything before it is staging
LEFT = (".*.restoring", ".*.restore-*", ".restore-*", RESTORING)  # what staging may leave


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def sites(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExampleSites]:
    yield from example_sites(request, tmp_path_factory)


@dataclass(frozen=True)
class Prepared:
    """A running site with a backup taken, then changed: the states before and after restore."""

    site: ExampleSite
    backup: str
    live: dict[str, str]  # as it is now: what a refused restore must leave
    restored: dict[str, str]  # as the backup holds it


def prepare(sites: ExampleSites, name: str) -> Prepared:
    site = new_site(sites, name)
    taken = site.cli("backup", "--json")
    assert taken.returncode == 0, taken.stderr
    with _ENGINES:
        restored = site.state()
        ctx = context.open_context(site.site, None)
        with ctx.engine.begin() as conn:
            conn.execute(text("DELETE FROM users WHERE id % 7 = 0"))
        ctx.engine.dispose()
    (site.root / "data" / "avatars" / "user1.png").write_bytes(b"changed since the backup")
    with _ENGINES:
        live = site.state()
    assert live != restored
    return Prepared(site, orjson.loads(taken.stdout)["id"], live, restored)


def restore_points(sites: ExampleSites) -> list[str]:
    """Every point a clean restore passes, numbered."""
    prepared = prepare(sites, "trace")
    try:
        trace = prepared.site.root / "points.trace"
        done = prepared.site.cli(
            "restore", prepared.backup, "--yes", STAIRWAY_FAULT_TRACE=str(trace)
        )
        assert done.returncode == 0, done.stderr
        with _ENGINES:
            assert prepared.site.state() == prepared.restored
        return trace.read_text("utf-8").split()
    finally:
        prepared.site.stop()


# --- judging ------------------------------------------------------------------------------------


def serving(site: ExampleSite, state: dict[str, str]) -> list[str]:
    """The product serves what the database holds; maintenance off; no stale holders."""
    problems = []
    said = site.health() or {}
    if (said.get("release"), str(said.get("schema"))) != (state["release"], state["level"]):
        problems.append(f"serves {said} over {state['release']}/{state['level']}")
    with _ENGINES:
        if site.maintenance():
            problems.append("maintenance left on")
    if site.stale_holders():
        problems.append(f"stale holders {site.stale_holders()}")
    return problems


def leftovers(site: ExampleSite) -> list[str]:
    found = [p for pattern in LEFT for p in site.root.rglob(pattern)]
    return [str(p.relative_to(site.root)) for p in found]


def judge_refused(
    prepared: Prepared, done: subprocess.CompletedProcess[str], directory: str | None
) -> list[str]:
    """Exit 2: nothing changed, the product serving again, nothing staged left behind."""
    site, said = prepared.site, done.stderr
    if done.returncode != 2 or "Traceback" in said:
        return [f"exit {done.returncode}, not 2: {said[-800:]}"]
    problems = [] if "Nothing was changed" in said else [f"not said unchanged: {said[-400:]}"]
    if directory is not None and f"free space in {directory}," not in said:
        problems.append(f"the hint does not name {directory}: {said[-400:]}")
    if f"stairway restore {prepared.backup} --yes --site {site.site}" not in said:
        problems.append(f"the command to run again is not named: {said[-400:]}")
    with _ENGINES:
        if site.state() != prepared.live:
            problems.append("the site changed")
    if leftovers(site):
        problems.append(f"left behind: {leftovers(site)}")
    return problems + serving(site, prepared.live)


def judge_part_way(prepared: Prepared, done: subprocess.CompletedProcess[str]) -> list[str]:
    """Exit 3 naming the restore; intent kept until that restore, run again, makes it whole."""
    site, said = prepared.site, done.stderr
    if done.returncode != 3 or "Traceback" in said:
        return [f"exit {done.returncode}, not 3: {said[-800:]}"]
    command = NEXT.search(said)
    wanted = f"stairway restore {prepared.backup} --yes --site {site.site}"
    if command is None or command.group(1) != wanted:
        return [f"exit 3 without `{wanted}`: {said[-600:]}"]
    if not (site.root / "backups" / RESTORING).exists():
        return ["no intent record left for the next run"]
    again = _run_exactly(command.group(1))
    if again.returncode != 0:
        return [f"`{wanted}` exited {again.returncode}: {again.stderr[-600:]}"]
    with _ENGINES:
        if site.state() != prepared.restored:
            return ["not wholly restored by the command named"]
    problems = [f"left behind: {leftovers(site)}"] if leftovers(site) else []
    return problems + serving(site, prepared.restored)


def expected_directory(sites: ExampleSites, site: ExampleSite, point: str) -> str | None:
    """The directory the hint must name for an error injected at ``point`` with no file name."""
    kind = sites.kind
    if point == "before:stage-write#1":  # unpacking, into backup_dir
        return str(site.root / "backups")
    if point == "before:stage-write#2":  # the database beside the live one
        return str(site.root) if kind == "sqlite" else "the PostgreSQL server's data directory"
    if point.startswith("before:stage-write"):  # a config file beside its own
        return str(site.root / "etc")
    if point == "before:file-write#1":  # the intent record
        return str(site.root / "backups")
    return None


def inject(
    sites: ExampleSites, name: str, point: str, staging: bool, tally: Counter[str]
) -> list[str]:
    prepared = prepare(sites, name)
    try:
        done = prepared.site.cli(
            "restore", prepared.backup, "--yes", fault=point, STAIRWAY_FAULT_ACTION="enospc"
        )
        tally["refused" if done.returncode == 2 else f"exit {done.returncode}"] += 1
        if staging:
            return judge_refused(prepared, done, expected_directory(sites, prepared.site, point))
        return judge_part_way(prepared, done)
    finally:
        prepared.site.stop()


@pytest.mark.timeout(900)
def test_an_error_at_each_restore_point_refuses_unchanged_or_names_the_restore(
    sites: ExampleSites, capsys: pytest.CaptureFixture[str]
) -> None:
    points = restore_points(sites)
    assert "before:stage-write#1" in points and FIRST_LIVE in points
    live_from = points.index(FIRST_LIVE)
    tally: Counter[str] = Counter()
    jobs: dict[str, Callable[[], list[str]]] = {
        point: _bound(inject, sites, f"r{n}", point, n < live_from, tally)
        for n, point in enumerate(points)
    }
    failures = run_all(jobs)
    with capsys.disabled():
        print(f"\n  restore ({sites.kind}): {len(jobs)} points: {dict(tally)}")
    assert not failures, failures


def test_a_restore_meeting_a_really_full_disk_starts_the_product_again(
    sites: ExampleSites,
) -> None:
    """The site on a small tmpfs, filled once the product is stopped: the copy beside the live
    database (SQLite) or a config file's (PostgreSQL) fails for real. Exit 2 naming that
    directory, the product serving the unchanged site; once freed, the restore runs through."""
    _require_mount()
    disk_dir = sites.root / "real-disk"
    with small_disk(disk_dir, 4 * (8 << 20) + SPACE_MARGIN):
        prepared = prepare(sites, "real-disk/site")
        site = prepared.site
        try:
            done = site.cli(
                "restore",
                prepared.backup,
                "--yes",
                fault="after:service-stop",
                STAIRWAY_FAULT_ACTION=f"fill:{site.root}",
            )
            (site.root / FILLER).unlink(missing_ok=True)
            where = str(site.root) if sites.kind == "sqlite" else str(site.root / "etc")
            assert judge_refused(prepared, done, where) == []
            again = site.cli("restore", prepared.backup, "--yes")
            assert again.returncode == 0, again.stderr
            with _ENGINES:
                assert site.state() == prepared.restored
            assert serving(site, prepared.restored) == []
        finally:
            (site.root / FILLER).unlink(missing_ok=True)
            site.stop()


def finished_upgrade(sites: ExampleSites, name: str) -> tuple[ExampleSite, dict[str, str]]:
    site = new_site(sites, name)
    with _ENGINES:
        old = site.state()
    done = site.cli("upgrade", "--to", "2.0.0")
    assert done.returncode == 0, done.stderr
    return site, old


def test_rolling_back_a_finished_upgrade_on_a_full_disk_serves_the_new_release_again(
    sites: ExampleSites,
) -> None:
    """The rollback's restore fails while staging the database: exit 2, the site wholly at
    2.0.0 as before, ``current`` still naming it, the product serving it."""
    site, _ = finished_upgrade(sites, "rollback-staging")
    try:
        with _ENGINES:
            new = site.state()
        done = site.cli(
            "rollback", "--yes", fault="before:stage-write#2", STAIRWAY_FAULT_ACTION="enospc"
        )
        assert "Traceback" not in done.stderr
        assert done.returncode == 2, done.stderr
        assert "Nothing was changed" in done.stderr
        assert f"`stairway rollback --yes --site {site.site}`" in done.stderr
        with _ENGINES:
            assert site.state() == new
        assert serving(site, new) == []
        assert leftovers(site) == []
    finally:
        site.stop()


def test_a_rollback_failing_once_it_swaps_names_the_rollback_that_finishes_it(
    sites: ExampleSites,
) -> None:
    site, old = finished_upgrade(sites, "rollback-swapping")
    try:
        done = site.cli(
            "rollback", "--yes", fault="before:data-swap", STAIRWAY_FAULT_ACTION="enospc"
        )
        assert "Traceback" not in done.stderr
        assert done.returncode == 3, done.stderr
        command = NEXT.search(done.stderr)
        assert command is not None, done.stderr
        assert command.group(1) == f"stairway rollback --yes --site {site.site}"
        again = _run_exactly(command.group(1))
        assert again.returncode == 0, again.stderr
        with _ENGINES:
            assert site.state() == old
        assert serving(site, old) == []
        assert leftovers(site) == []
    finally:
        site.stop()


def test_a_full_disk_names_the_copy_s_destination_not_its_source(tmp_path: Path) -> None:
    copied = OSError(errno.ENOSPC, "No space left on device", "/backups/a", None, "/live/b")
    found = disk.trouble(copied)
    assert found is not None and found.advice(tmp_path) == "free space in /live"
    alone = disk.trouble(OSError(errno.ENOSPC, "No space left on device"))
    assert alone is not None and alone.advice(tmp_path) == f"free space in {tmp_path}"
