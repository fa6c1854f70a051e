"""What putting a backup back would take away: the loss report a rollback shows before it runs.

Since the backup was taken, the site went on: rows were written, files changed, entries logged.
``losses_since`` compares the live site with the backup without touching either: the product's
tables row by row against the backup's database opened beside the live one
(``stairway.rowdiff``, ``stairway.backup.scratch``), the data directory and config files
against the SHA-256 of each member in the manifest, and the audit log's entries since (which a
restore carries over, so they are named but not lost). Stairway's own tables are restored with
the rest; they are only named when they differ.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from stairway import audit_carry, rowdiff
from stairway.backup import BackupManifest, find_backup
from stairway.backup.archive import CHUNK, extract_member, read_manifest
from stairway.backup.database import POSTGRES_MEMBER, SQLITE_MEMBER
from stairway.backup.manifest import MemberModel, parse_manifest
from stairway.backup.scratch import opened_copy
from stairway.backup.snapshot import exclusive
from stairway.context import Context, backup_dir
from stairway.errors import BackupError
from stairway.rowdiff import TableChange

OWN = "stairway_"  # Stairway's own tables: bookkeeping restored with the product's data
SHOWN_ACTIONS = 5


@dataclass(frozen=True)
class FileChange:
    """A file of the data directory or a config file that changed since the backup."""

    path: str  # data/<relative path>, or a config file's path
    kind: Literal["added", "changed", "removed"]  # since the backup

    def describe(self) -> str:
        """The file, how it changed, and what a restore does to it."""
        undo = {"added": "it goes", "changed": "it goes back", "removed": "it comes back"}
        return f"file {self.path}: {self.kind} since ({undo[self.kind]})"


@dataclass(frozen=True)
class LossReport:
    """What the site holds now that backup ``backup`` does not: lost if it is put back."""

    backup: str
    taken: str  # when the backup was taken (ISO 8601, UTC)
    tables: tuple[TableChange, ...]
    own_tables: tuple[str, ...]  # Stairway's tables that differ
    files: tuple[FileChange, ...]
    audit_since: int  # entries logged since the backup (a restore carries them over)
    audit_actions: tuple[str, ...]  # the first few of them
    audit_note: str = ""  # why the entries since could not be read
    tables_note: str = ""  # why the tables could not be compared

    @property
    def nothing_lost(self) -> bool:
        """Whether no table row or file would be lost, as far as they could be compared."""
        return not (self.tables or self.files or self.tables_note)

    def describe(self) -> list[str]:
        """The report as the lines a rollback or restore shows before it runs."""
        lines = [f"this puts back backup {self.backup} (taken {self.taken}); lost with it:"]
        if self.tables_note:
            lines.append(f"  tables: not known, {self.tables_note}")
        lines += [f"  {t.describe()}" for t in self.tables]
        lines += [f"  {f.describe()}" for f in self.files]
        if self.nothing_lost:
            lines.append("  no row of the product's tables and no file")
        if self.own_tables:
            lines.append(f"  Stairway's own tables differ too: {', '.join(self.own_tables)}")
        lines.append(f"  {self._audit_line()}")
        return lines

    def _audit_line(self) -> str:
        if self.audit_note:
            return f"audit log: {self.audit_note}"
        if not self.audit_since:
            return "audit log: no entry since"
        more = ", ..." if self.audit_since > len(self.audit_actions) else ""
        entries = "1 entry" if self.audit_since == 1 else f"{self.audit_since} entries"
        return (
            f"audit log: {entries} since ({', '.join(self.audit_actions)}{more})"
            ": carried over into the restored log, not lost"
        )

    def as_json(self) -> dict[str, Any]:
        """The report as plain values, for ``--json``."""
        return asdict(self)


def losses_since(ctx: Context, backup_id: str) -> LossReport:
    """Compare the live site with backup ``backup_id``; nothing live is written."""
    where = backup_dir(ctx)
    path = find_backup(where, backup_id)
    member = SQLITE_MEMBER if ctx.engine.dialect.name == "sqlite" else POSTGRES_MEMBER
    with exclusive(where), tempfile.TemporaryDirectory(dir=where, prefix=".restore-") as scratch:
        dump = Path(scratch) / PurePosixPath(member).name
        manifest = _checked(path, member, dump)
        with opened_copy(ctx.engine, dump) as copy:
            changes, note = _compare(ctx, copy)
    pending = audit_carry.read_pending(ctx.engine, manifest)
    return LossReport(
        backup=backup_id,
        taken=manifest.created,
        tables=tuple(c for c in changes if not c.table.startswith(OWN)),
        own_tables=tuple(c.table for c in changes if c.table.startswith(OWN)),
        files=tuple(file_changes(manifest, ctx.site.site.data_dir)),
        audit_since=len(pending.rows),
        audit_actions=tuple(pending.actions[:SHOWN_ACTIONS]),
        audit_note=audit_carry.not_carried(pending) if pending.unreadable else "",
        tables_note=note,
    )


def _compare(ctx: Context, copy: Engine) -> tuple[list[TableChange], str]:
    """The tables that differ, or none and why: a live database too damaged to read is a
    reason to roll back, not a reason to refuse to."""
    try:
        with ctx.engine.connect() as now, copy.connect() as then:
            return rowdiff.compare(now, then, lambda table: table.startswith(OWN)), ""
    except SQLAlchemyError as err:
        said = str(getattr(err, "orig", None) or err).splitlines()[0]
        return [], f"the live database could not be read ({said})"


def _checked(path: Path, member: str, target: Path) -> BackupManifest:
    """The backup's database extracted to ``target``, refused unless it matches its manifest."""
    manifest = parse_manifest(read_manifest(path), path.name)
    listed = manifest.members.get(member)
    if listed is None:
        raise BackupError(
            f"backup {manifest.id} lists no {member}",
            hint="use another backup (`stairway backups`)",
        )
    got = extract_member(path, member, target, listed.size).members[member]
    if listed is None or (listed.size, listed.sha256) != (got.size, got.sha256):
        raise BackupError(
            f"backup {manifest.id} is damaged: {member} does not match its SHA-256",
            hint="use another backup (`stairway backups`)",
        )
    return manifest


def file_changes(manifest: BackupManifest, data_dir: Path | None) -> list[FileChange]:
    """The data directory's files and links, and the config files, against the manifest."""
    found: list[FileChange] = []
    if manifest.data_dir and data_dir is not None:
        then = {n[len("data/") :]: m for n, m in manifest.members.items() if n.startswith("data/")}
        found += _tree_changes(then, manifest.links, data_dir)
    for item in manifest.config_files:
        listed = manifest.members.get(item.member)
        live = Path(item.path)
        if not live.is_file():
            found.append(FileChange(item.path, "removed"))
        elif listed is not None and _differs(live, listed):
            found.append(FileChange(item.path, "changed"))
    return found


def _tree_changes(
    then: dict[str, MemberModel], links_then: dict[str, str], root: Path
) -> list[FileChange]:
    now, links_now = _tree(root)
    found = []
    for name in sorted(set(then) | set(now) | set(links_then) | set(links_now)):
        was, is_ = name in then or name in links_then, name in now or name in links_now
        if was != is_:
            found.append(FileChange(f"data/{name}", "added" if is_ else "removed"))
        elif _changed(name, then, now, links_then, links_now):
            found.append(FileChange(f"data/{name}", "changed"))
    return found


def _changed(
    name: str,
    then: dict[str, MemberModel],
    now: dict[str, Path],
    links_then: dict[str, str],
    links_now: dict[str, str],
) -> bool:
    """On both sides: a file whose content differs, a link that points elsewhere, or one that
    became the other."""
    if name in then and name in now:
        return _differs(now[name], then[name])
    return links_then.get(name) != links_now.get(name)


def _tree(root: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Regular files and symbolic links under ``root`` by relative name (links not followed)."""
    files: dict[str, Path] = {}
    links: dict[str, str] = {}
    for path in _walk(root):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            links[name] = os.readlink(path)
        elif path.is_file():
            files[name] = path
    return files, links


def _walk(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        yield from (here / n for n in names)
        yield from (here / d for d in dirs if (here / d).is_symlink())


def _differs(path: Path, listed: MemberModel) -> bool:
    """Size first: a file of another size changed without reading it. A file that cannot be
    read counts as changed: the restore replaces it either way."""
    try:
        if path.stat().st_size != listed.size:
            return True
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except OSError:
        return True
    return digest.hexdigest() != listed.sha256
