"""The audit log outlives a restore: entries written after the backup are carried over.

A restore puts the backup's log back in place with its database. Before the swap, the live log's
entries that the backup does not hold are read; after it, they are appended to the restored log,
chained on from its last entry, each marked ``data["carried"] = {"id", "at", "hash"}`` (the
entry's id, time and hash in the log it came from). ``stairway audit verify`` is whole
afterwards, and a carried entry changed later breaks the chain like any other.

Which entries the backup does not hold: those after the audit head its manifest recorded (last
id and hash), when the live log still has that entry; otherwise (an older backup, or a live log
that went another way) those written from the second the backup was taken, less those the
restored log turns out to hold. A live database too damaged to read is why one restores: then
nothing is carried and the restore entry says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select, tuple_

from stairway import audit
from stairway.audit import Draft, audit_table
from stairway.backup.manifest import BackupManifest
from stairway.files import write_atomic

log = logging.getLogger(__name__)
CHUNK = 500  # ids per IN list: SQLite bounds a statement's parameters


@dataclass(frozen=True)
class LiveEntry:
    """One entry of the live log as read: the table's columns."""

    id: int
    at: str
    actor: str
    action: str
    data: str
    previous: str
    hash: str


@dataclass(frozen=True)
class Pending:
    """The live log's entries the backup does not hold, read before the restore replaces it."""

    rows: tuple[LiveEntry, ...] = ()
    since: str = ""  # how the point was found: "entry N" or "time T"
    broken: tuple[str, ...] = ()  # chain breaks among the rows, as found in the live log
    unreadable: str | None = None  # why the live log could not be read

    @property
    def actions(self) -> list[str]:
        """The action of each entry written since the backup, in order."""
        return [str(r.action) for r in self.rows]


def read_pending(engine: Engine, manifest: BackupManifest) -> Pending:
    """What a restore of ``manifest`` would take away from the live log; never raises for a
    damaged live database (the restore must go on)."""
    try:
        with engine.connect() as conn:
            return _pending(conn, manifest)
    except Exception as err:  # a damaged database fails in ways no list covers
        log.warning("the live audit log could not be read: %s", err)
        return Pending(unreadable=str(err).splitlines()[0] if str(err) else type(err).__name__)


def _pending(conn: Connection, manifest: BackupManifest) -> Pending:
    if not conn.dialect.has_table(conn, audit_table.name):
        return Pending()
    head = manifest.audit_head
    if head is not None and (head.id == 0 or _holds(conn, head.id, head.hash)):
        rows = _select(conn, audit_table.c.id > head.id)
        since = f"entry {head.id}" if head.id else "the start of the log"
        return Pending(rows, since, _breaks(rows, head.hash, head.id + 1))
    second = manifest.created[:19]  # whole seconds: an entry of that second may be in it or not
    rows = _select(conn, audit_table.c.at >= second)
    previous, first = (str(rows[0].previous), int(rows[0].id)) if rows else ("", 0)
    return Pending(rows, f"time {second}", _breaks(rows, previous, first))


def _holds(conn: Connection, number: int, digest: str) -> bool:
    query = select(audit_table.c.hash).where(audit_table.c.id == number)
    return conn.execute(query).scalar() == digest


def _select(conn: Connection, where: Any) -> tuple[LiveEntry, ...]:
    query = select(audit_table).where(where).order_by(audit_table.c.id)
    return tuple(LiveEntry(**row._asdict()) for row in conn.execute(query))


# --- kept on disk while the restore swaps ---------------------------------------------------------


def save(path: Path, backup_id: str, pending: Pending) -> None:
    """``pending`` written durably before the restore's first live change: once the live log
    is swapped away, a restore run again can no longer read it there."""
    body = {"backup": backup_id, **asdict(pending)}
    write_atomic(path, orjson.dumps(body))


def saved(path: Path, backup_id: str) -> Pending | None:
    """What an interrupted restore of ``backup_id`` had read from the live log, if it saved it."""
    try:
        body = orjson.loads(path.read_bytes())
        if body.get("backup") != backup_id:
            return None
        rows = tuple(LiveEntry(**row) for row in body["rows"])
        return Pending(rows, body["since"], tuple(body["broken"]), body["unreadable"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _breaks(rows: Sequence[LiveEntry], previous: str, first: int) -> tuple[str, ...]:
    return tuple(audit.verify_rows(rows, previous, first)) if rows else ()


def carry_over(conn: Connection, pending: Pending) -> dict[str, Any]:
    """Append ``pending`` to the restored log on ``conn``; what the restore entry should say.

    Entries the restored log already holds (same id and hash) are not appended twice.
    """
    if pending.unreadable is not None:
        return {"carried_over": 0, "warning": not_carried(pending)}
    held = _held(conn, pending.rows)
    drafts = [_draft(row) for row in pending.rows if (row.id, row.hash) not in held]
    made = audit.append_drafts(conn, drafts)
    said: dict[str, Any] = {"carried_over": len(made)}
    if made:
        said["since"] = pending.since
    if pending.broken:
        said["warning"] = (
            "the live log was already broken where it was carried from (carried as found): "
            + "; ".join(pending.broken)
        )
    return said


def not_carried(pending: Pending) -> str:
    """The warning that the entries since the backup were not carried over, and why."""
    return (
        "the audit entries written since the backup could not be carried over: the live log "
        f"did not read ({pending.unreadable})"
    )


def _held(conn: Connection, rows: Sequence[LiveEntry]) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    pairs = [(int(r.id), str(r.hash)) for r in rows]
    key = tuple_(audit_table.c.id, audit_table.c.hash)
    if not pairs or not conn.dialect.has_table(conn, audit_table.name):
        return found
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start : start + CHUNK]
        query = select(audit_table.c.id, audit_table.c.hash).where(key.in_(chunk))
        found.update((int(i), str(h)) for i, h in conn.execute(query))
    return found


def _draft(row: LiveEntry) -> Draft:
    """The entry as it was, marked with where it came from; a mark it already had (carried
    before) is kept inside the new one."""
    data = orjson.loads(row.data)
    mark: dict[str, Any] = {"id": row.id, "at": row.at, "hash": row.hash}
    if isinstance(data, dict) and isinstance(data.get("carried"), dict):
        mark["before"] = data["carried"]
    body = data if isinstance(data, dict) else {"value": data}
    return Draft(str(row.actor), str(row.action), {**body, "carried": mark})


def carried_from(entry: audit.Entry) -> str | None:
    """How ``audit show`` names a carried entry's origin; None for an entry written here."""
    mark = entry.data.get("carried")
    if not isinstance(mark, dict):
        return None
    return f"carried over: was entry {mark.get('id')} of {mark.get('at')}"


def restore_warning(engine: Engine) -> str | None:
    """What the restore just done warns of (nothing carried, a broken live log), if it does:
    the log says it, so a rollback's caller can repeat it without being handed it. Only the
    last two entries are looked at (a rollback logs itself after its restore)."""
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, audit_table.name):
            return None
        query = select(audit_table.c.action, audit_table.c.data).order_by(audit_table.c.id.desc())
        last = conn.execute(query.limit(2)).all()
    data: dict[str, Any] = next(
        (orjson.loads(d) for action, d in last if action == "site.restore"), {}
    )
    warning = data.get("warning")
    return str(warning) if warning else None
