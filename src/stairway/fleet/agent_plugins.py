"""Plug-in directories on an agent's host: snapshotted before the agent goes to a build whose
release moves them, and put back when the operator rolls one plug-in back.

The directories live under the agent's ``data_dir`` (``agent.json``), each at the path the
catalog's ``[[plugin]]`` names; their snapshots are kept in the agent's home, under
``plugins/NAME/ID/``, in the format of the site's own (``stairway.plugin_snapshots``). A
plug-in whose directory the host does not have is not held there: nothing to snapshot. One
that cannot be snapshotted (unreadable, the disk full) refuses the upgrade with the reason,
rather than letting it go ahead without a way back. A restore is checked, staged beside the
live directory and swapped in by renames, as the site's own is.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from stairway import plugin_snapshots
from stairway.errors import PluginError
from stairway.fleet.messages import PluginDirectory, PluginRollback
from stairway.plugin_snapshots import PluginSnapshot


class SnapshotRefused(Exception):
    """A plug-in directory the upgrade moves cannot be snapshotted; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def live_directory(data_dir: Path, directory: str) -> Path:
    """Where a plug-in lives on this host; a directory the server names outside the data
    directory is refused (the offer is not signed: its names are not trusted)."""
    parts = PurePosixPath(directory).parts
    if not parts or directory.startswith("/") or "\\" in directory or ".." in parts:
        raise PluginError(
            f"the plug-in directory {directory!r} lies outside the data directory",
            hint="check the [[plugin]] directories of the server's catalog",
        )
    return data_dir / directory


def snapshot_all(
    home: Path, data_dir: Path | None, moved: list[PluginDirectory]
) -> list[PluginSnapshot]:
    """A snapshot, in ``home``, of each moved plug-in's directory this host holds, at the
    version it is at now.

    Raises:
        SnapshotRefused: A directory cannot be read whole, or its snapshot cannot be written.
    """
    if data_dir is None:
        return []  # an agent enrolled without --data-dir holds no plug-ins
    taken = []
    for plugin in moved:
        try:
            live = live_directory(data_dir, plugin.directory)
            if live.exists() or live.is_symlink():
                taken.append(plugin_snapshots.take(home, plugin.name, plugin.from_, live))
        except PluginError as err:
            raise SnapshotRefused(f"plug-in {plugin.name}: {err.message}") from None
        except OSError as err:
            raise SnapshotRefused(
                f"cannot snapshot plug-in {plugin.name} at {data_dir / plugin.directory}: {err}; "
                "without a snapshot the upgrade would have no way back, so it is refused"
            ) from None
    return taken


def restore(home: Path, data_dir: Path | None, asked: PluginRollback) -> PluginSnapshot:
    """Put the plug-in's directory back from the newest snapshot of ``asked.version`` this
    host keeps, checked first.

    Raises:
        PluginError: No data directory, no such snapshot, or a tampered one.
        OSError: The directory cannot be written.
    """
    if data_dir is None:
        raise PluginError(
            "this agent holds no plug-ins: it was enrolled without --data-dir",
            hint="enroll it again with --data-dir DIR",
        )
    live = live_directory(data_dir, asked.directory)
    kept = [s for s in plugin_snapshots.snapshots(home, asked.plugin) if s.version == asked.version]
    if not kept:
        raise PluginError(
            f"no snapshot of plug-in {asked.plugin} at version {asked.version} is kept here",
            hint="an upgrade of this agent that moves the plug-in takes one",
        )
    snapshot = kept[-1]
    plugin_snapshots.check(snapshot)
    staging = live.with_name(f".{live.name}.stairway-staged")
    previous = live.with_name(f".{live.name}.stairway-previous")
    plugin_snapshots.swap_back(live, previous)  # a restore killed half-way is undone first
    plugin_snapshots.stage(snapshot, staging)
    plugin_snapshots.swap_in(staging, live, previous)
    shutil.rmtree(previous, ignore_errors=True)
    return snapshot
