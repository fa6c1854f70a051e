"""An audit tail as a file: the entries of a site's log after a position, up to a checkpoint
that site signed, written in the export format and read back only when a trusted key signed it.

The file is an export without objects whose header names the position the entries follow
(``audit_after``), so ``stairway export verify`` checks it, and an import judges its signature
with the same rules as a full import's (``transfer.trust``); only entries signed by the trusted
key are taken, never marked unverified. Nothing holds the whole tail in memory: it is written
as it is read from the database, checked and imported as it is read from the file. An import
commits ``BATCH`` entries at a time, each batch with an entry of this site's own saying so, and
each batch first reads, under the append lock, the position this site stands at in that log:
killed half-way, the batches committed stay and the next run takes up after them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from stairway import audit, audit_tail, faults
from stairway.audit import Head
from stairway.audit_anchor import Signed
from stairway.audit_tail import Row
from stairway.errors import TransferError
from stairway.transfer.export import LogRows, write_log
from stairway.transfer.format import ExportSummary, check, records
from stairway.transfer.trust import AuditTrust, judge

BATCH = 5000  # entries committed at a time: the work a kill can lose, and what is held


@dataclass(frozen=True)
class Tail:
    """An audit tail as checked and believed: the position it follows, the file its entries
    are read from (``rows``, as often as asked), and the id of the key that signed them."""

    after: Head
    path: Path
    key: str
    product: str | None

    def rows(self) -> Iterator[Row]:
        """The tail's entries in order, read from its file one at a time."""
        for _, raw in records(self.path):
            record = orjson.loads(raw)
            if record.get("kind") == "audit":
                yield Row.of(record)


@dataclass(frozen=True)
class TailImport:
    """What importing a tail did: where this site stood in that log, and what it took."""

    held: Head  # the last entry imported from that log before
    taken: int
    head: Head  # the last entry imported from that log now
    key: str

    def describe(self) -> str:
        """The outcome in a sentence."""
        if not self.taken:
            return f"nothing to import: this site already holds that log up to entry {self.head.id}"
        return (
            f"{self.taken} audit entries imported: entries {self.held.id + 1}..{self.head.id} "
            f"of the log signed by audit key {self.key}"
        )


def write(path: Path, product: str, after: Head, rows: LogRows, signed: Signed) -> int:
    """The tail file at ``path``: ``rows`` (as stored) follow ``after``, up to ``signed``."""
    header = {
        "product": product,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "audit_after": {"seq": after.id, "hash": after.hash},
        "audit_checkpoint": signed.point.fields(),
        "audit_key": signed.key.pem(),
    }
    return write_log(path, header, rows)


def read(path: Path, trust: AuditTrust) -> Tail:
    """The tail at ``path``, checked whole and signed by ``trust.key``.

    Raises:
        TransferError: The file fails its check, is no audit tail, or its entries are not
            signed by the trusted key (``transfer.trust`` says why).
    """
    summary = _checked(path)
    judge(summary, AuditTrust(trust.key, untrusted=False, own=trust.own), path)
    point = summary.checkpoint
    after = summary.header["audit_after"]
    key = point.key if point is not None else ""
    return Tail(Head(after["seq"], str(after["hash"])), path, key, summary.header.get("product"))


def _checked(path: Path) -> ExportSummary:
    if not path.is_file():
        raise TransferError(f"{path} does not exist", hint="give the audit tail's path")
    summary = check(path)
    if not summary.ok:
        first = summary.problems[0].describe() if summary.problems else "not whole"
        raise TransferError(
            f"{path} fails its check, nothing was imported: {first}",
            hint="`stairway export verify FILE` lists every problem; export the tail again",
        )
    if "audit_after" not in summary.header:
        raise TransferError(
            f"{path} is an export of objects, not an audit tail",
            hint="import it with `stairway import`; `stairway audit export` writes audit tails",
        )
    return summary


def import_tail(engine: Engine, tail: Tail, name: str) -> TailImport:
    """Append the entries of ``tail`` this site does not hold yet, ``BATCH`` at a time, each
    batch in one transaction with its own ``audit.import`` entry.

    Raises:
        TailRefused: The tail does not chain on from the last entry imported from that log
            (before any entry of it is taken).
        TransferError: Another import of that log moved this site's position meanwhile.
    """
    with engine.connect() as conn:
        start = audit_tail.imported_head(conn, tail.key)
    position, taken = start, 0
    for batch in _batches(audit_tail.taking(tail.after, tail.rows(), start), BATCH):
        position = _commit(engine, tail.key, position, batch, name)
        taken += len(batch)
    return TailImport(start, taken, position, tail.key)


def _batches(rows: Iterator[Row], size: int) -> Iterator[tuple[Row, ...]]:
    """``rows`` in tuples of ``size`` (the last shorter), read as they are needed."""
    while batch := tuple(islice(rows, size)):
        yield batch


def _commit(engine: Engine, key: str, position: Head, batch: tuple[Row, ...], name: str) -> Head:
    """One batch appended with the entry saying so, if this site still stands at ``position``
    in that log; where it stands after."""
    with engine.begin() as conn:
        audit.lock_appends(conn)  # a catch-up run twice at once takes its entries once
        held = audit_tail.imported_head(conn, key)
        if held != position:
            raise TransferError(
                f"another import of that audit log ran meanwhile: this site now holds it up to "
                f"entry {held.id}, not {position.id}; the entries imported so far stay",
                hint="run the import or the move again: it takes up where that log now stands",
            )
        audit_tail.append_tail(conn, batch, key)
        done = TailImport(held, len(batch), Head(batch[-1].id, batch[-1].hash), key)
        audit.append(conn, "audit.import", _said(done, name))
        faults.point("before:audit-import-commit")
    return done.head


def _said(done: TailImport, name: str) -> dict[str, Any]:
    return {"file": name, "key": done.key, "from": done.held.id + 1, "to": done.head.id}
