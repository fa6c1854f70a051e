"""Restoring a backup: checked first, then staged beside its target and checked, then swapped in.

Nothing is written before the manifest has been read and checked against the archive's rules
and the site (``admission``): the site's own database, data directory and config files as
site.toml lists them now are all a restore may replace. Nothing live is touched until every
member has been extracted, its SHA-256 matched against the manifest, and the database restored
beside the live one. Then each part is put in place by renames: the database, the data directory
(old one kept aside until the new one is in), and each config file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import Engine

from stairway import faults
from stairway.backup import database
from stairway.backup.admission import Admitted, SiteShape, admit
from stairway.backup.links import restore_links
from stairway.backup.manifest import BackupManifest
from stairway.backup.reading import Opened, open_backup, unpack
from stairway.backup.snapshot import check_apart, exclusive, remove_leftovers
from stairway.database import sqlite_path
from stairway.errors import BackupError
from stairway.files import sync_directory

SPACE_MARGIN = 16 << 20  # at most this is kept free after staging, for the database and the logs
MIN_SPACE_MARGIN = 1 << 20  # at least this


def space_margin(staged: int) -> int:
    """What a restore keeps free on a file system beyond the ``staged`` bytes it writes there:
    as much again, from 1 MiB up to 16 MiB. A fixed 16 MiB would refuse every restore, and so
    every rollback, on a small backup disk that holds the backup several times over."""
    return min(SPACE_MARGIN, max(MIN_SPACE_MARGIN, staged))


@dataclass(frozen=True)
class RestoreTarget:
    product: str
    engine: Engine
    data_dir: Path | None
    backup_dir: Path
    accept: Callable[[BackupManifest], None] | None = None  # may refuse, before anything live
    config_files: tuple[Path, ...] = ()  # the site's own, as site.toml lists them now
    # runs once every part is staged and checked, before anything live is swapped: it stops
    # the product (so the product serves until the backup has proved whole)
    before_swap: Callable[[BackupManifest], None] | None = None


def restore_backup(target: RestoreTarget, path: Path) -> BackupManifest:
    """Put the site back as the backup at ``path`` holds it; refuses a damaged, foreign or
    hostile one before writing anything."""
    check_apart(target.data_dir, target.backup_dir)
    with exclusive(target.backup_dir):
        remove_leftovers(target.backup_dir)
        opened = open_backup(path)
        admitted = admit(opened.manifest, _shape(target))
        if target.accept:
            target.accept(opened.manifest)
        _check_space(opened.manifest, target)
        _restore(target, opened, admitted)
        return opened.manifest


def _shape(target: RestoreTarget) -> SiteShape:
    return SiteShape(
        product=target.product,
        engine=database.engine_kind(target.engine),
        has_data_dir=target.data_dir is not None,
        config_files=target.config_files,
    )


def _restore(target: RestoreTarget, opened: Opened, admitted: Admitted) -> None:
    manifest = opened.manifest
    with tempfile.TemporaryDirectory(dir=target.backup_dir, prefix=".restore-") as scratch:
        staging = Path(scratch)
        data = _data_staging(target.data_dir, opened.path.stem)
        try:
            unpack(
                opened,
                {
                    "database": staging / "database",
                    "config": staging / "config",
                    "data": data or staging / "data",
                },
            )
            if data is not None and manifest.data_dir:
                restore_links(manifest.links, data, manifest.id)
            if target.before_swap:
                target.before_swap(manifest)
            _restore_database(manifest, target.engine, staging)
        except BaseException:
            if data is not None:
                shutil.rmtree(data, ignore_errors=True)
            raise
        if data is not None and not manifest.data_dir:
            shutil.rmtree(data, ignore_errors=True)  # the backup has none: the live one stays
        _swap_data(data if manifest.data_dir else None, target.data_dir)
        _swap_config(admitted.config, staging)


def _data_staging(data_dir: Path | None, name: str) -> Path | None:
    """A directory beside the data directory (same file system: the swap is a rename)."""
    if data_dir is None:
        return None
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = data_dir.with_name(f".{data_dir.name}.restore-{name}")
    shutil.rmtree(staging, ignore_errors=True)  # left by a run killed before its swap
    staging.mkdir()
    return staging


def _check_space(manifest: BackupManifest, target: RestoreTarget) -> None:
    """Refuse before staging when a file system would fill up; the staged parts and where."""
    by_device: dict[int, tuple[Path, int]] = {}
    for where, size in _needs(manifest, target):
        place = _existing(where)
        first, total = by_device.get(place.stat().st_dev, (place, 0))
        by_device[place.stat().st_dev] = (first, total + size)
    for where, total in by_device.values():
        free = shutil.disk_usage(where).free
        needed = total + space_margin(total)
        if needed > free:
            raise BackupError(
                f"restoring backup {manifest.id} needs {_mb(needed)} on the file "
                f"system of {where}, which has {_mb(free)} free: refused",
                hint="free space there, then run the restore again; nothing was changed",
            )


def _needs(manifest: BackupManifest, target: RestoreTarget) -> list[tuple[Path, int]]:
    data = sum(size for name, size in manifest.sizes.items() if name.startswith("data/"))
    if target.data_dir is None:
        return [(target.backup_dir, manifest.size)]
    needs = [(target.backup_dir, manifest.size - data), (target.data_dir.parent, data)]
    live = sqlite_path(target.engine)
    if live is not None:  # the staged file is copied beside the live one before the rename
        needs.append((live.parent, manifest.members[manifest.database].size))
    return needs


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _restore_database(manifest: BackupManifest, engine: Engine, staging: Path) -> None:
    dump = staging / PurePosixPath(manifest.database)
    if manifest.engine == "sqlite":
        database.check_sqlite(dump)
        database.swap_sqlite(engine, dump)
    else:
        database.restore_postgres(engine, dump, manifest.id)


def _swap_data(staged: Path | None, data_dir: Path | None) -> None:
    if staged is None or data_dir is None:
        return
    old = data_dir.with_name(f".{data_dir.name}.replaced")
    shutil.rmtree(old, ignore_errors=True)
    faults.point("before:data-swap")
    if data_dir.exists():
        os.replace(data_dir, old)
    faults.point("between:data-swap")  # no data directory until the next rename
    os.replace(staged, data_dir)
    sync_directory(data_dir.parent)
    faults.point("after:data-swap")
    shutil.rmtree(old, ignore_errors=True)


def _swap_config(config: tuple[tuple[str, Path], ...], staging: Path) -> None:
    """Each staged config member over the site's own file (the path site.toml gives)."""
    for member, live in config:
        live.parent.mkdir(parents=True, exist_ok=True)
        beside = live.with_name(f".{live.name}.restoring")
        shutil.copy2(staging / PurePosixPath(member), beside)
        with beside.open("rb") as handle:
            os.fsync(handle.fileno())
        faults.point("before:config-swap")
        os.replace(beside, live)
        sync_directory(live.parent)
        faults.point("after:config-swap")
