"""A rollback stops the background runner that holds the site: it asks the runner to stop, the
runner cancels its reindex on PostgreSQL (or stops a command declared idempotent), queues that
task again and lets go of the site; the rollback then goes on and cancels the task with the
rest of the release. A command that is not declared idempotent is let finish: the rollback
waits for it as long as ``--wait`` says, and refuses without touching anything after that."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from cli_runner import stairway
from stairway import background_stop, context
from stairway.database import dispose_all
from test_background import counts, fill, items_site
from test_background_tasks import queued
from test_tasks import INDEXES, REINDEX, new_site, reindex_session, until, with_tasks

RUNNER = [sys.executable, "-m", "stairway", "background", "run"]
ROLLBACK = [sys.executable, "-m", "stairway", "rollback", "--yes"]


def sleeper(seconds: float, idempotent: bool) -> str:
    return command_task("search-index", f"import time; time.sleep({seconds})", idempotent)


def command_task(name: str, code: str, idempotent: bool = False) -> str:
    """A serving task of release 2.0.0 running ``code`` in Python."""
    argv = orjson.dumps([sys.executable, "-c", code]).decode()
    said = "idempotent = true\n" if idempotent else ""
    return f'\n[[release.task]]\nname = "{name}"\ncommand = {argv}\nserving = true\n{said}'


def running_command(site: Path, catalog: Path, task: str) -> subprocess.Popen[str]:
    """Upgrade ``site`` to 2.0.0, which hands ``task`` to the background, and start a runner;
    returned once the task runs."""
    with_tasks(catalog, task)
    assert stairway("upgrade", "--to", "2.0.0", "--site", str(site))[0] == 0
    runner = subprocess.Popen(
        [*RUNNER, "--site", str(site)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    until(lambda: running(site), "the command running")
    return runner


def served(site: Path) -> str:
    return str(context.current_version(context.open_context(site, None)))


def running(site: Path) -> bool:
    return ("search-index", "2.0.0", "running") in queued(site)


@pytest.fixture
def pg_site(tmp_path: Path, pg_database: str, shop_catalog: Path) -> Path:
    return new_site(tmp_path, pg_database, shop_catalog)


@pytest.fixture
def sqlite_site(tmp_path: Path, sqlite_database: str, shop_catalog: Path) -> Path:
    return new_site(tmp_path, sqlite_database, shop_catalog)


def test_a_rollback_cancels_the_reindex_the_runner_is_running_and_goes_on(
    pg_site: Path, shop_catalog: Path
) -> None:
    """A writer holding the table keeps the reindex waiting (no timing): only a cancel ends it."""
    with_tasks(shop_catalog, REINDEX)
    assert stairway("upgrade", "--to", "2.0.0", "--site", str(pg_site))[0] == 0
    ctx = context.open_context(pg_site, None)
    site = ["--site", str(pg_site)]
    with ctx.engine.connect() as writer, ctx.engine.connect() as watch:
        watch.execution_options(isolation_level="AUTOCOMMIT")
        writer.execute(text("LOCK TABLE orders IN ROW EXCLUSIVE MODE"))  # an open write
        runner = subprocess.Popen([*RUNNER, *site], stdout=subprocess.PIPE, text=True)
        until(lambda: bool(reindex_session(watch)), "the reindex waiting for the writer")
        began = time.monotonic()
        back = subprocess.Popen([*ROLLBACK, *site], stderr=subprocess.PIPE, text=True)
        said = " ".join(runner.communicate(timeout=60)[0].split())
        assert runner.returncode == 0, said
        assert time.monotonic() - began < 30, "stopped at the request, not at the reindex's end"
        assert "stopped: `stairway rollback --yes" in said and "asked the background" in said
        left = watch.execute(text(INDEXES)).all()
        assert ("orders_customer_ccnew", False) in left, "cancelled part way, the writer still on"
        writer.rollback()
        _, err = back.communicate(timeout=120)
    dispose_all()  # the restore ended this process's pooled sessions
    assert back.returncode == 0, err
    assert "asked it to stop" in err and "cancelled by the rollback: orders-index (2.0.0)" in err
    assert served(pg_site) == "1.0.0"
    assert queued(pg_site) == [], "no runner takes the task up on the old release"
    dispose_all()


def test_a_rollback_stops_an_idempotent_command(sqlite_site: Path, shop_catalog: Path) -> None:
    site = ["--site", str(sqlite_site)]
    runner = running_command(sqlite_site, shop_catalog, sleeper(60, idempotent=True))
    began = time.monotonic()
    code, _, err = stairway("rollback", "--yes", *site)
    assert code == 0, err
    assert time.monotonic() - began < 30, "the 60 s command was stopped, not waited for"
    said = " ".join(runner.communicate(timeout=30)[0].split())
    assert runner.returncode == 0 and "stopped: " in said and "stays queued" in said, said
    assert "cancelled by the rollback: search-index (2.0.0)" in err
    assert served(sqlite_site) == "1.0.0" and queued(sqlite_site) == []
    dispose_all()


def test_a_rollback_waits_for_a_command_not_idempotent_or_refuses_after_its_wait(
    sqlite_site: Path, shop_catalog: Path
) -> None:
    """A 6 s command: ``--wait 1`` refuses touching nothing and takes its request back; a
    second rollback with the default wait lets the command finish, then goes on."""
    site = ["--site", str(sqlite_site)]
    runner = running_command(sqlite_site, shop_catalog, sleeper(6, idempotent=False))
    began = time.monotonic()
    code, _, err = stairway("rollback", "--yes", "--wait", "1", *site)
    assert code == 2 and "did not stop within 1 s" in err and "not declared idempotent" in err
    assert "Traceback" not in err
    assert served(sqlite_site) == "2.0.0", "nothing was touched"
    assert background_stop.asked(context.open_context(sqlite_site, None).engine) is None
    code, _, err = stairway("rollback", "--yes", *site)
    assert code == 0 and served(sqlite_site) == "1.0.0", err
    assert time.monotonic() - began >= 5, "the command was let finish"
    said = " ".join(runner.communicate(timeout=60)[0].split())
    assert runner.returncode == 0 and "task search-index (2.0.0): done" in said, said
    dispose_all()


def test_a_runner_asked_to_stop_leaves_its_background_migration_between_two_batches(
    tmp_path: Path, sqlite_database: str
) -> None:
    """100 batches at least 0.2 s apart: stopped after a few, every row done once or not yet."""
    site = items_site(tmp_path, sqlite_database, batch=10)
    fill(site, 1_000)
    command = [*RUNNER, "--pause", "0.2", "--site", str(site)]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    until(lambda: counts(site)["once"] > 0, "the first batch done")
    background_stop.ask(context.open_context(site, None).engine, "stairway rollback", 30)
    said = " ".join(runner.communicate(timeout=15)[0].split())
    assert runner.returncode == 0 and "stopped: `stairway rollback` asked" in said, said
    found = counts(site)
    assert 0 < found["once"] < 1_000 and found["twice"] == found["wrong"] == 0, found
    background_stop.withdraw(context.open_context(site, None).engine)
    code, out, err = stairway("background", "run", "--site", str(site))
    assert code == 0 and "stopped" not in out, err
    assert counts(site) == {"untouched": 0, "once": 1_000, "twice": 0, "wrong": 0}
    dispose_all()


def test_two_rollbacks_at_once_beside_a_runner_one_rolls_back_the_other_is_refused(
    sqlite_site: Path, shop_catalog: Path
) -> None:
    site = ["--site", str(sqlite_site)]
    runner = running_command(sqlite_site, shop_catalog, sleeper(60, idempotent=True))
    dispose_all()  # this process lets go of the database file the rollback swaps
    both = [subprocess.Popen([*ROLLBACK, *site], stderr=subprocess.PIPE, text=True) for _ in "ab"]
    said = [(p.wait(timeout=60), p.communicate()[1]) for p in both]
    assert sorted(code for code, _ in said) == [0, 2], said
    [refused] = [err for code, err in said if code == 2]
    assert "Traceback" not in refused and "did not stop" not in refused, refused
    runner.communicate(timeout=30)
    assert runner.returncode == 0
    assert served(sqlite_site) == "1.0.0" and queued(sqlite_site) == []
    dispose_all()


def test_a_rollback_that_cannot_write_its_request_refuses_and_touches_nothing(
    sqlite_site: Path, shop_catalog: Path
) -> None:
    """The database refuses the request's row (as a full disk would): exit 2, the runner goes on."""
    site = ["--site", str(sqlite_site)]
    runner = running_command(sqlite_site, shop_catalog, sleeper(3, idempotent=True))
    with context.open_context(sqlite_site, None).engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER no_stop BEFORE INSERT ON stairway_meta "
                "WHEN NEW.key = 'background.stop' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    dispose_all()
    code, _, err = stairway("rollback", "--yes", "--wait", "1", *site)
    assert code == 2 and "cannot ask the background runner" in err and "disk full" in err, err
    assert "Traceback" not in err
    said = " ".join(runner.communicate(timeout=60)[0].split())
    assert runner.returncode == 0 and "task search-index (2.0.0): done" in said, said
    assert served(sqlite_site) == "2.0.0", "nothing was touched"
    dispose_all()


def test_a_rollback_killed_while_it_waits_touches_nothing_and_its_request_runs_out(
    sqlite_site: Path, shop_catalog: Path
) -> None:
    """SIGKILL to a rollback (``--wait 3``) waiting for a runner's 6 s command, which is not
    declared idempotent: the command finishes, the request has run out by then and stops no
    one, so the runner goes on to the next task; the site was not touched, and a new rollback
    rolls back."""
    site = ["--site", str(sqlite_site)]
    second = command_task("warm-cache", "pass")
    runner = running_command(sqlite_site, shop_catalog, sleeper(6, idempotent=False) + second)
    engine = context.open_context(sqlite_site, None).engine
    back = subprocess.Popen([*ROLLBACK, "--wait", "3", *site], stderr=subprocess.PIPE, text=True)
    until(lambda: background_stop.asked(engine) is not None, "the rollback's request")
    back.kill()
    back.communicate(timeout=10)
    dispose_all()
    out, err = runner.communicate(timeout=60)
    said = " ".join(out.split())
    assert runner.returncode == 0 and "stopped" not in said, said
    assert "letting task search-index finish (not declared idempotent)" in err
    assert "task warm-cache (2.0.0): done" in said
    assert served(sqlite_site) == "2.0.0", "the killed rollback touched nothing"
    code, _, err = stairway("rollback", "--yes", *site)
    assert code == 0, err
    assert served(sqlite_site) == "1.0.0" and queued(sqlite_site) == []
    dispose_all()
