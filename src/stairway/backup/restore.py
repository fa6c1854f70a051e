"""Restoring a backup: everything staged beside its target and checked, then swapped in.

Nothing live is touched until every member has been extracted, its SHA-256 matched against the
manifest, and the database restored beside the live one. Then each part is put in place by
renames: the database, the data directory (old one kept aside until the new one is in), and
each config file.
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
from stairway.backup.archive import extract
from stairway.backup.manifest import BackupManifest, parse_manifest
from stairway.backup.snapshot import exclusive, remove_leftovers
from stairway.errors import BackupError
from stairway.files import sync_directory


@dataclass(frozen=True)
class RestoreTarget:
    product: str
    engine: Engine
    data_dir: Path | None
    backup_dir: Path
    accept: Callable[[BackupManifest], None] | None = None  # may refuse, before anything live


def restore_backup(target: RestoreTarget, path: Path) -> BackupManifest:
    """Put the site back as the backup at ``path`` holds it; refuses a damaged or foreign one."""
    with exclusive(target.backup_dir):
        remove_leftovers(target.backup_dir)
        return _restore(target, path)


def _restore(target: RestoreTarget, path: Path) -> BackupManifest:
    with tempfile.TemporaryDirectory(dir=target.backup_dir, prefix=".restore-") as scratch:
        staging = Path(scratch)
        data = _data_staging(target.data_dir, path.stem)
        try:
            found = extract(
                path,
                {
                    "database": staging / "database",
                    "config": staging / "config",
                    "data": data or staging / "data",
                },
            )
            manifest = parse_manifest(found.manifest, path.name)
            manifest.check(found.members)
            _check_fits(manifest, target, data)
            if target.accept:  # last: it may stop the product
                target.accept(manifest)
            _restore_links(manifest, data)
            _restore_database(manifest, target.engine, staging)
        except BaseException:
            if data is not None:
                shutil.rmtree(data, ignore_errors=True)
            raise
        if data is not None and not manifest.data_dir:
            shutil.rmtree(data, ignore_errors=True)  # the backup has none: the live one stays
        _swap_data(data if manifest.data_dir else None, target.data_dir)
        _swap_config(manifest, staging)
    return manifest


def _data_staging(data_dir: Path | None, name: str) -> Path | None:
    """A directory beside the data directory (same file system: the swap is a rename)."""
    if data_dir is None:
        return None
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = data_dir.with_name(f".{data_dir.name}.restore-{name}")
    shutil.rmtree(staging, ignore_errors=True)  # left by a run killed before its swap
    staging.mkdir()
    return staging


def _check_fits(manifest: BackupManifest, target: RestoreTarget, data: Path | None) -> None:
    if manifest.product != target.product:
        raise BackupError(
            f"backup {manifest.id} is of {manifest.product}, this site runs {target.product}",
            hint="restore it on a site of the same product",
        )
    kind = database.engine_kind(target.engine)
    if manifest.engine != kind:
        raise BackupError(
            f"backup {manifest.id} holds a {manifest.engine} database, this site uses {kind}",
            hint="move data between engines with `stairway export` and `stairway import`",
        )
    if manifest.data_dir and data is None:
        raise BackupError(
            f"backup {manifest.id} holds a data directory but site.toml names none",
            hint="set data_dir in the [site] table",
        )


def _restore_links(manifest: BackupManifest, data: Path | None) -> None:
    """Recreate the data directory's symbolic links; one pointing out of the tree is refused."""
    for name, pointee in manifest.links.items():
        if data is None:
            break
        link = data / PurePosixPath(name)
        resolved = os.path.normpath(os.path.join(os.path.dirname(name), pointee))
        if os.path.isabs(pointee) or resolved.startswith(".."):
            raise BackupError(
                f"backup {manifest.id}: the link data/{name} points out of the data directory "
                f"({pointee}): refused",
                hint="restore refuses links that leave the tree; fix the archive or the link",
            )
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(pointee)


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


def _swap_config(manifest: BackupManifest, staging: Path) -> None:
    for item in manifest.config_files:
        live = Path(item.path)
        live.parent.mkdir(parents=True, exist_ok=True)
        beside = live.with_name(f".{live.name}.restoring")
        shutil.copy2(staging / PurePosixPath(item.member), beside)
        with beside.open("rb") as handle:
            os.fsync(handle.fileno())
        faults.point("before:config-swap")
        os.replace(beside, live)
        sync_directory(live.parent)
        faults.point("after:config-swap")
