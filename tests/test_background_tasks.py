"""Post-upgrade tasks handed to the background: a later upgrade refuses while one is unfinished,
a rollback cancels them, and a command a killed runner cut short is not run again blindly.
(The reindex run, killed and resumed on PostgreSQL, is in test_tasks.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cli_runner import stairway
from stairway import audit, context
from stairway.database import dispose_all
from test_tasks import marks, new_site, tasks, with_tasks

RUNNER = [sys.executable, "-m", "stairway", "background", "run"]


@pytest.fixture
def sqlite_site(tmp_path: Path, sqlite_database: str, shop_catalog: Path) -> Path:
    return new_site(tmp_path, sqlite_database, shop_catalog)


def queued(site: Path) -> list[tuple[str, str, str]]:
    code, out, err = stairway("background", "status", "--site", str(site), "--json")
    assert code == 0, err
    return [(t["name"], t["release"], t["state"]) for t in orjson.loads(out)["tasks"]]


def test_a_new_upgrade_refuses_while_a_background_task_is_unfinished(
    sqlite_site: Path, shop_catalog: Path
) -> None:
    with_tasks(shop_catalog, tasks())
    assert stairway("upgrade", "--to", "2.0.0", "--site", str(sqlite_site))[0] == 0
    code, out, err = stairway("verify", "--to", "2.1.0", "--site", str(sqlite_site), "--json")
    [finding] = [f for f in orjson.loads(out)["findings"] if f["topic"] == "background"]
    assert code == 2 and finding["blocking"], err
    assert "task orders-index (2.0.0): queued" in finding["message"]
    assert "`stairway background run`" in finding["hint"]
    code, _, err = stairway("upgrade", "--to", "2.1.0", "--site", str(sqlite_site))
    assert code == 2 and "block the upgrade" in err and "orders-index (2.0.0): queued" in err
    code, out, err = stairway("status", "--site", str(sqlite_site), "--json")
    assert orjson.loads(out)["next"]["commands"] == ["stairway background run"], err
    assert str(context.current_version(context.open_context(sqlite_site, None))) == "2.0.0"
    code, out, err = stairway("background", "run", "--site", str(sqlite_site))
    assert code == 0 and "task orders-index (2.0.0): done" in out, err
    code, out, err = stairway("verify", "--to", "2.1.0", "--site", str(sqlite_site), "--json")
    assert code == 0, out + err
    dispose_all()


def test_a_rollback_cancels_the_tasks_handed_to_the_background(
    sqlite_site: Path, shop_catalog: Path
) -> None:
    with_tasks(shop_catalog, tasks())
    assert stairway("upgrade", "--to", "2.0.0", "--site", str(sqlite_site))[0] == 0
    assert queued(sqlite_site) == [("orders-index", "2.0.0", "queued")]
    code, out, err = stairway("rollback", "--yes", "--site", str(sqlite_site))
    assert code == 0, out + err
    assert "cancelled by the rollback: orders-index (2.0.0)" in err
    assert queued(sqlite_site) == [], "no runner takes it up on the old release"
    code, out, err = stairway("background", "run", "--site", str(sqlite_site))
    assert code == 0 and "no background migrations or tasks" in out, err
    with context.open_context(sqlite_site, None).engine.connect() as conn:
        [rolled] = [e for e in audit.entries(conn) if e.action == "site.rollback"]
    assert rolled.data["cancelled"] == ["orders-index (2.0.0)"]
    dispose_all()


def test_a_command_cut_short_by_a_killed_runner_is_failed_not_run_again(
    sqlite_site: Path, shop_catalog: Path
) -> None:
    body = tasks().replace('reindex = "orders_customer"', "command = " + _marker_argv())
    with_tasks(shop_catalog, body)
    assert stairway("upgrade", "--to", "2.0.0", "--site", str(sqlite_site))[0] == 0
    assert marks(sqlite_site) == "x", "the offline marker ran in the upgrade"
    env = {**os.environ, "STAIRWAY_FAULT": "after:task-command"}
    killed = subprocess.run([*RUNNER, "--site", str(sqlite_site)], env=env, check=False)
    assert killed.returncode == -9 and marks(sqlite_site) == "xy"
    assert queued(sqlite_site) == [("orders-index", "2.0.0", "running")]
    code, _, err = stairway("background", "run", "--site", str(sqlite_site))
    assert code == 3 and "not declared idempotent" in err, err
    assert "`stairway tasks run orders-index --release 2.0.0`" in err
    assert marks(sqlite_site) == "xy", "not run twice"
    assert queued(sqlite_site) == [("orders-index", "2.0.0", "failed")]
    dispose_all()


def _marker_argv() -> str:
    code = "open('marker', 'a').write('y')"
    return orjson.dumps([sys.executable, "-c", code]).decode()


def test_a_rehearsal_runs_the_tasks_the_upgrade_hands_to_the_background(
    sqlite_site: Path, shop_catalog: Path
) -> None:
    body = tasks().replace('reindex = "orders_customer"', 'reindex = "no_such_index"')
    with_tasks(shop_catalog, body)
    code, out, err = stairway("rehearse", "--to", "2.0.0", "--site", str(sqlite_site), "--json")
    said = orjson.loads(out)
    assert "background task orders-index (2.0.0): failed" in said["failure"], err
    assert "no_such_index" in said["failure"] and code != 0
    assert queued(sqlite_site) == [], "the live site is untouched"
    dispose_all()
