"""An agent's plug-in restore killed by SIGKILL at every point between its side effects: after
the intent is settled (as the agent's start does), the plug-in's directory is byte for byte the
old content or the snapshot's, and nothing is left beside it. And the snapshots pruning keeps
the newest of each version."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stairway import plugin_snapshots
from stairway.fleet import agent_plugins, restore_intent
from stairway.fleet.messages import PluginDirectory, PluginRollback
from stairway.plugin_snapshots import PluginSnapshot

RESTORE = """import sys
from pathlib import Path
from stairway.fleet import agent_plugins
from stairway.fleet.messages import PluginRollback
asked = PluginRollback(request=1, plugin="ldap", directory="connectors/ldap", version="1.2.0")
agent_plugins.restore(Path(sys.argv[1]), Path(sys.argv[2]), asked)
"""
ASKED = PluginRollback(request=1, plugin="ldap", directory="connectors/ldap", version="1.2.0")
# every point of a restore, in order: whether the snapshot is live once it is settled, and
# what settling it says (None: no intent was written yet)
POINTS = [
    ("before:plugin-intent", False, None),
    ("after:plugin-intent", False, "nothing was left half done"),
    ("after:plugin-stage", False, "undone"),
    ("between:plugin-swap", False, "undone"),
    ("after:plugin-swap", True, "finished"),
    ("after:plugin-previous-removed", True, "nothing was left half done"),
]


def fill(directory: Path, mark: bytes) -> None:
    (directory / "lib").mkdir(parents=True)
    (directory / "lib" / "ldap.jar").write_bytes(mark + bytes(range(256)) * 40)
    (directory / "connector.properties").write_bytes(mark + b"\nhost = ldap.example\n")
    (directory / "work").mkdir()


def contents(directory: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory (as None) under ``directory``."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes() if path.is_file() else None
        for path in sorted(directory.rglob("*"))
    }


def a_host(tmp_path: Path, held: bool = True) -> tuple[Path, Path, Path]:
    """An agent home keeping a snapshot of ldap 1.2.0, and its data directory, where the
    plug-in is at 1.3.0 (``held``) or absent; the home, the data and the live directory."""
    home, data = tmp_path / "home", tmp_path / "data"
    live = data / "connectors" / "ldap"
    fill(live, b"old 1.2.0")
    plugin_snapshots.take(home, "ldap", "1.2.0", live)
    shutil.rmtree(live)
    if held:
        fill(live, b"new 1.3.0")
    else:
        live.parent.mkdir(parents=True, exist_ok=True)
    return home, data, live


def killed_at(point: str, home: Path, data: Path) -> None:
    env = os.environ | {"STAIRWAY_FAULT": point}
    done = subprocess.run(
        [sys.executable, "-c", RESTORE, str(home), str(data)], env=env, capture_output=True
    )
    assert done.returncode == -9, done.stderr.decode()


@pytest.mark.parametrize(("point", "finished", "said"), POINTS)
def test_a_restore_killed_anywhere_is_wholly_old_or_wholly_the_snapshot_once_settled(
    tmp_path: Path, point: str, finished: bool, said: str | None
) -> None:
    home, data, live = a_host(tmp_path)
    old = contents(live)
    snapshot = plugin_snapshots.snapshots(home, "ldap")[0]
    killed_at(point, home, data)
    intent = restore_intent.path(home, "ldap")
    assert intent.exists() == (said is not None)  # journaled before anything is staged
    settled = restore_intent.settle(home)
    assert [said in line for line in settled] == ([] if said is None else [True]), settled
    assert contents(live) == (contents(snapshot.path / "files") if finished else old)
    assert contents(live) != {}
    assert sorted(p.name for p in live.parent.iterdir()) == ["ldap"]  # nothing left beside
    assert not intent.exists()
    again = agent_plugins.restore(home, data, ASKED)  # the request, sent again, goes through
    assert again.id == snapshot.id
    assert contents(live) == contents(snapshot.path / "files")


def test_a_restore_into_a_host_without_the_directory_killed_mid_swap_leaves_none(
    tmp_path: Path,
) -> None:
    home, data, live = a_host(tmp_path, held=False)
    killed_at("between:plugin-swap", home, data)
    restore_intent.settle(home)
    assert not live.exists()
    assert list(live.parent.iterdir()) == []


def test_a_restore_runs_without_leaving_an_intent_and_settle_then_does_nothing(
    tmp_path: Path,
) -> None:
    home, data, live = a_host(tmp_path)
    done = agent_plugins.restore(home, data, ASKED)
    assert contents(live) == contents(done.path / "files")
    assert not restore_intent.path(home, "ldap").exists()
    assert restore_intent.settle(home) == []


def kept(ids: list[tuple[str, str]], where: Path) -> list[PluginSnapshot]:
    """Snapshots of the given ``(version, taken)``, oldest first (manifests alone)."""
    return [PluginSnapshot(f"{v}-{t}", "ldap", v, t, {}, {}, where / f"{v}-{t}") for v, t in ids]


def test_only_the_newest_snapshot_of_each_version_is_kept(tmp_path: Path) -> None:
    found = kept([("1.2.0", "1"), ("1.1.0", "2"), ("1.2.0", "3"), ("1.2.0", "4")], tmp_path)
    assert [s.id for s in plugin_snapshots.superseded(found)] == ["1.2.0-1", "1.2.0-3"]
    assert plugin_snapshots.superseded(found[:2]) == []


def test_an_agent_upgrade_snapshot_prunes_the_older_ones_of_its_version(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    fill(data / "connectors" / "ldap", b"1.2.0")
    moved = PluginDirectory.model_validate(
        {"name": "ldap", "directory": "connectors/ldap", "from": "1.2.0", "to": "1.3.0"}
    )
    older = plugin_snapshots.take(home, "ldap", "1.1.0", data / "connectors" / "ldap")
    first = agent_plugins.snapshot_all(home, data, [moved])
    second = agent_plugins.snapshot_all(home, data, [moved])
    left = plugin_snapshots.snapshots(home, "ldap")
    assert [s.id for s in left] == [older.id, second[0].id]
    assert not first[0].path.exists()
