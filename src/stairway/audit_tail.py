"""A tail of another site's audit log joining this site's: where this site stands in that log,
and which entries of a tail it takes.

An audit move copies a site's log to another installation while the first keeps appending: a
bulk copy, then catch-ups, each a *tail*, the entries after a position of the source log up to
a signed checkpoint. Imported entries are appended to this site's own log (chained on here, so
``stairway audit verify`` stays whole end to end), each marked ``data["source"] = {"id",
"hash", "key"}``: its id and hash in the source log and the source's audit key id. The last
such mark of a key is where this site stands in that key's log (``imported_head``).

Which entries a tail gives (``take``) is pure: those after the position this site stands at,
when the tail chains on from it; a tail that does not (the source was forked or rewritten, or
it is another log) is refused with the hash expected and the hash found.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, select

from stairway import audit
from stairway.audit import Draft, Entry, Head, audit_table
from stairway.errors import TransferError

START = Head(0, audit.GENESIS)  # before the first entry of a log


@dataclass(frozen=True)
class Row:
    """An entry of the source log as stored: the table's columns (``data`` its hashed text)."""

    id: int
    at: str
    actor: str
    action: str
    data: str
    previous: str
    hash: str

    @classmethod
    def of(cls, record: dict[str, Any]) -> Row:
        """An exported audit record (its ``kind`` and any other field left aside)."""
        return cls(*(record[name] for name in FIELDS))


FIELDS = ("id", "at", "actor", "action", "data", "previous", "hash")


class TailRefused(TransferError):
    """A tail does not chain on from the last entry this site imported from that log.

    Attributes:
        expected: The hash of the last entry imported, which the tail's next entry must follow.
        got: The hash the tail's next entry follows instead.
    """

    def __init__(self, message: str, *, hint: str, expected: str, got: str) -> None:
        super().__init__(message, hint=hint)
        self.expected = expected
        self.got = got


def parse_position(text: str) -> Head:
    """``SEQ:HASH`` (``--after``): an entry of the source log by its id and hash."""
    seq, _, digest = text.partition(":")
    hexdigits = set("0123456789abcdef")
    if not seq.isdigit() or len(digest) != 64 or not set(digest) <= hexdigits:
        raise TransferError(
            f"--after {text!r} is not SEQ:HASH (an entry's id and its 64 hex digit hash)",
            hint="give the position `stairway audit position` prints on the target, "
            "or leave --after out to export the whole log",
        )
    return Head(int(seq), digest)


def describe(position: Head) -> str:
    """A position as ``--after`` takes it."""
    return f"{position.id}:{position.hash}"


def take(after: Head, rows: Sequence[Row], held: Head) -> list[Row]:
    """The entries of a tail (``rows``, chained on from ``after``) that a site which imported
    that log up to ``held`` does not hold yet; none when it holds them all.

    Raises:
        TailRefused: The tail does not chain on from ``held``: a gap before it, or another
            hash where ``held`` is.
    """
    return list(taking(after, rows, held))


def taking(after: Head, rows: Iterable[Row], held: Head) -> Iterator[Row]:
    """``take`` as the tail is read, one entry at a time: the entry at ``held`` is checked
    before any entry after it comes out, so a refused tail gives none.

    Raises:
        TailRefused: As ``take``, when the entry that shows it is reached.
    """
    if held.id < after.id:
        _check(held, after.hash, f"the tail starts after entry {after.id}, a gap after {held.id}")
    elif held.id == after.id:
        _check(held, after.hash, f"the tail starts after entry {after.id}")
    for row in rows:
        if row.id == held.id:
            _check(held, row.hash, f"the tail's entry {held.id} differs")
        elif row.id > held.id:
            yield row


def _check(held: Head, got: str, why: str) -> None:
    """Refuse the tail unless the hash where this site stands (``held``) is ``got``."""
    if got != held.hash:
        raise TailRefused(
            f"the audit tail does not follow the last entry imported from that log (entry "
            f"{held.id}): expected previous hash {held.hash}, got {got} ({why}); the source "
            "was forked or rewritten, or this is another log; nothing was imported",
            hint=f"export the tail again with --after {describe(held)} from the site this "
            "one was moved from, or `stairway audit move` to let it find the position",
            expected=held.hash,
            got=got,
        )


def imported_head(conn: Connection, key: str) -> Head:
    """The source position of the last entry imported from the log signed by ``key``;
    ``START`` when none was."""
    if not conn.dialect.has_table(conn, audit_table.name):
        return START
    # the canonical JSON has no spaces: the LIKE narrows the rows to parse to this key's
    marked = audit_table.c.data.like(f'%"key":"{key}"%')
    query = select(audit_table.c.data).where(marked).order_by(audit_table.c.id.desc())
    for (data,) in conn.execute(query):
        source = orjson.loads(data).get("source")
        if isinstance(source, dict) and source.get("key") == key:
            return Head(int(source["id"]), str(source["hash"]))
    return START


def append_tail(conn: Connection, rows: Sequence[Row], key: str) -> list[Entry]:
    """``rows`` appended to this site's log, each keeping its time, actor and action, marked
    with where it was in the source log; in ``conn``'s transaction."""
    return audit.append_drafts(conn, [_draft(row, key) for row in rows])


def _draft(row: Row, key: str) -> Draft:
    data: Any = orjson.loads(row.data)
    body = data if isinstance(data, dict) else {"value": data}
    source = {"id": row.id, "hash": row.hash, "key": key}
    return Draft(str(row.actor), str(row.action), {**body, "source": source}, str(row.at))
