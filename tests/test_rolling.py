"""A rolling upgrade for real: two instances of the example product on PostgreSQL behind nginx
(Debian's), sessions in Redis, logged-in clients requesting throughout `upgrade --rolling` from
2.0.0 to 2.1.0. No request fails, every client keeps its session, and the contract change waits
for the last 2.0.0 instance."""

from __future__ import annotations

import errno
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import inspect

from cli_runner import stairway
from conftest import REDIS_URL
from stairway import context, maintenance, operations, releases
from stairway.database import dispose_all
from stairway.examples.identity_sync.cluster import NGINX, Cluster, Crowd, build_cluster
from stairway.journal import Journal
from stairway.quickstart import write_site


@pytest.fixture
def rolling_site(
    tmp_path: Path, pg_database: str, redis_prefix: tuple[object, str]
) -> Iterator[Cluster]:
    if not Path(NGINX).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing: .ci/run installs it")
        pytest.skip("nginx is not installed here")
    with build_cluster(tmp_path, pg_database, REDIS_URL, redis_prefix[1]) as cluster:
        yield cluster


def test_a_rolling_upgrade_behind_nginx_fails_no_request_and_keeps_every_session(
    rolling_site: Cluster,
) -> None:
    crowd = Crowd(rolling_site.url)
    crowd.start()
    time.sleep(1.0)
    code, out, err = stairway(
        "upgrade", "--rolling", "--to", "2.1.0", "--site", str(rolling_site.site)
    )
    time.sleep(1.0)
    crowd.finish()
    assert code == 0, err + out
    assert crowd.failures == [], crowd.failures[:5]
    assert all(c.releases[0] == "2.0.0" and c.releases[-1] == "2.1.0" for c in crowd.clients)
    assert sum(len(c.releases) for c in crowd.clients) > 200, "the clients kept asking"
    for port in rolling_site.ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as answer:
            assert orjson.loads(answer.read())["release"] == "2.1.0"
    ctx = context.open_context(rolling_site.site, None)
    columns = {c["name"] for c in inspect(ctx.engine).get_columns("connectors")}
    assert "kind" in columns and "type" not in columns, "expand, then the deferred contract"
    (last,) = Journal(context.backup_dir(ctx)).history()[-1:]
    kinds = [s["kind"] for s in last.plan["steps"]]
    finished = {r.step: r.at for r in last.records if r.event == "done"}
    begun = {r.step: r.at for r in last.records if r.event == "begin"}
    instances = [i for i, k in enumerate(kinds) if k == "instance"]
    contract = kinds.index("contract")
    assert begun[contract] >= max(finished[i] for i in instances), "contract after the last one"
    assert kinds.index("expand") < min(instances)


def test_contract_changes_refuse_while_an_old_instance_serves_and_name_it(
    rolling_site: Cluster,
) -> None:
    site = str(rolling_site.site)
    code, _out, err = stairway("migrate", "--to", "2.1.0", "--phase", "expand", "--site", site)
    assert code == 0, err
    code, _out, err = stairway("migrate", "--to", "2.1.0", "--phase", "contract", "--site", site)
    assert code != 0
    assert "contract change 0011_drop_connector_type of 2.1.0 waits for" in err
    assert f"instance 1 (http://127.0.0.1:{rolling_site.ports[0]}) runs 2.0.0" in err


def test_a_path_that_needs_downtime_or_a_site_with_one_instance_is_refused(
    tmp_path: Path,
) -> None:
    demo = write_site(tmp_path / "demo")
    operations.init(context.open_context(demo.site_file, None), "1.0.0")
    dispose_all()
    code, _out, err = stairway(
        "upgrade", "--rolling", "--to", "2.0.0", "--site", str(demo.site_file)
    )
    assert code == 2 and "a rolling upgrade to 2.0.0 is refused" in err
    assert "0007_rename_ldap_connector [offline]" in err
    assert "not marked rolling" in err and "fewer than two" in err
    assert "must name the instance" in err
    code, _out, _err = stairway("plan", "--to", "2.0.0", "--rolling", "--site", str(demo.site_file))
    assert code == 3


def test_contract_changes_wait_for_connected_agents_of_an_older_release(tmp_path: Path) -> None:
    from stairway.fleet import store
    from stairway.fleet.tables import ensure_tables

    demo = write_site(tmp_path / "demo")
    ctx = context.open_context(demo.site_file, None)
    operations.init(ctx, "2.0.0")
    with ctx.engine.begin() as conn:
        ensure_tables(conn)
        store.enroll(conn, "relay-eu", None)
        store.change(conn, "relay-eu", version="2.0.0", connected=True)
    dispose_all()
    site = str(demo.site_file)
    assert stairway("migrate", "--to", "2.1.0", "--phase", "expand", "--site", site)[0] == 0
    code, _out, err = stairway("migrate", "--to", "2.1.0", "--phase", "contract", "--site", site)
    assert code != 0 and "waits for: agent relay-eu runs 2.0.0" in err
    with context.open_context(demo.site_file, None).engine.begin() as conn:
        store.change(conn, "relay-eu", connected=False)
    dispose_all()
    code, _out, err = stairway("migrate", "--to", "2.1.0", "--phase", "contract", "--site", site)
    assert code == 0, err


# --- when a rolling upgrade fails ---------------------------------------------------------------

NEXT = re.compile(r"then `(stairway [^`]+)`")


def _serving(cluster: Cluster) -> list[str]:
    found = []
    for port in cluster.ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as answer:
            found.append(str(orjson.loads(answer.read())["release"]))
    return found


def _site_state(cluster: Cluster) -> tuple[str | None, bool, bool, set[str]]:
    """``current``, whether an upgrade is still journaled, maintenance, the connectors' columns."""
    ctx = context.open_context(cluster.site, None)
    where = ctx.site.site.releases_dir
    assert where is not None
    active = Journal(context.backup_dir(ctx)).active() is not None
    with ctx.engine.connect() as conn:
        on = maintenance.read(conn) is not None
    columns = {c["name"] for c in inspect(ctx.engine).get_columns("connectors")}
    dispose_all()
    return releases.current_release(where), active, on, columns


def _faulted(monkeypatch: pytest.MonkeyPatch, point: str, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("STAIRWAY_FAULT", point)
    monkeypatch.setenv("STAIRWAY_FAULT_ACTION", "enospc")
    try:
        return stairway(*args)
    finally:
        monkeypatch.delenv("STAIRWAY_FAULT")
        monkeypatch.delenv("STAIRWAY_FAULT_ACTION")


def _unwritable(monkeypatch: pytest.MonkeyPatch, *events: str) -> None:
    """The journal cannot take these records: the disk is full when they are written."""
    record = Journal.record

    def failing(self: Journal, event: str, step: int | None = None, **data: object) -> None:
        if event in events:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        record(self, event, step, **data)

    monkeypatch.setattr(Journal, "record", failing)


def test_a_rolling_upgrade_failing_after_its_release_swap_points_current_back(
    rolling_site: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap made, its done record not written: ``current`` found from the intent record."""
    site = str(rolling_site.site)
    code, _out, err = _faulted(
        monkeypatch, "after:release", "upgrade", "--rolling", "--to", "2.1.0", "--site", site
    )
    assert "Traceback" not in err
    assert code == 1, err
    assert "Rolled back: every instance runs 2.0.0 again" in err
    current, active, on, columns = _site_state(rolling_site)
    assert current == "2.0.0", "rolled back, so `current` names the old release again"
    assert (active, on) == (False, False)
    assert "type" in columns, "the old release's column is still there"
    assert _serving(rolling_site) == ["2.0.0", "2.0.0"]


def test_a_rolling_rollback_the_journal_cannot_record_names_the_rollback_that_records_it(
    rolling_site: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = str(rolling_site.site)
    with monkeypatch.context() as patched:
        _unwritable(patched, "failed", "rollback-begin", "rolled-back")
        code, _out, err = _faulted(
            patched, "after:release", "upgrade", "--rolling", "--to", "2.1.0", "--site", site
        )
    assert "Traceback" not in err
    assert code == 3, err
    command = NEXT.search(err)
    assert command is not None and command.group(1) == f"stairway rollback --yes --site {site}"
    assert _serving(rolling_site) == ["2.0.0", "2.0.0"]
    code, _out, err = stairway(*command.group(1).split()[1:])
    assert code == 0, err
    current, active, on, _columns = _site_state(rolling_site)
    assert (current, active, on) == ("2.0.0", False, False)
    assert _serving(rolling_site) == ["2.0.0", "2.0.0"]


def test_a_failed_contract_step_names_the_resume_that_finishes_it(
    rolling_site: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the contract step the old release cannot run on the schema: exit 3 (not 1: nothing
    was rolled back), the resume named, and it finishes the upgrade. The journal's failure
    records cannot be written either: no traceback."""
    site = str(rolling_site.site)
    with monkeypatch.context() as patched:
        _unwritable(patched, "failed", "failed-after-roll")
        code, _out, err = _faulted(
            patched, "after:contract", "upgrade", "--rolling", "--to", "2.1.0", "--site", site
        )
    assert "Traceback" not in err
    assert code == 3, err
    assert "maintenance is off" in err
    command = NEXT.search(err)
    assert command is not None, err
    assert command.group(1) == f"stairway upgrade --resume --site {site}"
    assert _serving(rolling_site) == ["2.1.0", "2.1.0"]
    code, _out, err = stairway(*command.group(1).split()[1:])
    assert code == 0, err
    current, active, on, columns = _site_state(rolling_site)
    assert (current, active, on) == ("2.1.0", False, False)
    assert "kind" in columns and "type" not in columns
    assert _serving(rolling_site) == ["2.1.0", "2.1.0"]


def test_rolling_back_a_rolling_upgrade_restarts_every_instance_on_the_old_release(
    rolling_site: Cluster,
) -> None:
    """``[service]`` names each instance with ``{instance}``, ``{port}`` and ``{url}``: the
    rollback's restore stops, starts and checks each, its templates filled."""
    site = str(rolling_site.site)
    code, _out, err = stairway("upgrade", "--rolling", "--to", "2.1.0", "--site", site)
    assert code == 0, err
    code, _out, err = stairway("rollback", "--yes", "--site", site)
    assert "Traceback" not in err
    assert code == 0, err
    current, active, on, columns = _site_state(rolling_site)
    assert (current, active, on) == ("2.0.0", False, False)
    assert "type" in columns and "kind" not in columns
    assert _serving(rolling_site) == ["2.0.0", "2.0.0"]


@pytest.mark.heavy  # a real two-instance rolling upgrade: some forty seconds
def test_after_its_last_instance_a_rolling_upgrade_checks_the_agents_came_back(
    rolling_site: Cluster,
) -> None:
    from datetime import timedelta

    from stairway.fleet import store
    from stairway.fleet.tables import ensure_tables
    from stairway.fleet.tokens import now

    with rolling_site.site.open("a", encoding="utf-8") as site_file:
        site_file.write("\n[fleet]\ndeadline = 1\n")
    ctx = context.open_context(rolling_site.site, None)
    with ctx.engine.begin() as conn:  # both on the target: the contract step waits for neither
        ensure_tables(conn)
        for agent, heard in (("relay-back", timedelta(hours=1)), ("relay-gone", -timedelta(1))):
            store.enroll(conn, agent, None)
            seen = (now() + heard).isoformat()  # relay-gone is not heard from again
            store.change(conn, agent, version="2.1.0", connected=True, last_seen=seen)
    dispose_all()
    site = str(rolling_site.site)
    code, out, err = stairway("upgrade", "--rolling", "--to", "2.1.0", "--site", site)
    assert code == 3, err + out
    assert "agent relay-gone" in err and "did not come back within 1 s" in err
    assert "relay-back" not in err
    (last,) = Journal(context.backup_dir(context.open_context(rolling_site.site, None))).history()[
        -1:
    ]
    kinds = [s["kind"] for s in last.plan["steps"]]
    back = kinds.index("agents-back")
    assert kinds[back - 1] == "instance" and kinds.index("contract") > back
    (result,) = [r.data for r in last.records if r.event == "done" and r.step == back]
    assert result["said"] == "1 of 2 agents back (1 connected); not back: relay-gone"
