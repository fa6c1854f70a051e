"""A full disk or a failing write mid-upgrade: the example product's upgrade 1.0.0 -> 2.0.0 (its
real service running) meets ENOSPC, EIO or EROFS at each point where it writes and at each step,
first injected (``STAIRWAY_FAULT_ACTION``), then for real on a small tmpfs filled at each step's
start. On SQLite and PostgreSQL.

Every run must end in one of three ways, never in a traceback: exit 1, rolled back (the site
wholly old, serving 1.0.0, maintenance off); exit 2, refused before anything changed; exit 3,
the maintenance state said and the next command named, and that command, run once the fault is
gone, brings the site wholly old or wholly new and serving what it holds. A write the upgrade
can do without (the rates file kept for estimates) may fail and the upgrade still finish (exit
0, the site wholly new). The tally is printed; torn must be 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import prestarted
from example_sites import PRESTARTED, ExampleSite, ExampleSites, example_sites
from stairway import disk, faults
from stairway.backup.restore import SPACE_MARGIN, space_margin
from stairway.faults import FILLER
from stairway.journal import Journal

TARGET = "2.0.0"
OLD = ("1.0.0", "3")  # what the product serves before the upgrade: release and schema level
WORKERS = 4  # scenarios run side by side: most of their time is spent waiting on processes
NEXT = re.compile(r"then `(stairway [^`]+)`")
SAID_MAINTENANCE = re.compile(r"maintenance (is still on|is off|state unknown)")
# What opens this process's engines (and disposes of all of them when done) runs one at a time:
# a dispose from one thread must not drop a connection another thread is reading through.
_ENGINES = threading.Lock()


def new_site(sites: ExampleSites, name: str, running: bool = True) -> ExampleSite:
    with _ENGINES:
        return sites.new(name, running)


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
    """The two whole states an upgrade may leave, the points a clean run passes, its size."""

    old: dict[str, str]
    new: dict[str, str]
    points: list[str]
    firsts: set[int]  # the steps first of their kind (a second hop's schema step adds nothing)
    bytes_used: int


@pytest.fixture(scope="module")
def ending(sites: ExampleSites) -> Ends:
    return reference_run(sites)


def reference_run(sites: ExampleSites) -> Ends:
    """A clean upgrade: the states before and after, the points it passes, its size."""
    reference = sites.new("reference")
    try:
        old = reference.state()
        log = reference.root / "points.trace"
        done = reference.cli("upgrade", "--to", TARGET, STAIRWAY_FAULT_TRACE=str(log))
        assert done.returncode == 0, done.stderr
        points = log.read_text("utf-8").split()
        log.unlink()
        kinds = [s["kind"] for s in Journal(reference.root / "backups").history()[-1].plan["steps"]]
        firsts = {kinds.index(kind) for kind in kinds}
        return Ends(old, reference.state(), points, firsts, _bytes_used(reference.root))
    finally:
        reference.stop()


def begins(ending: Ends) -> list[str]:
    """The start of each step first of its kind."""
    return [f"{step}:begin#1" for step in sorted(ending.firsts)]


def _bytes_used(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


# --- judging one run ----------------------------------------------------------------------------


@dataclass
class Run:
    """One faulted upgrade and what became of it."""

    site: ExampleSite
    ending: Ends
    tally: Counter[str]
    free: Callable[[], None] = lambda: None  # removes the fault's cause (a filler file)

    def judge(self, done: subprocess.CompletedProcess[str]) -> list[str]:
        if "Traceback" in done.stderr:
            self.tally["traceback"] += 1
            return [f"a traceback (exit {done.returncode}): {done.stderr[-600:]}"]
        judged = {0: self._finished, 1: self._rolled_back, 2: self._refused, 3: self._operator}
        if done.returncode not in judged:
            self.tally["other exit"] += 1
            return [f"exit {done.returncode}: {done.stderr[-600:]}"]
        return judged[done.returncode](done.stderr)

    def _finished(self, _said: str) -> list[str]:
        """A write the upgrade may do without (the rates file): it finished anyway."""
        self.tally["finished"] += 1
        return self._whole({"new": self.ending.new})

    def _rolled_back(self, said: str) -> list[str]:
        self.tally["rolled back"] += 1
        problems = self._whole({"old": self.ending.old})
        if "Rolled back" not in said:
            problems.append(f"exit 1 without saying it rolled back: {said[-300:]}")
        health = self.site.health() or {}
        if (str(health.get("release")), str(health.get("schema"))) != OLD:
            problems.append(f"rolled back but serving {health}, not {OLD}")
        return problems

    def _refused(self, _said: str) -> list[str]:
        self.tally["refused"] += 1
        return self._whole({"old": self.ending.old})

    def _operator(self, said: str) -> list[str]:
        self.tally["needs operator"] += 1
        command = NEXT.search(said)
        if not SAID_MAINTENANCE.search(said) or command is None:
            return [f"exit 3 without the maintenance state and the next command: {said[-600:]}"]
        self.free()
        after = _run_exactly(command.group(1))
        if after.returncode != 0:
            self.tally["next command failed"] += 1
            return [f"`{command.group(1)}` exited {after.returncode}: {after.stderr[-600:]}"]
        return self._whole({"old": self.ending.old, "new": self.ending.new})

    def _whole(self, allowed: dict[str, dict[str, str]]) -> list[str]:
        with _ENGINES:
            state = self.site.state()
        if state not in allowed.values():
            self.tally["torn"] += 1
            differ = {
                name: sorted(k for k in want if state.get(k) != want[k])
                for name, want in allowed.items()
            }
            return [f"torn: differs from {differ}"]
        return self._serving(state)

    def _serving(self, state: dict[str, str]) -> list[str]:
        said, problems = self.site.health(), []
        if said is None or (said.get("release"), str(said.get("schema"))) != (
            state["release"],
            state["level"],
        ):
            problems.append(f"serves {said} over {state['release']}/{state['level']}")
        with _ENGINES:
            on = self.site.maintenance()
        if on:
            problems.append("maintenance left on")
        if self.site.stale_holders():
            problems.append(f"stale holders {self.site.stale_holders()}")
        self.tally["served wrong"] += bool(problems)
        return problems


def _run_exactly(command: str) -> subprocess.CompletedProcess[str]:
    """The next command as the error named it, with no fault in the environment."""
    words = shlex.split(command)
    assert words[0] == "stairway"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STAIRWAY_FAULT")}
    if PRESTARTED:  # forked ready-imported, as the commands before it ran
        return prestarted.run(words[1:], environment, timeout=300)
    return subprocess.run(
        [sys.executable, "-m", "stairway", *words[1:]],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_all(jobs: dict[str, Callable[[], list[str]]]) -> dict[str, list[str]]:
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
    return {key: problems for key, future in futures.items() if (problems := future.result())}


def show(capsys: pytest.CaptureFixture[str], what: str, tried: int, tally: Counter[str]) -> None:
    ends = ("rolled back", "needs operator", "refused", "finished", "torn", "served wrong")
    counted = ", ".join(f"{end} {tally[end]}" for end in ends)
    with capsys.disabled():
        print(f"\n  {what}: {tried} points tried: {counted}")


# --- injected errors ----------------------------------------------------------------------------


WRITES = ("before:file-write", "before:rates-write", "before:archive-write", "after:backup")


def injected_points(ending: Ends) -> list[str]:
    """Where a failed write meets the upgrade: each journal record that ends something (a step
    first of its kind done, the plan, an intent, the finish: the work made but not recorded), the
    first of each run of file writes (a release unpacked, config files, rates), the archive's
    write and the backup taken. A failure at a step's start is the full-disk test's part."""
    points = ending.points
    kept = [
        p
        for i, p in enumerate(points)
        if _telling(points[i - 1] if i else "", p, _record_after(points, i), ending)
    ]
    return list(dict.fromkeys(kept))


def _record_after(points: list[str], index: int) -> str:
    """The journal record a write at ``index`` makes: the next record point, not the next point
    (the early backup's own points run in a thread beside the journal's and may fall between)."""
    return next((p for p in points[index + 1 :] if RECORD.match(p)), "")


RECORD = re.compile(r"^(None|\d+):[a-z-]+#")  # "<step>:<event>#n", as the journal names them


def _telling(before: str, point: str, record: str, ending: Ends) -> bool:
    name = point.split("#")[0]
    if name == "before:journal-write":  # a begin record's write fails like the step it begins
        ended, _, event = record.split("#")[0].partition(":")
        return event != "begin" and (ended == "None" or int(ended) in ending.firsts)
    return name in WRITES and before.split("#")[0] != name  # the next of a run adds nothing


def inject(
    sites: ExampleSites, ending: Ends, name: str, point: str, action: str, tally: Counter[str]
) -> list[str]:
    site = new_site(sites, name)
    try:
        done = site.cli("upgrade", "--to", TARGET, fault=point, STAIRWAY_FAULT_ACTION=action)
        (site.root / "upgrade.stderr").write_text(done.stderr, "utf-8")  # for a failure's reader
        tally["tried"] += 1
        return Run(site, ending, tally).judge(done)
    finally:
        site.stop()


@pytest.mark.timeout(900)
def test_an_error_injected_at_each_write_rolls_back_or_names_the_next_command(
    sites: ExampleSites, ending: Ends, capsys: pytest.CaptureFixture[str]
) -> None:
    points = injected_points(ending)
    assert {"before:journal-write#1", "before:file-write#1", "before:archive-write#1"} <= set(
        points
    )
    actions = {p: "enospc" for p in points}
    # the other two errors at a few points
    for point, action in zip(points[1::9], ["eio", "erofs"] * len(points), strict=False):
        actions[f"{point}/{action}"] = action
    tally: Counter[str] = Counter()
    jobs = {
        key: _bound(inject, sites, ending, f"i{n}", key.split("/")[0], action, tally)
        for n, (key, action) in enumerate(actions.items())
    }
    failures = run_all(jobs)
    show(capsys, f"injected errors ({sites.kind})", len(jobs), tally)
    assert not failures, failures
    assert tally["torn"] == tally["traceback"] == tally["other exit"] == 0


def _bound(work: Callable[..., list[str]], *args: object) -> Callable[[], list[str]]:
    return lambda: work(*args)


# --- a real full disk ---------------------------------------------------------------------------


def _require_mount() -> None:
    if os.environ.get("CI") == "true":
        return  # CI runs as root: there the real full disk must be tried
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")


@contextlib.contextmanager
def small_disk(where: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes at ``where``, unmounted however the test ends."""
    where.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size // 1024 + 1}k", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs in CI: {mounted.stderr}")
        pytest.skip(f"mount not permitted here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_at(
    sites: ExampleSites, ending: Ends, name: str, point: str, tally: Counter[str]
) -> list[str]:
    """The whole site on a tmpfs with room for itself and one backup, filled at ``point``."""
    disk = sites.root / f"{name}-disk"
    # the site with one backup, what verify asks to be free for the next (PostgreSQL's dump is
    # estimated from the database's size, generously), and what a restore stages plus the
    # margin it keeps free: once the filler is gone, the rollback has room
    with small_disk(disk, 2 * ending.bytes_used + SPACE_MARGIN + (8 << 20)):
        site = new_site(sites, f"{name}-disk/site")
        try:
            filler = site.root / FILLER
            done = site.cli(
                "upgrade", "--to", TARGET, fault=point, STAIRWAY_FAULT_ACTION=f"fill:{site.root}"
            )
            (sites.root / f"{name}.stderr").write_text(done.stderr, "utf-8")  # for a reader
            tally["tried"] += 1
            return Run(site, ending, tally, lambda: filler.unlink(missing_ok=True)).judge(done)
        finally:
            filler.unlink(missing_ok=True)
            site.stop()


@pytest.mark.timeout(900)
def test_a_disk_filled_at_each_step_rolls_back_or_names_the_next_command(
    sites: ExampleSites, ending: Ends, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_mount()
    points = begins(ending)
    tally: Counter[str] = Counter()
    jobs = {
        point: _bound(fill_at, sites, ending, f"f{n}", point, tally)
        for n, point in enumerate(points)
    }
    failures = run_all(jobs)
    show(capsys, f"full disk ({sites.kind})", len(jobs), tally)
    assert not failures, failures
    assert tally["torn"] == tally["traceback"] == tally["other exit"] == 0


def test_a_backup_on_a_full_disk_ends_cleanly_with_no_partial_archive(sites: ExampleSites) -> None:
    _require_mount()
    site = sites.new("full-backup", running=False)
    backups = site.root / "backups"
    shutil.rmtree(backups, ignore_errors=True)
    with small_disk(backups, 1 << 20):
        filler = faults.fill(backups)  # not a page left
        taken = site.cli("backup")
        left = [p.name for p in backups.iterdir() if p.name not in (".lock", ".site.lock", FILLER)]
        filler.unlink()
    assert taken.returncode in (2, 3), taken.stderr
    assert "Traceback" not in taken.stderr
    assert "error:" in taken.stderr and str(backups) in taken.stderr
    assert left == [], "no partial archive nor scratch directory is left"


def test_a_small_backup_disk_filled_mid_upgrade_rolls_back_once_freed(
    sites: ExampleSites,
) -> None:
    """backup_dir on a small disk that holds the backup many times over (2 MB; on PostgreSQL
    12 MB, as verify asks room for a generous estimate of the dump), filled after the backup
    record: exit 3 naming the next command, which rolls back once the filler is gone. The restore
    keeps free what it stages (at least 1 MiB), not a fixed 16 MiB no such disk ever has."""
    _require_mount()
    site = new_site(sites, "small-backups")
    backups = site.root / "backups"
    shutil.rmtree(backups, ignore_errors=True)
    try:
        with small_disk(backups, (2 if sites.kind == "sqlite" else 12) << 20):
            done = site.cli(
                "upgrade", "--to", TARGET, fault="1:begin", STAIRWAY_FAULT_ACTION=f"fill:{backups}"
            )
            assert "Traceback" not in done.stderr
            assert done.returncode == 3, done.stderr
            assert SAID_MAINTENANCE.search(done.stderr), done.stderr
            command = NEXT.search(done.stderr)
            assert command is not None and "rollback" in command.group(1), done.stderr
            (backups / FILLER).unlink()
            after = _run_exactly(command.group(1))
            assert after.returncode == 0, after.stderr
            health = site.health() or {}
            assert (str(health.get("release")), str(health.get("schema"))) == OLD, health
            with _ENGINES:
                assert not site.maintenance()
            assert site.stale_holders() == []
    finally:
        site.stop()


def test_the_restore_margin_follows_what_it_stages() -> None:
    assert space_margin(0) == 1 << 20
    assert space_margin(300_000) == 1 << 20
    assert space_margin(5 << 20) == 5 << 20
    assert space_margin(1 << 30) == SPACE_MARGIN


# --- the fault hooks and the reading of a failed write, on their own -----------------------------


@pytest.mark.parametrize(("action", "code"), [("enospc", 28), ("eio", 5), ("erofs", 30)])
def test_a_fault_action_raises_that_error_at_the_named_point_only(
    monkeypatch: pytest.MonkeyPatch, action: str, code: int
) -> None:
    monkeypatch.setenv(faults.FAULT, "before:file-write#2")
    monkeypatch.setenv(faults.ACTION, action)
    monkeypatch.setattr(faults, "_reached", Counter())
    faults.point("before:file-write")  # the first time passes
    with pytest.raises(OSError) as raised:
        faults.point("before:file-write")
    assert raised.value.errno == code


def test_unset_fault_points_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.FAULT, raising=False)
    monkeypatch.delenv(faults.TRACE, raising=False)
    monkeypatch.setenv(faults.ACTION, "enospc")  # without a point named, no action is taken
    monkeypatch.setattr(faults, "_reached", Counter())
    faults.point("before:journal-write")
    assert faults._reached == Counter(), "not even counted"


def test_a_write_failed_for_the_disk_is_found_in_an_error_chain(tmp_path: Path) -> None:
    try:
        try:
            raise OSError(28, "No space left on device", str(tmp_path / "x.journal"))
        except OSError as inner:
            raise RuntimeError("the step failed") from inner
    except RuntimeError as outer:
        found = disk.trouble(outer)
    assert found is not None and found.advice(Path("/")) == f"free space in {tmp_path}"
    said = disk.trouble(Exception("(sqlite3.OperationalError) database or disk is full"))
    assert said is not None and said.code == 28
    assert disk.trouble(OSError(2, "No such file or directory")) is None
    assert "writable" in disk.DiskTrouble(30).advice(tmp_path)
