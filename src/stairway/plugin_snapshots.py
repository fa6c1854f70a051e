"""Snapshots of a plug-in's directory: its files copied under the backup directory with a
manifest of their digests, checked before anything is put back.

A snapshot is ``<backup_dir>/plugins/<name>/<id>/``: ``files/`` holds the directory's regular
files and empty directories, and ``manifest.json`` the files' SHA-256 digests, the empty
directories (a product may expect one, e.g. a ``work/`` it writes into) and the directory's
links (each kept inside it). A snapshot is written under a temporary name and renamed into
place, so a kill leaves none or a whole one. Before a restore every name is checked (relative,
no ``..``), every file is a regular file whose digest matches, every empty directory a real
directory, nothing is there that the manifest does not list, and every link stays inside the
directory: a tampered snapshot is refused as a whole. Once a new snapshot is taken, older ones
of the same version are pruned: only the newest of each version is kept (``prune``).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from stairway import faults
from stairway.errors import PluginError
from stairway.files import sync_directory, write_atomic

MANIFEST = "manifest.json"
FILES = "files"
PARTIAL = ".partial"


@dataclass(frozen=True)
class PluginSnapshot:
    """One snapshot of a plug-in's directory, as its manifest describes it."""

    id: str
    plugin: str
    version: str
    taken: str  # ISO time
    files: dict[str, str]  # relative name -> sha256
    links: dict[str, str]  # relative name -> link target
    path: Path
    dirs: tuple[str, ...] = ()  # relative names of the empty directories

    def describe(self) -> str:
        """``ldap 1.2.0 (snapshot 1.2.0-20260101T120000Z, 3 files)``."""
        return f"{self.plugin} {self.version} (snapshot {self.id}, {len(self.files)} files)"


def snapshots_dir(backup_dir: Path, plugin: str) -> Path:
    """Where the snapshots of ``plugin`` are kept."""
    return backup_dir / "plugins" / plugin


def take(backup_dir: Path, plugin: str, version: str, directory: Path) -> PluginSnapshot:
    """Copy ``directory`` (the plug-in at ``version``) into a new snapshot; an absent directory
    gives an empty one. A link leading out of the directory is refused."""
    taken = datetime.now(UTC)
    snapshot_id = f"{version}-{taken.strftime('%Y%m%dT%H%M%S%fZ')}"
    final = snapshots_dir(backup_dir, plugin) / snapshot_id
    partial = final.with_name(final.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _write(partial, plugin, version, taken, directory)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # a failed snapshot leaves nothing behind
        raise
    faults.point("before:plugin-snapshot")
    os.replace(partial, final)
    sync_directory(final.parent)
    return read(final)


def _write(partial: Path, plugin: str, version: str, taken: datetime, directory: Path) -> None:
    """The snapshot's files and manifest under ``partial``; an unreadable directory or file
    raises its ``OSError`` rather than leaving it out."""
    (partial / FILES).mkdir(parents=True)
    faults.point("before:plugin-read")
    held = directory.exists() or directory.is_symlink()  # absent: an empty snapshot
    files, links = _copy_in(directory, partial / FILES, plugin) if held else ({}, {})
    dirs = _empty_dirs(directory) if held else []
    for name in dirs:
        (partial / FILES / name).mkdir(parents=True, exist_ok=True)
    manifest: dict[str, object] = {"plugin": plugin, "version": version}
    manifest["taken"] = taken.isoformat()
    manifest |= {"files": files, "links": links, "dirs": dirs}
    write_atomic(partial / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())


def _copy_in(directory: Path, target: Path, plugin: str) -> tuple[dict[str, str], dict[str, str]]:
    files: dict[str, str] = {}
    links: dict[str, str] = {}
    for path, relative in _walk(directory):
        if path.is_symlink():
            links[relative] = _inside(plugin, relative, os.readlink(path))
        elif path.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)
            files[relative] = digest(target / relative)
    return files, links


def _empty_dirs(directory: Path) -> list[str]:
    """The directories below ``directory`` that hold nothing (links not followed)."""
    found = []
    for root, dirs, _names in os.walk(directory, onerror=_unreadable):
        for name in dirs:
            path = Path(root, name)
            if not path.is_symlink() and not any(path.iterdir()):
                found.append(path.relative_to(directory).as_posix())
    return sorted(found)


def _walk(directory: Path) -> Iterator[tuple[Path, str]]:
    """Every entry below ``directory`` with its relative name, links not followed."""
    for root, dirs, names in os.walk(directory, onerror=_unreadable):
        for name in sorted(names + [d for d in dirs if Path(root, d).is_symlink()]):
            path = Path(root, name)
            yield path, path.relative_to(directory).as_posix()


def _unreadable(err: OSError) -> None:
    """``os.walk`` skips what it cannot list; a snapshot must not: it would be a way back to
    a directory with files missing."""
    raise err


def digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def snapshots(backup_dir: Path, plugin: str) -> list[PluginSnapshot]:
    """The kept snapshots of ``plugin``, oldest first; unreadable ones are left out (a restore
    of one names it and says why)."""
    folder = snapshots_dir(backup_dir, plugin)
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_dir() and not path.name.endswith(PARTIAL):
            try:
                found.append(read(path))
            except PluginError:
                continue
    return sorted(found, key=lambda s: s.taken)


def superseded(kept: list[PluginSnapshot]) -> list[PluginSnapshot]:
    """The snapshots (of one plug-in, oldest first) that a newer one of the same version
    replaces: a restore of a version always takes its newest, so these are never used."""
    newest = {s.version: s for s in kept}  # oldest first: the last of each version wins
    return [s for s in kept if newest[s.version] is not s]


def prune(backup_dir: Path, plugin: str) -> list[str]:
    """Remove the superseded snapshots of ``plugin``; their ids. One whose manifest cannot be
    read is left for the operator to look at."""
    gone = superseded(snapshots(backup_dir, plugin))
    for snapshot in gone:
        shutil.rmtree(snapshot.path)
    if gone:
        sync_directory(snapshots_dir(backup_dir, plugin))
    return [s.id for s in gone]


def read(path: Path) -> PluginSnapshot:
    """The snapshot at ``path`` as its manifest says (not yet checked against its files)."""
    try:
        data: Any = json.loads((path / MANIFEST).read_bytes())
        return PluginSnapshot(
            path.name,
            str(data["plugin"]),
            str(data["version"]),
            str(data["taken"]),
            {str(k): str(v) for k, v in data["files"].items()},
            {str(k): str(v) for k, v in data["links"].items()},
            path,
            tuple(str(d) for d in data.get("dirs", [])),  # none before empty ones were kept
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise _refused(path.name, f"its manifest is unreadable ({err})") from None


def check(snapshot: PluginSnapshot) -> None:
    """Refuse the snapshot unless every name is safe, every file matches its digest, nothing
    is unlisted and every link stays inside the directory."""
    top = snapshot.path / FILES
    for name in [*snapshot.files, *snapshot.links, *snapshot.dirs]:
        _safe_name(snapshot, name)
    for name, pointee in snapshot.links.items():
        _inside(snapshot.plugin, name, pointee, snapshot.id)
    for name, expected in snapshot.files.items():
        path = top / name
        if path.is_symlink() or not path.is_file() or _resolved(path) != _resolved(top) / name:
            raise _refused(snapshot.id, f"{name} is not a plain file inside the snapshot")
        if digest(path) != expected:
            raise _refused(snapshot.id, f"{name} does not match its digest: it was changed")
    for name in snapshot.dirs:
        path = top / name
        if path.is_symlink() or not path.is_dir() or _resolved(path) != _resolved(top) / name:
            raise _refused(snapshot.id, f"{name} is not a directory inside the snapshot")
    present = {relative for path, relative in _walk(top) if not path.is_dir() or path.is_symlink()}
    present |= set(_empty_dirs(top))
    extra = sorted(present - set(snapshot.files) - set(snapshot.dirs))
    if extra:
        raise _refused(snapshot.id, f"{extra[0]} is there but not in its manifest")


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _safe_name(snapshot: PluginSnapshot, name: str) -> None:
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or "\\" in name or ".." in parts or "." in parts:
        raise _refused(snapshot.id, f"its manifest names {name!r}, outside the plug-in directory")


def _inside(plugin: str, name: str, pointee: str, snapshot_id: str | None = None) -> str:
    """``pointee`` when the link ``name`` resolves inside the plug-in directory."""
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), pointee))
    if pointee.startswith("/") or joined == ".." or joined.startswith("../"):
        what = f"the link {name} points out of the plug-in directory ({pointee!r})"
        if snapshot_id is not None:
            raise _refused(snapshot_id, what)
        raise PluginError(
            f"plug-in {plugin}: {what}: it cannot be snapshotted",
            hint="replace the link with the file it points to, then run the command again; "
            "nothing was changed",
        )
    return pointee


def _refused(snapshot_id: str, why: str) -> PluginError:
    return PluginError(
        f"snapshot {snapshot_id}: {why}: refused",
        hint="restore the plug-in from a full backup (`stairway restore`) or another snapshot "
        "(`stairway plugin rollback NAME --to VERSION`); nothing was changed",
    )


def stage(snapshot: PluginSnapshot, staging: Path) -> None:
    """Copy the checked snapshot into ``staging`` (a fresh directory) and make its links."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in snapshot.files:
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(snapshot.path / FILES / name, staging / name)
    for name, pointee in snapshot.links.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).symlink_to(pointee)
    for name in snapshot.dirs:
        (staging / name).mkdir(parents=True, exist_ok=True)
    faults.point("after:plugin-stage")


def swap_in(staging: Path, live: Path, previous: Path) -> None:
    """``live`` set aside as ``previous``, ``staging`` renamed to ``live``: two renames."""
    live.parent.mkdir(parents=True, exist_ok=True)
    if not previous.exists():
        if live.exists():
            os.replace(live, previous)
        else:
            previous.mkdir()  # none before: an empty one to go back to
    faults.point("between:plugin-swap")
    os.replace(staging, live)
    sync_directory(live.parent)


def swap_back(live: Path, previous: Path) -> None:
    """Undo ``swap_in``: ``previous`` is ``live`` again, whatever half of the swap was done."""
    if not previous.exists():
        return
    shutil.rmtree(live, ignore_errors=True)
    os.replace(previous, live)
    sync_directory(live.parent)
