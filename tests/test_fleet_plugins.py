"""Plug-in directories on agent hosts, with real agents: an upgrade whose release moves a
plug-in makes the agent snapshot its directory first (kept on its host, reported to the
server, shown by `plugin list`); `plugin rollback` then puts that host's directory back byte
for byte through the control plane, while the agent stays on the new release, and reports a
host whose snapshot was tampered with (exit 3). An agent that cannot read its plug-in
directory refuses the upgrade and says why. A rollback asked of an agent that is offline is
carried out when it connects, even after the agent was killed half-way through it; an answer
to a request not in flight is refused and changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Connection, Engine, select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from cli_runner import stairway
from fleet_harness import Fleet, fleet_site, make_build, wait_until
from stairway import context, plugin_snapshots
from stairway.database import dispose_all
from stairway.fleet import agent_plugins, plugin_hosts, restore_intent
from stairway.fleet.messages import (
    Close,
    Hello,
    PluginDirectory,
    PluginRestored,
    PluginSnapshotted,
)
from stairway.fleet.tables import plugin_requests_table
from stairway.plugin_snapshots import PluginSnapshot

T = TypeVar("T")

PLUGIN = """
[[plugin]]
name = "ldap"
kind = "connector"
directory = "connectors/ldap"
versions = { "1.0.0" = "1.2.0", "2.0.0" = "1.3.0" }
"""


@pytest.fixture
def fleet(tmp_path: Path, database_url: str) -> Iterator[Fleet]:
    """A fleet site at 2.0.0 whose catalog ships ldap 1.2.0 with 1.0.0 and 1.3.0 with 2.0.0,
    with a data and a backup directory, and the snapshot its own upgrade would have taken."""
    with fleet_site(tmp_path, database_url) as running:
        manifest = running.root / "catalog" / "stairway.toml"
        manifest.write_text(manifest.read_text() + PLUGIN)
        data, backups = tmp_path / "site-data", tmp_path / "backups"
        text = running.site.read_text().replace(
            "[site]\n", f'[site]\ndata_dir = "{data}"\nbackup_dir = "{backups}"\n'
        )
        running.site.write_text(text)
        fill(data / "connectors" / "ldap", b"site")
        plugin_snapshots.take(backups, "ldap", "1.2.0", data / "connectors" / "ldap")
        yield running


def fill(directory: Path, mark: bytes) -> None:
    """A plug-in's files: jars in a subdirectory, a binary file, an empty work directory."""
    (directory / "lib").mkdir(parents=True)
    (directory / "lib" / "ldap-1.2.0.jar").write_bytes(mark + bytes(range(256)) * 40)
    (directory / "connector.properties").write_bytes(mark + b"\nhost = ldap.example\n")
    (directory / "work").mkdir()


def contents(directory: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory (as None) under ``directory``."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes() if path.is_file() else None
        for path in sorted(directory.rglob("*"))
    }


def run_agent(fleet: Fleet, home: Path, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "stairway", "agent", "run", "--home", str(home)]
    fleet.agents.append(subprocess.Popen(command, env=os.environ | env))


def rows(fleet: Fleet) -> dict[str, tuple[str, str]]:
    return {a: (r["version"], r["state"]) for a, r in fleet.agent_rows().items()}


def test_an_agent_snapshots_its_plugin_before_upgrading_and_puts_it_back_when_asked(
    fleet: Fleet, tmp_path: Path
) -> None:
    old = make_build(fleet.root, "1.0.0")
    fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
    fleet.start_server()
    ours, broken = tmp_path / "relay-1-data", tmp_path / "relay-2-data"
    fill(ours / "connectors" / "ldap", b"relay-1")
    fill(broken / "connectors" / "ldap", b"relay-2")
    before = contents(ours / "connectors" / "ldap")
    home = fleet.enroll_agent("relay-1", old, options=("--data-dir", str(ours)))
    other = fleet.enroll_agent("relay-2", old, options=("--data-dir", str(broken)))
    run_agent(fleet, home, {})
    # reading relay-2's plug-in directory fails with EIO: an unreadable directory, even as root
    run_agent(
        fleet, other, {"STAIRWAY_FAULT": "before:plugin-read", "STAIRWAY_FAULT_ACTION": "eio"}
    )
    wait_until(lambda: len(fleet.connected()) == 2, 30, "two agents online")
    fleet.api("POST", "/api/agents/relay-1/upgrade")
    fleet.api("POST", "/api/agents/relay-2/upgrade")
    wait_until(
        lambda: rows(fleet) == {"relay-1": ("2.0.0", "online"), "relay-2": ("1.0.0", "failed")},
        60,
        "relay-1 on 2.0.0 and relay-2 refusing",
    )

    refused = fleet.agent_rows()["relay-2"]["message"]
    assert "cannot snapshot plug-in ldap" in refused and "Input/output error" in refused, refused
    assert not (other / "plugins" / "ldap").exists() or not any(
        (other / "plugins" / "ldap").iterdir()
    )
    kept = plugin_snapshots.snapshots(home, "ldap")
    assert [(s.plugin, s.version) for s in kept] == [("ldap", "1.2.0")]
    plugin_snapshots.check(kept[0])  # the same format as the site's own, whole
    listed = json.loads(fleet.cli("plugin", "list", "--json"))["plugins"][0]["agent_snapshots"]
    assert listed == [{"agent": "relay-1", "id": kept[0].id, "version": "1.2.0"}]

    live = ours / "connectors" / "ldap"  # the new release's files replace the old ones
    (live / "lib" / "ldap-1.2.0.jar").unlink()
    (live / "lib" / "ldap-1.3.0.jar").write_bytes(b"new")
    (live / "connector.properties").write_bytes(b"changed")
    said = json.loads(fleet.cli("plugin", "rollback", "ldap", "--json"))
    assert said["to"] == "1.2.0" and said["from"] == "1.3.0", said
    assert said["hosts"] == [
        {"agent": "relay-1", "state": "restored", "snapshot": kept[0].id, "reason": None}
    ]
    assert contents(live) == before  # byte for byte, the empty work directory too
    assert (home / "current").resolve().name == "agent-2.0.0.pyz"  # the release stays
    assert rows(fleet)["relay-1"] == ("2.0.0", "online")

    (kept[0].path / "files" / "connector.properties").write_bytes(b"tampered")
    again = [sys.executable, "-m", "stairway", "plugin", "rollback", "ldap", "--to", "1.2.0"]
    done = subprocess.run([*again, "--site", str(fleet.site)], capture_output=True, text=True)
    assert done.returncode == 3, done.stdout + done.stderr  # the host needs the operator
    assert "relay-1: not put back: snapshot" in done.stdout, done.stdout
    assert "does not match its digest" in done.stdout, done.stdout
    assert contents(live) == before  # a tampered snapshot is refused whole
    actions = [e["action"] for e in fleet.api("GET", "/api/audit")]
    assert {"agent.plugin_snapshot", "agent.plugin_rollback", "agent.plugin_restore"} <= set(
        actions
    )


def test_an_agent_holds_only_the_directories_under_its_data_dir(tmp_path: Path) -> None:
    moved = PluginDirectory.model_validate(
        {"name": "ldap", "directory": "connectors/ldap", "from": "1.2.0", "to": "1.3.0"}
    )
    assert agent_plugins.snapshot_all(tmp_path / "home", None, [moved]) == []
    assert agent_plugins.snapshot_all(tmp_path / "home", tmp_path / "data", [moved]) == []
    outside = moved.model_copy(update={"directory": "../etc"})
    with pytest.raises(agent_plugins.SnapshotRefused, match="outside the data directory"):
        agent_plugins.snapshot_all(tmp_path / "home", tmp_path / "data", [outside])
    (tmp_path / "data" / "connectors").mkdir(parents=True)
    (tmp_path / "data" / "connectors" / "ldap").write_text("a file, not a directory")
    with pytest.raises(agent_plugins.SnapshotRefused, match="cannot snapshot plug-in ldap"):
        agent_plugins.snapshot_all(tmp_path / "home", tmp_path / "data", [moved])
    assert not list((tmp_path / "home" / "plugins" / "ldap").iterdir())  # no half snapshot


def test_enrolling_with_a_data_dir_that_is_not_one_is_refused(tmp_path: Path) -> None:
    build = make_build(tmp_path, "1.0.0")
    key = tmp_path / "release.pub"
    key.write_text("unused: refused before it is read")
    home = tmp_path / "home"
    code, out, err = stairway(
        *("agent", "enroll", "--server", "ws://127.0.0.1:9", "--token", "swt_enroll_x.y"),
        *("--id", "relay-1", "--home", str(home), "--key", str(key), "--product", "people"),
        *("--build", str(build), "--data-dir", str(tmp_path / "missing")),
    )
    assert code == 2 and "not a directory" in err and "hint:" in err, out + err
    assert not home.exists()


def site_engine(fleet: Fleet) -> Engine:
    return context.open_context(fleet.site, None).engine


def with_site(fleet: Fleet, work: Callable[[Connection], T]) -> T:
    """``work`` in one transaction of the site's database."""
    try:
        with site_engine(fleet).begin() as conn:
            return work(conn)
    finally:
        dispose_all()


def kept_on_host(fleet: Fleet, home: Path, data: Path, agent_id: str) -> PluginSnapshot:
    """A snapshot of ldap 1.2.0 in the agent's home, as its upgrade would have taken and
    reported it; the live directory is then at 1.3.0."""
    live = data / "connectors" / "ldap"
    fill(live, b"old 1.2.0")
    taken = plugin_snapshots.take(home, "ldap", "1.2.0", live)
    shutil.rmtree(live)
    fill(live, b"new 1.3.0")
    said = PluginSnapshotted(plugin="ldap", version="1.2.0", snapshot=taken.id, files=2)
    with_site(fleet, lambda c: plugin_hosts.recorded(c, agent_id, said))
    return taken


def request_states(fleet: Fleet) -> list[tuple[str, str]]:
    table = plugin_requests_table
    rows = with_site(fleet, lambda c: list(c.execute(select(table).order_by(table.c.id))))
    return [(row.agent_id, row.state) for row in rows]


def test_a_rollback_asked_of_an_offline_agent_is_carried_out_when_it_connects_even_after_a_kill(
    fleet: Fleet, tmp_path: Path
) -> None:
    build = make_build(fleet.root, "1.0.0")
    fleet.start_server()
    data = tmp_path / "relay-1-data"
    data.mkdir()
    home = fleet.enroll_agent("relay-1", build, options=("--data-dir", str(data)))
    snapshot = kept_on_host(fleet, home, data, "relay-1")
    said = json.loads(fleet.cli("plugin", "rollback", "ldap", "--wait", "0", "--json"))
    assert [(h["agent"], h["state"]) for h in said["hosts"]] == [("relay-1", "pending")]

    live = data / "connectors" / "ldap"
    env = os.environ | {"STAIRWAY_FAULT": "between:plugin-swap"}  # killed between its renames
    command = [sys.executable, str(home / "current"), "--home", str(home)]
    killed = subprocess.run(command, env=env, capture_output=True, timeout=60)
    assert killed.returncode == -9, killed.stderr.decode()
    assert not live.exists()  # half swapped: the old directory set aside
    assert restore_intent.path(home, "ldap").exists()

    fleet.run_agent(home)  # started again: settles the restore, then is sent the request again
    wait_until(lambda: request_states(fleet) == [("relay-1", "restored")], 30, "the restore")
    assert contents(live) == contents(snapshot.path / "files")
    assert sorted(p.name for p in live.parent.iterdir()) == ["ldap"]
    assert not restore_intent.path(home, "ldap").exists()


def test_an_answer_to_a_rollback_not_in_flight_is_refused_and_changes_nothing(
    fleet: Fleet,
) -> None:
    fleet.start_server()
    credentials = {}
    for agent_id in ("relay-1", "relay-2"):
        said = fleet.api("POST", "/api/enroll", {"agent_id": agent_id}, token=fleet.enroll)
        credentials[agent_id] = str(said["credential"])
    snapshotted = PluginSnapshotted(plugin="ldap", version="1.2.0", snapshot="1.2.0-x", files=1)
    with_site(fleet, lambda c: plugin_hosts.recorded(c, "relay-2", snapshotted))
    asked = with_site(fleet, lambda c: plugin_hosts.ask(c, "ldap", "connectors/ldap", "1.2.0"))
    for request in (asked[0].id, asked[0].id + 100):  # another agent's, and none at all
        assert answer(fleet, credentials["relay-1"], request) == Close.OUT_OF_ORDER
    assert request_states(fleet) == [("relay-2", "pending")]  # still to be sent to relay-2
    actions = [e["action"] for e in fleet.api("GET", "/api/audit")]
    assert "agent.plugin_restore" not in actions


def answer(fleet: Fleet, credential: str, request: int) -> int:
    """The close code the server answers a ``plugin_restored`` for ``request`` with."""
    headers = {"Authorization": f"Bearer {credential}"}
    url = f"ws://127.0.0.1:{fleet.port}/agent/v1"
    with ws_connect(url, additional_headers=headers, open_timeout=10) as socket:
        socket.send(Hello(agent_id="relay-1", version="1.0.0", protocol=1).wire())
        assert json.loads(socket.recv(timeout=10))["type"] == "welcome"
        socket.send(PluginRestored(request=request, snapshot="1.2.0-x").wire())
        try:
            while True:
                socket.recv(timeout=10)  # heartbeats aside, the server only closes
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server closed the connection itself"
            return closed.rcvd.code
