"""The journal of a plug-in restore on an agent's host: one intent file per restore in flight.

An agent puts a plug-in's directory back by staging the snapshot beside it, two renames (the
live directory set aside, the staged one renamed into its place), then removing the set-aside
one. Before it stages anything it writes ``<home>/plugins/.restore-NAME.json`` (fsynced) naming
the three directories; after the last step it removes it. A kill in between leaves the intent
behind, and ``settle`` (on the agent's start, and before any restore or upgrade snapshot)
reads what is on disk:

- the staged directory is there: the second rename was not done, so the restore is undone
  (the set-aside directory, if any, goes back; the staged one is removed): the old content;
- it is not: either nothing was staged yet (nothing was set aside either) or the snapshot is
  live, so the restore is finished: the set-aside directory, if any, is removed.

Either way the plug-in's directory is wholly the old content or wholly the snapshot's.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stairway import faults, plugin_snapshots
from stairway.files import sync_directory, write_atomic

log = logging.getLogger(__name__)
PREFIX = ".restore-"


@dataclass(frozen=True)
class RestoreIntent:
    """A restore of ``plugin`` from ``snapshot``: ``staging`` to become ``live``, the live
    directory set aside as ``previous`` meanwhile."""

    plugin: str
    snapshot: str
    live: Path
    staging: Path
    previous: Path

    def describe(self) -> str:
        """``ldap from snapshot 1.2.0-... into /srv/relay/connectors/ldap``."""
        return f"{self.plugin} from snapshot {self.snapshot} into {self.live}"

    def outcome(self) -> Literal["undo", "finish"]:
        """What a leftover intent needs, from what is on disk (see the module's docstring)."""
        return "undo" if self.staging.exists() else "finish"


def path(home: Path, plugin: str) -> Path:
    """Where the intent of a restore of ``plugin`` is kept."""
    return home / "plugins" / f"{PREFIX}{plugin}.json"


def record(home: Path, intent: RestoreIntent) -> None:
    """Write the intent, fsynced, before anything is staged."""
    data = {"plugin": intent.plugin, "snapshot": intent.snapshot}
    data |= {name: str(getattr(intent, name)) for name in ("live", "staging", "previous")}
    faults.point("before:plugin-intent")
    write_atomic(path(home, intent.plugin), json.dumps(data, sort_keys=True).encode())
    faults.point("after:plugin-intent")


def done(home: Path, intent: RestoreIntent) -> None:
    """The restore is whole: its intent goes."""
    path(home, intent.plugin).unlink(missing_ok=True)
    sync_directory(home / "plugins")


def settle(home: Path) -> list[str]:
    """Finish or undo every restore a kill interrupted; what was done, one line each."""
    folder = home / "plugins"
    said = []
    for found in sorted(folder.glob(f"{PREFIX}*.json")) if folder.is_dir() else []:
        intent = _read(found)
        if intent is None:  # written whole or not at all (write_atomic): a damaged disk
            log.error("plug-in restore intent %s is unreadable: left for the operator", found)
            continue
        said.append(_settle_one(home, intent))
    return said


def _settle_one(home: Path, intent: RestoreIntent) -> str:
    if intent.outcome() == "undo":
        plugin_snapshots.swap_back(intent.live, intent.previous)
        shutil.rmtree(intent.staging, ignore_errors=True)
        said = "undone: the old content stays"
    elif intent.previous.exists():
        shutil.rmtree(intent.previous)
        said = "finished: the snapshot's content stays"
    else:  # nothing staged yet, or everything done but removing the intent
        said = "settled: nothing was left half done"
    done(home, intent)
    log.warning("plug-in restore of %s interrupted: %s", intent.describe(), said)
    return f"restore of {intent.describe()} interrupted: {said}"


def _read(found: Path) -> RestoreIntent | None:
    try:
        data = json.loads(found.read_bytes())
        places = (Path(data[name]) for name in ("live", "staging", "previous"))
        return RestoreIntent(str(data["plugin"]), str(data["snapshot"]), *places)
    except (OSError, ValueError, KeyError, TypeError):
        return None
