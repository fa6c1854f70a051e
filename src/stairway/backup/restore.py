"""Restoring a backup: checked first, then staged beside its target and checked, then swapped in.

Nothing is written before the manifest has been read and checked against the archive's rules
and the site (``admission``): the site's own database, data directory and config files as
site.toml lists them now are all a restore may replace. Nothing live is touched until every
member has been extracted, its SHA-256 matched against the manifest, the database restored
beside the live one and each config file copied beside its own: every write that can fail for a
full disk is made before the first live change, and a failure up to there removes what it staged
(``StagingFailed`` when the disk was the cause). Then each part is put in place by renames: the
database, the data directory (old one kept aside until the new one is in), and each config file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import Engine

from stairway import disk, faults
from stairway.backup import database
from stairway.backup.admission import Admitted, SiteShape, admit
from stairway.backup.links import restore_links
from stairway.backup.manifest import BackupManifest
from stairway.backup.reading import Opened, open_backup, unpack
from stairway.backup.snapshot import check_apart, exclusive, remove_leftovers
from stairway.database import sqlite_path
from stairway.errors import BackupError, StagingFailed
from stairway.files import sync_directory

SPACE_MARGIN = 16 << 20  # at most this is kept free after staging, for the database and the logs
MIN_SPACE_MARGIN = 1 << 20  # at least this
SERVER_DISK = "the PostgreSQL server's data directory"  # pg_restore writes there, not here
Config = tuple[tuple[str, Path], ...]  # archive member -> the site's own config file


def space_margin(staged: int) -> int:
    """What a restore keeps free on a file system beyond the ``staged`` bytes it writes there:
    as much again, from 1 MiB up to 16 MiB. A fixed 16 MiB would refuse every restore, and so
    every rollback, on a small backup disk that holds the backup several times over."""
    return min(SPACE_MARGIN, max(MIN_SPACE_MARGIN, staged))


@dataclass(frozen=True)
class RestoreTarget:
    """The site a backup is restored into, and the hooks that run on the way."""

    product: str
    engine: Engine
    data_dir: Path | None
    backup_dir: Path
    accept: Callable[[BackupManifest], None] | None = None  # may refuse, before anything live
    config_files: tuple[Path, ...] = ()  # the site's own, as site.toml lists them now
    # runs once every part is staged and checked, before anything live is swapped: it stops
    # the product (so the product serves until the backup has proved whole)
    before_swap: Callable[[BackupManifest], None] | None = None
    # runs once everything is staged beside the live parts, just before the first live change
    # (it records the restore's intent): a failure up to its end has changed nothing live
    before_live: Callable[[BackupManifest], None] | None = None


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
            with _writing(manifest.id, _places(staging, data)):
                faults.point("before:stage-write")
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
            staged = _stage_live(target, manifest, staging, admitted.config)
        except BaseException:
            if data is not None:
                shutil.rmtree(data, ignore_errors=True)
            raise
        if data is not None and not manifest.data_dir:
            shutil.rmtree(data, ignore_errors=True)  # the backup has none: the live one stays
        try:
            _swap_database(manifest, target.engine, staged.database)
            _swap_data(data if manifest.data_dir else None, target.data_dir)
            _swap_config(staged.config)
        except BaseException:  # what is not in yet goes: the restore run again stages it anew
            _unstage(manifest, target.engine, staged.database, list(staged.config))
            if data is not None:
                shutil.rmtree(data, ignore_errors=True)
            raise


@dataclass(frozen=True)
class Staged:
    """What stands beside the live parts, whole and synced, ready to be renamed over them."""

    database: Path | None  # the SQLite copy beside the live file (PostgreSQL: a side database)
    config: tuple[tuple[Path, Path], ...]  # (copy beside, live file)


def _stage_live(
    target: RestoreTarget, manifest: BackupManifest, staging: Path, config: Config
) -> Staged:
    """Every write a restore makes beside the live parts, then ``before_live``: a failure up
    to there leaves the live site as it was, and what was staged is removed."""
    database_copy: Path | None = None
    besides: list[tuple[Path, Path]] = []
    try:
        database_copy = _stage_database(manifest, target.engine, staging)
        for member, live in config:
            with _writing(manifest.id, live):
                besides.append((_stage_config(staging / PurePosixPath(member), live), live))
        if target.before_live:
            with _writing(manifest.id, target.backup_dir):
                target.before_live(manifest)
    except BaseException:
        _unstage(manifest, target.engine, database_copy, besides)
        raise
    return Staged(database_copy, tuple(besides))


def _unstage(
    manifest: BackupManifest,
    engine: Engine,
    database_copy: Path | None,
    besides: list[tuple[Path, Path]],
) -> None:
    for beside, _ in besides:
        beside.unlink(missing_ok=True)
    if database_copy is not None:
        database_copy.unlink(missing_ok=True)
    elif manifest.engine != "sqlite":
        with contextlib.suppress(Exception):  # the first failure is the one to report
            database.drop_staged_postgres(engine, manifest.id)


@contextlib.contextmanager
def _writing(backup_id: str, where: Path | str) -> Iterator[None]:
    """A write failed for the disk's sake while staging: nothing live was changed yet. Said of
    the file system written to (``where`` when the error names no file), not of the source."""
    try:
        yield
    except Exception as error:
        found = disk.trouble(error)
        if found is None or isinstance(error, StagingFailed):
            raise
        directory = where if isinstance(where, str) or where.is_dir() else where.parent
        place = found.where(directory)
        raise StagingFailed(
            f"a write in {place} failed while backup {backup_id} was staged ({found.said})",
            hint=found.advice(directory),
            code=found.code,
            where=place,
        ) from error


def _places(staging: Path, data: Path | None) -> Path:
    """Where unpacking writes, for an error that names no file: ``backup_dir`` (the scratch
    directory's, gone by the time the message is read), or the data directory's parent when
    the data directory is staged on another file system (most of a backup is its data)."""
    if data is None or data.parent.stat().st_dev == staging.stat().st_dev:
        return staging.parent
    return data.parent


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


def _stage_database(manifest: BackupManifest, engine: Engine, staging: Path) -> Path | None:
    dump = staging / PurePosixPath(manifest.database)
    if manifest.engine == "sqlite":
        database.check_sqlite(dump)
        live = sqlite_path(engine)
        assert live is not None
        with _writing(manifest.id, live.parent):
            return database.stage_sqlite(engine, dump)
    with _writing(manifest.id, SERVER_DISK):
        database.stage_postgres(engine, dump, manifest.id)
    return None


def _swap_database(manifest: BackupManifest, engine: Engine, copy: Path | None) -> None:
    if copy is not None:
        database.swap_sqlite(engine, copy)
    else:
        database.swap_postgres(engine, manifest.id)


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


def _stage_config(member: Path, live: Path) -> Path:
    """A config member copied beside the site's own file (the path site.toml gives), synced."""
    live.parent.mkdir(parents=True, exist_ok=True)
    beside = live.with_name(f".{live.name}.restoring")
    try:
        faults.point("before:stage-write")
        shutil.copy2(member, beside)
        with beside.open("rb") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        beside.unlink(missing_ok=True)
        raise
    return beside


def _swap_config(staged: tuple[tuple[Path, Path], ...]) -> None:
    """Each staged copy renamed over the site's own file: no write left that could fail."""
    for beside, live in staged:
        faults.point("before:config-swap")
        os.replace(beside, live)
        sync_directory(live.parent)
        faults.point("after:config-swap")
