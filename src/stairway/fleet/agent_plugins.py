"""Plug-in directories on an agent's host: snapshotted before the agent goes to a build whose
release moves them, and put back when the operator rolls one plug-in back.

The directories live under the agent's ``data_dir`` (``agent.json``), each at the path the
catalog's ``[[plugin]]`` names; their snapshots are kept in the agent's home, under
``plugins/NAME/ID/``, in the format of the site's own (``stairway.plugin_snapshots``). A
plug-in whose directory the host does not have is not held there: nothing to snapshot. One
that cannot be snapshotted (unreadable, the disk full) refuses the upgrade with the reason,
rather than letting it go ahead without a way back. A restore is checked, staged beside the
live directory and swapped in by renames, journaled by an intent file
(``stairway.fleet.restore_intent``) so that a kill leaves the directory wholly old or wholly
put back. Older snapshots of a version a newer one is kept of are pruned, as the site's are.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from stairway import faults, plugin_snapshots
from stairway.errors import PluginError
from stairway.files import sync_directory
from stairway.fleet import restore_intent
from stairway.fleet.messages import PluginDirectory, PluginRollback
from stairway.fleet.restore_intent import RestoreIntent
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
    try:
        restore_intent.settle(home)  # a restore a kill interrupted: snapshot a whole directory
    except OSError as err:
        raise SnapshotRefused(f"cannot settle an interrupted plug-in restore: {err}") from None
    taken = []
    for plugin in moved:
        try:
            live = live_directory(data_dir, plugin.directory)
            if live.exists() or live.is_symlink():
                taken.append(plugin_snapshots.take(home, plugin.name, plugin.from_, live))
                plugin_snapshots.prune(home, plugin.name)
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
    restore_intent.settle(home)
    staging = live.with_name(f".{live.name}.stairway-staged")
    previous = live.with_name(f".{live.name}.stairway-previous")
    plugin_snapshots.swap_back(live, previous)  # left by an agent from before the intent file
    intent = RestoreIntent(asked.plugin, snapshot.id, live, staging, previous)
    restore_intent.record(home, intent)
    plugin_snapshots.stage(snapshot, staging)
    _swap(intent)
    restore_intent.done(home, intent)
    return snapshot


def _swap(intent: RestoreIntent) -> None:
    """The staged snapshot in the live directory's place, the old one removed; no directory
    is set aside when the host had none (undone, it stays absent)."""
    intent.live.parent.mkdir(parents=True, exist_ok=True)
    if intent.live.exists() or intent.live.is_symlink():
        os.replace(intent.live, intent.previous)
    faults.point("between:plugin-swap")
    os.replace(intent.staging, intent.live)
    sync_directory(intent.live.parent)
    faults.point("after:plugin-swap")
    shutil.rmtree(intent.previous, ignore_errors=True)
    faults.point("after:plugin-previous-removed")
