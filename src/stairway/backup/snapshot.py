"""Taking a backup of a site (database, data directory, config files) and listing them."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from stairway.backup import database
from stairway.backup.archive import ArchiveWriter, read_manifest, writing
from stairway.backup.manifest import (
    AuditHeadModel,
    BackupManifest,
    ConfigFileModel,
    MemberModel,
    parse_manifest,
)
from stairway.errors import BackupError, StairwayError

SUFFIX = ".tar.zst"


@dataclass(frozen=True)
class SiteParts:
    """What a backup holds and where it comes from."""

    product: str
    version: str
    schema_level: int
    engine: Engine
    data_dir: Path | None
    config_files: tuple[Path, ...]
    backup_dir: Path
    secret_keys: dict[str, int] = field(default_factory=dict)  # recorded, never archived
    audit_head: AuditHeadModel | None = None  # read before the dump: the dump holds it
    exact: bool = False  # a SQLite file byte for byte, writers held off while it is copied


@dataclass(frozen=True)
class Backup:
    """A backup archive on disk and its manifest."""

    path: Path
    manifest: BackupManifest

    @property
    def id(self) -> str:
        """The backup's id, which also names its file."""
        return self.manifest.id


def take_backup(parts: SiteParts) -> Backup:
    """One archive holding a consistent snapshot of the site; written whole or not at all.

    A full or failing disk is a BackupError naming the path: the partial archive is gone by
    then (``writing`` removes it) and nothing on the site was changed.
    """
    check_apart(parts.data_dir, parts.backup_dir)
    try:
        parts.backup_dir.mkdir(parents=True, exist_ok=True)
        with exclusive(parts.backup_dir):
            remove_leftovers(parts.backup_dir)
            return _take(parts)
    except OSError as err:
        code = f" [{errno.errorcode.get(err.errno or 0, err.errno)}]" if err.errno else ""
        why = f"{err.strerror or err}{code} ({err.filename or parts.backup_dir})"
        raise _failed(why, parts.backup_dir) from None
    except sqlite3.OperationalError as err:  # SQLite's copy hit a full disk, in its own words
        why = f"{err} (copying the database into {parts.backup_dir})"
        raise _failed(why, parts.backup_dir) from None


def _failed(why: str, backup_dir: Path) -> BackupError:
    return BackupError(
        f"the backup failed: {why}; no archive was kept and the site was not changed",
        hint=f"free space in {backup_dir} (or point backup_dir at a larger disk) and check the "
        "disk, then run `stairway backup` again",
    )


def check_apart(data_dir: Path | None, backup_dir: Path) -> None:
    """Backups outside the data directory and the other way round: each would hold the other."""
    if data_dir is None:
        return
    data, backups = data_dir.resolve(), backup_dir.resolve()
    if data.is_relative_to(backups) or backups.is_relative_to(data):
        raise BackupError(
            f"the data directory {data} and the backup directory {backups} overlap",
            hint="give backup_dir a place of its own outside data_dir (docs/site.md)",
        )


def _take(parts: SiteParts) -> Backup:
    backup_id = _new_id(parts)
    path = parts.backup_dir / f"{backup_id}{SUFFIX}"
    kind = database.engine_kind(parts.engine)
    with tempfile.TemporaryDirectory(dir=parts.backup_dir, prefix=".dump-") as scratch:
        dump = Path(scratch) / "dump"
        with writing(path) as archive:
            member = _add_database(archive, parts.engine, dump, parts.exact)
            links = _add_data(archive, parts.data_dir)
            configs = _add_config(archive, parts.config_files)
            manifest = BackupManifest(
                id=backup_id,
                product=parts.product,
                version=parts.version,
                schema_level=parts.schema_level,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                engine=kind,  # type: ignore[arg-type]
                database=member,
                data_dir=str(parts.data_dir) if parts.data_dir else None,
                links=links,
                config_files=configs,
                secret_keys=parts.secret_keys,
                audit_head=parts.audit_head,
                members={
                    m.name: MemberModel(size=m.size, sha256=m.sha256) for m in archive.members
                },
            )
            archive.add_bytes("manifest.json", manifest.encode())
    return Backup(path, manifest)


@contextmanager
def exclusive(backup_dir: Path) -> Iterator[None]:
    """One backup or restore at a time per backup directory (an advisory lock on a file)."""
    with (backup_dir / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(
                f"another backup or restore is running in {backup_dir}",
                hint="wait for it to finish, then run again",
            ) from None
        yield


def remove_leftovers(backup_dir: Path) -> None:
    """What a killed backup or restore left in ``backup_dir``: never a finished archive."""
    for partial in backup_dir.glob(".*.partial"):
        partial.unlink(missing_ok=True)
    for scratch in [*backup_dir.glob(".dump-*"), *backup_dir.glob(".restore-*")]:
        shutil.rmtree(scratch, ignore_errors=True)


def list_backups(backup_dir: Path) -> list[Backup]:
    """Every backup in ``backup_dir``, oldest first; unreadable archives are skipped."""
    found = []
    for path in sorted(backup_dir.glob(f"*{SUFFIX}")) if backup_dir.is_dir() else []:
        try:
            found.append(Backup(path, parse_manifest(read_manifest(path), path.name)))
        except (StairwayError, OSError, ValueError):
            continue  # a damaged archive is not offered; `restore` of it says what is wrong
    return sorted(found, key=lambda b: b.manifest.created)


def find_backup(backup_dir: Path, backup_id: str) -> Path:
    """The archive of the backup ``backup_id`` in ``backup_dir``.

    Raises BackupError, naming the latest backups, when there is none by that id.
    """
    path = backup_dir / f"{backup_id}{SUFFIX}"
    if "/" in backup_id or backup_id.startswith(".") or not path.is_file():  # ids name files
        known = ", ".join(b.id for b in list_backups(backup_dir)[-5:]) or "none"
        raise BackupError(
            f"no backup {backup_id!r} in {backup_dir}",
            hint=f"`stairway backups` lists them (latest: {known})",
        )
    return path


def _new_id(parts: SiteParts) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{parts.product}-{parts.version}-{stamp}"
    candidate, n = base, 1
    while (parts.backup_dir / f"{candidate}{SUFFIX}").exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _add_database(archive: ArchiveWriter, engine: Engine, dump: Path, exact: bool) -> str:
    if database.engine_kind(engine) == "sqlite":
        database.dump_sqlite(engine, dump, exact)
        return archive.add_file(database.SQLITE_MEMBER, dump).name
    database.dump_postgres(engine, dump)
    return archive.add_file(database.POSTGRES_MEMBER, dump).name


def _add_data(archive: ArchiveWriter, data_dir: Path | None) -> dict[str, str]:
    """Files and directories of the data directory; symbolic links go to the manifest."""
    links: dict[str, str] = {}
    if data_dir is None or not data_dir.exists():
        return links
    for path, info in _walk(data_dir):
        relative = path.relative_to(data_dir).as_posix()
        if stat.S_ISLNK(info.st_mode):
            links[relative] = _inside(data_dir, relative, os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            archive.add_directory(f"data/{relative}")
        elif stat.S_ISREG(info.st_mode):
            archive.add_file(f"data/{relative}", path)
    return links


def _inside(data_dir: Path, relative: str, pointee: str) -> str:
    """A link's target, refused when it leaves the data directory (a restore would refuse it)."""
    resolved = os.path.normpath(os.path.join(os.path.dirname(relative), pointee))
    if os.path.isabs(pointee) or resolved.startswith(".."):
        raise BackupError(
            f"{data_dir / relative} links to {pointee}, outside the data directory",
            hint="replace the link with what it points to, or move its target inside the "
            "data directory; a backup holds the data directory's own tree only",
        )
    return pointee


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry under ``root`` in a stable order, without following links."""
    for entry in sorted(root.iterdir()):
        info = entry.lstat()
        yield entry, info
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(entry)


def _add_config(archive: ArchiveWriter, files: tuple[Path, ...]) -> list[ConfigFileModel]:
    found = []
    for index, path in enumerate(files):
        if not path.is_file():
            raise BackupError(
                f"config file {path} does not exist",
                hint="fix `config_files` in site.toml or restore the file, then back up again",
            )
        member = archive.add_file(f"config/{index}/{path.name}", path)
        found.append(ConfigFileModel(member=member.name, path=str(path)))
    return found
