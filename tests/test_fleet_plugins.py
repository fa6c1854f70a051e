"""Plug-in directories on agent hosts, with real agents: an upgrade whose release moves a
plug-in makes the agent snapshot its directory first (kept on its host, reported to the
server, shown by `plugin list`); `plugin rollback` then puts that host's directory back byte
for byte through the control plane, while the agent stays on the new release, and reports a
host whose snapshot was tampered with (exit 3). An agent that cannot read its plug-in
directory refuses the upgrade and says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_runner import stairway
from fleet_harness import Fleet, fleet_site, make_build, wait_until
from stairway import plugin_snapshots
from stairway.fleet import agent_plugins
from stairway.fleet.messages import PluginDirectory

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
