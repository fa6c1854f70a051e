"""Opening a backup to restore or rehearse it: the manifest first, checked, then the members.

Two passes over the archive. The first reads only the manifest and checks it against the
archive's rules before anything is written; the second stages exactly the members it lists and
compares every SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stairway.backup.admission import check_archive
from stairway.backup.archive import extract, read_manifest
from stairway.backup.manifest import BackupManifest, parse_manifest


@dataclass(frozen=True)
class Opened:
    """A backup whose manifest was read and checked; nothing of it is staged yet."""

    path: Path
    manifest: BackupManifest
    raw: bytes  # the manifest as read, compared when the second pass meets it again
    compressed: int  # the archive's size on disk


def open_backup(path: Path) -> Opened:
    """The backup at ``path`` with its manifest, refused if the manifest breaks the rules."""
    compressed = path.stat().st_size
    raw = read_manifest(path)
    manifest = parse_manifest(raw, path.name)
    check_archive(manifest, compressed)
    return Opened(path, manifest, raw, compressed)


def unpack(opened: Opened, place: dict[str, Path]) -> None:
    """Stage the listed members into ``place`` (folder -> directory); refused unless every one
    is there with its size and SHA-256."""
    found = extract(opened.path, place, opened.manifest.sizes, opened.raw)
    opened.manifest.check(found)
