"""Post-upgrade tasks of a release: validated when the catalog loads, run as journaled steps
(offline ones, before the start) or handed to the background (serving ones, run by
``stairway background run``), rolled back or reported when they fail, never run twice by a
resume, and shown by plan --estimate and verify. The background runner's own behaviour is in
test_background_tasks.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Connection, Engine, inspect, text

from cli_runner import stairway
from stairway import context, operations, task_runs
from stairway.database import dispose_all
from stairway.journal import ACTIVE
from stairway.operations import task_watch
from stairway.operations import tasks as run_tasks
from stairway.tasks import Task, TaskKind, TaskProgress, reindex_fraction

TASKS = """
[[release.task]]
name = "orders-index"
reindex = "orders_customer"
serving = {serving}

[[release.task]]
name = "marker"
command = [{python}, "-c", "{code}"]
serving = false
"""
WRITE = "open('marker', 'a').write('x')"
FAIL = "import sys; sys.exit(4)"


def with_tasks(catalog: Path, body: str) -> None:
    """Declare ``body``'s tasks on release 2.0.0 of the shop catalog."""
    manifest = catalog / "stairway.toml"
    text_ = manifest.read_text("utf-8")
    head, tail = text_.split('[[release]]\nversion = "2.1.0"')
    manifest.write_text(head + body + '\n[[release]]\nversion = "2.1.0"' + tail, "utf-8")


def tasks(serving: str = "true", code: str = WRITE) -> str:
    return TASKS.format(serving=serving, python=orjson.dumps(sys.executable).decode(), code=code)


@pytest.fixture
def site(site_file: Path, shop_catalog: Path) -> Path:
    text_ = site_file.read_text("utf-8") + 'data_dir = "data"\nbackup_dir = "backups"\n'
    site_file.write_text(text_, "utf-8")
    (site_file.parent / "data").mkdir()
    operations.init(context.open_context(site_file, None), "1.0.0")
    dispose_all()
    return site_file


def marks(site: Path) -> str:
    path = site.parent / "marker"
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize(
    ("entry", "cause"),
    [
        ('name = "t"\nserving = true\nreindex = "ix"\ncommand = ["a"]', "exactly one of"),
        ('name = "t"\nserving = true', "exactly one of"),
        ('name = "t"\nserving = true\nreindex = "ix"\nshell = "x"', "unknown key"),
        ('name = "t"\nserving = true\nreindex = "ix"\ntimeout = 5', "applies to a `command`"),
        ('name = "t"\nreindex = "ix"', "missing key"),
        ('name = "T x"\nserving = true\nreindex = "ix"', "release[4].task[1].name"),
        ('name = "t"\nserving = true\ncommand = []', "release[4].task[1].command"),
        ('name = "t"\nserving = true\nreindex = "ix\\u0001"', "control character"),
    ],
)
def test_a_malformed_task_is_refused_naming_file_and_key(
    shop_catalog: Path, entry: str, cause: str
) -> None:
    with_tasks(shop_catalog, f"\n[[release.task]]\n{entry}\n")
    code, out, err = stairway("check", "--catalog", str(shop_catalog), "--json")
    assert code == 2 and "Traceback" not in out + err
    problems = orjson.loads(out)["problems"]
    assert any(cause in p["cause"] and "release[4].task" in p["cause"] for p in problems), problems
    assert all(p["file"].endswith("stairway.toml") and p["fix"] for p in problems)


def test_a_task_named_twice_is_refused(shop_catalog: Path) -> None:
    twice = '\n[[release.task]]\nname = "t"\nserving = true\nreindex = "ix"\n' * 2
    with_tasks(shop_catalog, twice)
    code, out, _ = stairway("check", "--catalog", str(shop_catalog), "--json")
    assert code == 2 and "declared twice" in out


def test_the_upgrade_runs_the_offline_task_and_hands_the_serving_one_to_the_background(
    site: Path, shop_catalog: Path
) -> None:
    with_tasks(shop_catalog, tasks(serving="true"))
    code, out, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site), "--json")
    assert code == 0, err
    said = orjson.loads(out)
    steps = [s["step"] for s in said["steps"]]
    assert steps.index("task marker (2.0.0)") < steps.index("start")
    assert steps.index("maintenance-off") < steps.index("task orders-index (2.0.0)")
    assert steps[-1] == "audit" and marks(site) == "x"
    assert said["background"] == ["orders-index (2.0.0)"]
    code, out, _ = stairway("status", "--site", str(site), "--json")
    assert [(t["name"], t["state"]) for t in orjson.loads(out)["tasks"]] == [
        ("orders-index", "queued")
    ]
    code, out, err = stairway("background", "run", "--site", str(site), "--json")
    assert code == 0, err
    [ran] = orjson.loads(out)["tasks"]
    assert (ran["name"], ran["state"]) == ("orders-index", "done") and ran["ran_s"] >= 0
    ctx = context.open_context(site, None)
    with ctx.engine.connect() as conn:
        if ctx.engine.dialect.name == "postgresql":
            valid = conn.execute(
                text(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname LIKE 'orders_customer%'"
                )
            ).scalars()
            assert list(valid) == [True], "one index, valid, and no leftover copy"
        else:
            assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    dispose_all()


def test_a_failing_offline_task_rolls_the_site_back_whole(site: Path, shop_catalog: Path) -> None:
    with_tasks(shop_catalog, tasks(serving="false", code=FAIL))
    code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 1, err
    assert "task marker of release 2.0.0" in err and "exited with 4" in err
    assert "Rolled back" in err
    ctx = context.open_context(site, None)
    assert str(context.current_version(ctx)) == "1.0.0"
    columns = [c["name"] for c in inspect(ctx.engine).get_columns("customers")]
    dispose_all()
    assert "email" not in columns and "note" in columns
    assert not (site.parent / "backups" / ACTIVE).exists()


def new_site(tmp_path: Path, database: str, catalog: Path) -> Path:
    """A site on ``database`` at release 1.0.0 of ``catalog``, with a data and a backup dir."""
    site_file = tmp_path / "site.toml"
    site_file.write_text(
        f'[site]\ndatabase = "{database}"\ncatalog = "{catalog}"\n'
        'data_dir = "data"\nbackup_dir = "backups"\n',
        "utf-8",
    )
    (tmp_path / "data").mkdir()
    operations.init(context.open_context(site_file, None), "1.0.0")
    dispose_all()
    return site_file


@pytest.fixture
def sqlite_site(tmp_path: Path, sqlite_database: str, shop_catalog: Path) -> Path:
    return new_site(tmp_path, sqlite_database, shop_catalog)


def test_a_failing_background_task_is_recorded_with_the_command_to_retry_it(
    sqlite_site: Path, shop_catalog: Path
) -> None:
    body = tasks().replace('reindex = "orders_customer"', 'reindex = "no_such_index"')
    with_tasks(shop_catalog, body)
    code, out, err = stairway("upgrade", "--to", "2.0.0", "--site", str(sqlite_site))
    assert code == 0, err
    assert "handed to the background: task orders-index (2.0.0)" in out
    assert "`stairway background run` runs them" in out
    code, _, err = stairway("background", "run", "--site", str(sqlite_site))
    assert code == 3 and "no_such_index" in err
    assert "hint: fix the cause, then `stairway tasks run orders-index --release 2.0.0`" in err
    ctx = context.open_context(sqlite_site, None)
    assert str(context.current_version(ctx)) == "2.0.0", "the release is live: not rolled back"
    dispose_all()
    code, _, err = stairway("tasks", "run", "orders-index", "--site", str(sqlite_site))
    assert code == 1 and "no_such_index" in err and "hint:" in err
    code, out, _ = stairway("status", "--site", str(sqlite_site), "--json")
    [failed] = orjson.loads(out)["tasks"]
    assert failed["state"] == "failed" and "no_such_index" in failed["error"]
    assert failed["retry"] == "stairway tasks run orders-index --release 2.0.0"
    assert orjson.loads(out)["next"]["commands"] == [failed["retry"]]
    code, out, _ = stairway("status", "--site", str(sqlite_site))
    said = " ".join(out.split())  # the terminal's width wraps it
    assert "retry with `stairway tasks run orders-index --release 2.0.0`" in said


@pytest.mark.parametrize("point", ["after:task", "None:task#2"])
def test_a_kill_in_the_command_step_resumes_without_running_it_twice(
    sqlite_site: Path, shop_catalog: Path, point: str
) -> None:
    with_tasks(shop_catalog, tasks(serving="true"))
    command = [sys.executable, "-m", "stairway", "upgrade", "--to", "2.0.0"]
    env = {**os.environ, "STAIRWAY_FAULT": point}
    killed = subprocess.run([*command, "--site", str(sqlite_site)], env=env, check=False)
    assert killed.returncode == -9
    assert marks(sqlite_site) == "x"
    code, _, err = stairway("upgrade", "--resume", "--site", str(sqlite_site))
    assert code == 0, err
    assert marks(sqlite_site) == "x", "the command ran once"


def test_a_kill_while_the_command_ran_is_not_run_again_blindly(
    sqlite_site: Path, shop_catalog: Path
) -> None:
    with_tasks(shop_catalog, tasks(serving="true"))
    command = [sys.executable, "-m", "stairway", "upgrade", "--to", "2.0.0"]
    env = {**os.environ, "STAIRWAY_FAULT": "after:task-command"}
    assert subprocess.run([*command, "--site", str(sqlite_site)], env=env).returncode == -9
    code, _, err = stairway("upgrade", "--resume", "--site", str(sqlite_site))
    assert code == 1 and "not declared idempotent" in err and "Rolled back" in err
    assert marks(sqlite_site) == "x"


def test_plan_estimate_and_verify_show_the_tasks(sqlite_site: Path, shop_catalog: Path) -> None:
    with_tasks(shop_catalog, tasks(serving="true"))
    code, out, err = stairway(
        "plan", "--to", "2.0.0", "--estimate", "--site", str(sqlite_site), "--json"
    )
    assert code == 0, err
    found = [s for s in orjson.loads(out)["steps"] if s["kind"] == "task"]
    assert [(s["task"]["name"], s["task"]["kind"], s["task"]["serving"]) for s in found] == [
        ("marker", "command", False),
        ("orders-index", "reindex", True),
    ]
    assert found[0]["basis"] == "unknown" and found[1]["basis"] == "calibration"
    assert found[1]["downtime"] is False
    code, out, _ = stairway("plan", "--to", "2.0.0", "--estimate", "--site", str(sqlite_site))
    assert "reindex orders_customer, serving" in out
    code, out, err = stairway("verify", "--to", "2.0.0", "--site", str(sqlite_site), "--json")
    assert code == 0, err
    said = [f["message"] for f in orjson.loads(out)["findings"] if f["topic"] == "tasks"]
    assert len(said) == 2 and "reindex orders_customer after the start" in said[0]


REINDEX = """
[[release.task]]
name = "orders-index"
reindex = "orders_customer"
serving = true
"""
SESSION = "stairway task 2.0.0/orders-index"
WAITING = "waiting for writers before build"  # where a writer holding the table keeps a reindex
INDEXES = """
SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relname LIKE 'orders!_customer%' ESCAPE '!' ORDER BY c.relname
"""


@pytest.fixture
def pg_site(tmp_path: Path, pg_database: str, shop_catalog: Path) -> Path:
    return new_site(tmp_path, pg_database, shop_catalog)


def until(found: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Wait for a state another process reaches (no fixed sleep: the state is what is awaited)."""
    deadline = time.monotonic() + seconds
    while not found():
        assert time.monotonic() < deadline, f"never came: {what}"
        time.sleep(0.02)


def reindex_session(conn: Connection) -> list[int]:
    """The pids of the task's reindex sessions waiting for a lock."""
    query = (
        "SELECT pid FROM pg_stat_activity WHERE application_name = :n AND wait_event_type = 'Lock'"
    )
    return list(conn.execute(text(query), {"n": SESSION}).scalars())


def test_the_upgrade_returns_before_the_background_reindex_and_a_killed_runner_resumes_it(
    pg_site: Path, shop_catalog: Path
) -> None:
    """The upgrade returns with the reindex queued; ``background run`` begins it, and a writer
    holding the table keeps it waiting (no timing) while ``status`` shows it running with its
    phase and fraction. A kill -9 of the runner leaves its server session waiting and an
    invalid ``orders_customer_ccnew``; the next run ends that session, drops the copy, says so,
    and reindexes."""
    with_tasks(shop_catalog, REINDEX)
    code, out, err = stairway("upgrade", "--to", "2.0.0", "--site", str(pg_site), "--json")
    assert code == 0 and orjson.loads(out)["background"] == ["orders-index (2.0.0)"], err
    assert shown_tasks(pg_site) == [("orders-index", "queued")]
    command = [sys.executable, "-m", "stairway", "background", "run", "--site", str(pg_site)]
    ctx = context.open_context(pg_site, None)
    with ctx.engine.connect() as writer, ctx.engine.connect() as watch:
        watch.execution_options(isolation_level="AUTOCOMMIT")
        writer.execute(text("LOCK TABLE orders IN ROW EXCLUSIVE MODE"))  # an open write
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until(lambda: bool(reindex_session(watch)), "the reindex waiting for the writer")
        until(lambda: phase_recorded(ctx.engine), "a progress report of the runner", 10)
        code, out, _ = stairway("status", "--site", str(pg_site))
        assert f"task orders-index (2.0.0): running, {WAITING}, 10% done" in out, out
        orphan = reindex_session(watch)
        first.kill()
        first.wait()
        left = watch.execute(text(INDEXES)).all()
        assert ("orders_customer_ccnew", False) in left, left
        second = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        until(lambda: reindex_session(watch) != orphan, "the orphaned session ended")
        writer.commit()
        _, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert "ending session" in err and "dropping invalid index orders_customer_ccnew" in err
        assert watch.execute(text(INDEXES)).all() == [("orders_customer", True)]
    assert shown_tasks(pg_site) == [], "done: status no longer shows it"
    code, out, _ = stairway("background", "status", "--site", str(pg_site), "--json")
    assert [(t["name"], t["state"]) for t in orjson.loads(out)["tasks"]] == [
        ("orders-index", "done")
    ]
    dispose_all()


def shown_tasks(site: Path) -> list[tuple[str, str]]:
    """The tasks ``stairway status --json`` shows: those not done."""
    code, out, err = stairway("status", "--site", str(site), "--json")
    assert code == 0, err
    return [(t["name"], t["state"]) for t in orjson.loads(out)["tasks"]]


def phase_recorded(engine: Engine) -> bool:
    return any(run.phase == WAITING for run in task_runs.runs(engine))


def test_a_reindex_fraction_counts_the_phases_behind_it_and_the_blocks_of_its_own() -> None:
    assert reindex_fraction("initializing", 0, 0) == 0.0
    assert reindex_fraction("building index: scanning table", 50, 100) == 0.25
    assert reindex_fraction("waiting for readers before dropping", 3, 0) == 0.9
    found = TaskProgress("t", "building index: scanning table", elapsed=10.0, fraction=0.25)
    assert found.eta() == 30.0 and "25% done, about 30 s left" in found.describe()
    assert TaskProgress("t", "running", 4.0).describe() == "t: running, 4 s"


def test_a_running_reindex_reports_its_phase_and_fraction(
    pg_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer keeps the reindex waiting in one phase until a report came: no timing."""
    monkeypatch.setattr(task_watch, "EVERY", 0.02)
    task = Task("orders-index", "2.0.0", TaskKind.REINDEX_INDEX, True, "orders_customer")
    ctx = context.open_context(pg_site, None)
    said: list[tuple[int, int | None, TaskProgress]] = []
    with ctx.engine.connect() as writer:
        writer.execute(text("LOCK TABLE orders IN ROW EXCLUSIVE MODE"))
        with ThreadPoolExecutor(1) as pool:
            ran = pool.submit(run_tasks.run_task, ctx, task, lambda *a: said.append(a))
            until(lambda: any(f.phase == WAITING for *_, f in said), "a report of the wait")
            code, out, _ = stairway("status", "--site", str(pg_site))
            writer.commit()
            assert ran.result(timeout=60)["task"] == "orders-index"
    done, total, found = next(report for report in said if report[2].phase == WAITING)
    assert found.fraction == 0.1
    assert (done, total) == (100, 1000)
    running = f"task orders-index (2.0.0): running, {WAITING}, 10% done"
    assert code == 0 and running in out, out
    code, out, _ = stairway("status", "--site", str(pg_site), "--json")
    assert orjson.loads(out)["tasks"] == [], "done: no longer shown"
    dispose_all()


def test_a_command_reports_its_elapsed_time_only(
    sqlite_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_watch, "EVERY", 0.02)
    argv = (sys.executable, "-c", "import time; time.sleep(0.3)")
    task = Task("slow", "2.0.0", TaskKind.COMMAND, False, argv=argv)
    said: list[tuple[int, int | None, TaskProgress]] = []
    run_tasks.run_task(context.open_context(sqlite_site, None), task, lambda *a: said.append(a))
    assert said and all(t is None and f.fraction is None for _, t, f in said)
    assert said[-1][2].phase == "running" and said[-1][2].elapsed > said[0][2].elapsed
    dispose_all()
