"""The one owner of ``stairway_audit``: an append-only log whose entries are hash-chained.

Each entry carries the SHA-256 of the previous entry's hash and its own content, so an entry
edited or removed after the fact breaks the chain at that point, and ``stairway audit verify``
names it. The log lives in the site database: a restore takes it back with the data it
describes, then appends the entries written since the backup, marked as carried over
(``stairway.audit_carry``), and the restore itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)

GENESIS = "0" * 64
# The databases this process appended entries to, by URL: a command signs a checkpoint of a
# site's log at its end only when it wrote to it (``stairway.context.checkpoint_opened``), so
# a command that only reads, or a rehearsal, leaves the site's files as they were.
appended_to: set[str] = set()
APPEND_LOCK = 0x5374_6169_7277_6181  # serialises appends: each reads the last entry first
metadata = MetaData()
audit_table = Table(
    "stairway_audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("data", Text, nullable=False),
    Column("previous", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)


@dataclass(frozen=True)
class Entry:
    """One entry of the audit log as stored: who did what when, and its chain hashes."""

    id: int
    at: str
    actor: str
    action: str
    data: dict[str, Any]
    previous: str
    hash: str


@dataclass(frozen=True)
class Draft:
    """An entry still to be appended, with its own actor (entries carried over keep theirs),
    and its own time when it was copied from another site's log (an audit move)."""

    actor: str
    action: str
    data: dict[str, Any]
    at: str | None = None


@dataclass(frozen=True)
class Head:
    """The last entry of a log: what a later log must chain on from to continue it."""

    id: int
    hash: str


def ensure_table(conn: Connection) -> None:
    """Create ``stairway_audit`` unless it exists."""
    # has_table is one catalog query; create_all would first build an inspector on each append
    if not conn.dialect.has_table(conn, audit_table.name):
        metadata.create_all(conn, checkfirst=True)


def append(
    conn: Connection,
    action: str,
    data: dict[str, Any],
    actor: str = "stairway",
    at: str | None = None,
) -> Entry:
    """Add an entry chained to the last one; call inside the transaction it belongs to.

    ``at`` is now, unless the entry is copied from another site's log (an import).
    """
    return append_many(conn, [(action, data)], actor, at)[0]


def append_many(
    conn: Connection,
    items: Sequence[tuple[str, dict[str, Any]]],
    actor: str = "stairway",
    at: str | None = None,
) -> list[Entry]:
    """Several ``(action, data)`` entries by one actor, chained in order, in one insert: a
    control plane sending a thousand agents an upgrade holds the append lock once, not a
    thousand times."""
    return append_drafts(conn, [Draft(actor, action, data) for action, data in items], at)


def append_drafts(conn: Connection, drafts: Sequence[Draft], at: str | None = None) -> list[Entry]:
    """Entries chained in order after the last one, in one insert, each by its own actor."""
    lock_appends(conn)
    last = conn.execute(
        select(audit_table.c.id, audit_table.c.hash).order_by(audit_table.c.id.desc()).limit(1)
    ).first()
    number, previous = (int(last[0]), str(last[1])) if last else (0, GENESIS)
    at = at or datetime.now(UTC).isoformat(timespec="milliseconds")
    made = []
    for draft in drafts:
        number += 1
        body = _canonical(draft.data)
        when = draft.at or at
        digest = _hash(previous, number, when, draft.actor, draft.action, body)
        made.append(Entry(number, when, draft.actor, draft.action, draft.data, previous, digest))
        previous = digest
    if made:
        rows = [e.__dict__ | {"data": _canonical(e.data)} for e in made]
        conn.execute(insert(audit_table), rows)
        appended_to.add(database_of(conn.engine))
    return made


def lock_appends(conn: Connection) -> None:
    """Hold off every other appender until ``conn``'s transaction ends: what it reads of the
    log before appending (its last entry, the last entry imported) stays the last."""
    ensure_table(conn)
    if conn.dialect.name == "postgresql":  # SQLite has one writer at a time anyway
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({APPEND_LOCK})")


def database_of(engine: Engine) -> str:
    """The engine's database, as ``appended_to`` names it."""
    return engine.url.render_as_string(hide_password=True)


def head(conn: Connection) -> Head | None:
    """The last entry's id and hash; None while nothing was logged."""
    if not conn.dialect.has_table(conn, audit_table.name):
        return None
    query = select(audit_table.c.id, audit_table.c.hash).order_by(audit_table.c.id.desc())
    last = conn.execute(query.limit(1)).first()
    return Head(int(last[0]), str(last[1])) if last else None


def entries(conn: Connection) -> list[Entry]:
    """Every entry of the log, oldest first; creates the table if it is missing."""
    ensure_table(conn)
    rows = conn.execute(select(audit_table).order_by(audit_table.c.id))
    return [_entry(r) for r in rows]


def newest(conn: Connection, below: int, limit: int) -> list[Entry]:
    """Up to ``limit`` entries numbered below ``below``, newest first: one page of the log,
    read from the primary key's index however long the log is."""
    ensure_table(conn)
    query = select(audit_table).where(audit_table.c.id < below).order_by(audit_table.c.id.desc())
    return [_entry(r) for r in conn.execute(query.limit(limit))]


def count(conn: Connection) -> int:
    """How many entries the log holds."""
    ensure_table(conn)
    return int(conn.execute(select(func.count()).select_from(audit_table)).scalar_one())


def _entry(r: Any) -> Entry:
    return Entry(r.id, r.at, r.actor, r.action, orjson.loads(r.data), r.previous, r.hash)


def read(engine: Engine) -> list[Entry]:
    """Every entry of the site's log, oldest first."""
    with engine.begin() as conn:
        return entries(conn)


@dataclass(frozen=True)
class ChainCheck:
    """The whole log checked: its breaks as sentences (none when whole) and its length."""

    problems: list[str]
    entries: int


def check(engine: Engine) -> ChainCheck:
    """The site's log checked from the first entry to the last."""
    with engine.begin() as conn:
        ensure_table(conn)
        return ChainCheck(verify(conn), len(entries(conn)))


def verify(conn: Connection) -> list[str]:
    """Every break in the chain, as a sentence naming the entry; empty when the log is whole."""
    if not conn.dialect.has_table(conn, audit_table.name):
        return []  # nothing was logged yet
    return verify_rows(conn.execute(select(audit_table).order_by(audit_table.c.id)))


def raw_rows(conn: Connection) -> list[dict[str, Any]]:
    """The log as stored, ``data`` as its hashed text: what an export carries."""
    if not conn.dialect.has_table(conn, audit_table.name):
        return []
    query = select(audit_table).order_by(audit_table.c.id)
    return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(query)]


def verify_rows(rows: Iterable[Any], previous: str = GENESIS, first: int = 1) -> list[str]:
    """``verify`` over rows with the table's columns as attributes (a database or an export);
    ``previous`` and ``first``: the hash and id the rows follow on from, for a part of a log."""
    problems = []
    expected_id = first
    for row in rows:
        if row.id != expected_id:
            problems.append(f"entries {expected_id}..{row.id - 1} are missing")
        if row.previous != previous:
            problems.append(f"entry {row.id} does not follow the entry before it")
        if _hash(row.previous, row.id, row.at, row.actor, row.action, row.data) != row.hash:
            problems.append(f"entry {row.id} ({row.action}) was changed after it was written")
        previous, expected_id = row.hash, row.id + 1
    return problems


def _canonical(data: dict[str, Any]) -> str:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def _hash(previous: str, number: int, at: str, actor: str, action: str, body: str) -> str:
    text = "\n".join([previous, str(number), at, actor, action, body])
    return hashlib.sha256(text.encode()).hexdigest()
