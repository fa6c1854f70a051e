"""An audit tail as a file: the entries of a site's log after a position, up to a checkpoint
that site signed, written in the export format and read back only when a trusted key signed it.

The file is an export without objects whose header names the position the entries follow
(``audit_after``), so ``stairway export verify`` checks it, and an import judges its signature
with the same rules as a full import's (``transfer.trust``); only entries signed by the trusted
key are taken, never marked unverified. Importing one is a single transaction: the position
this site stands at in that log read under the append lock, the entries it does not hold yet
appended, and an entry of this site's own saying so; killed half-way, nothing of it is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from stairway import audit, audit_tail, faults
from stairway.audit import Head
from stairway.audit_anchor import Signed
from stairway.audit_tail import Row
from stairway.errors import TransferError
from stairway.transfer.export import write_log
from stairway.transfer.format import ExportSummary, check, records
from stairway.transfer.trust import AuditTrust, judge


@dataclass(frozen=True)
class Tail:
    """An audit tail as read and believed: the position it follows, its entries, and the id
    of the key that signed them."""

    after: Head
    rows: tuple[Row, ...]
    key: str
    product: str | None


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


def write(path: Path, product: str, after: Head, rows: list[dict[str, Any]], signed: Signed) -> int:
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
    rows = tuple(_entries(path))
    key = point.key if point is not None else ""
    return Tail(Head(after["seq"], str(after["hash"])), rows, key, summary.header.get("product"))


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


def _entries(path: Path) -> list[Row]:
    found: list[Row] = []
    for _, raw in records(path):
        record = orjson.loads(raw)
        if record.get("kind") == "audit":
            found.append(Row.of(record))
    return found


def import_tail(engine: Engine, tail: Tail, name: str) -> TailImport:
    """Append the entries of ``tail`` this site does not hold yet, in one transaction.

    Raises:
        TailRefused: The tail does not chain on from the last entry imported from that log.
    """
    with engine.begin() as conn:
        audit.lock_appends(conn)  # a catch-up run twice at once takes its entries once
        held = audit_tail.imported_head(conn, tail.key)
        rows = audit_tail.take(tail.after, tail.rows, held)
        if not rows:
            return TailImport(held, 0, held, tail.key)
        audit_tail.append_tail(conn, rows, tail.key)
        done = TailImport(held, len(rows), Head(rows[-1].id, rows[-1].hash), tail.key)
        audit.append(conn, "audit.import", _said(done, name))
        faults.point("before:audit-import-commit")
    return done


def _said(done: TailImport, name: str) -> dict[str, Any]:
    return {"file": name, "key": done.key, "from": done.held.id + 1, "to": done.head.id}
