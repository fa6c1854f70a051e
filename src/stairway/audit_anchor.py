"""The audit log anchored outside the database: signed checkpoints in a witness file.

The hash chain of ``stairway_audit`` shows an entry edited in place, but not a log cut short,
recomputed over edited entries, emptied or dropped: whoever can write the database can rebuild a
whole chain. So the head of the log (its last entry's id and hash) is signed now and then with
the site's audit key (Ed25519) and the signature appended to the witness file, both kept outside
the database and outside backups. ``stairway audit verify`` then checks the log against every
checkpoint since the last re-base: the entry each names must be there, with the hash signed.

A witness line is one JSON object (``Checkpoint``)::

    {"seq": 120, "hash": "<sha256>", "at": "<iso time>", "key": "<key id>",
     "reason": "checkpoint", "sig": "<base64 Ed25519 signature>"}

``reason`` is ``anchored`` for the first checkpoint of a site, ``restore`` (with ``backup``)
after a restore or rollback replaced the log, ``checkpoint`` otherwise; the first two re-base
the chain. The signature covers every other field, serialised with sorted keys after
``SIGNED_AS``. Checkpoints cover committed entries only: they read the head on a connection
of their own, after the transactions that appended.
"""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from stairway import audit
from stairway.audit import Head, audit_table
from stairway.audit_witness import (
    Anchor,
    Checkpoint,
    PublicKey,
    append_witness,
    load_key,
    new_key,
    read_witness,
    sign,
)
from stairway.errors import AuditBroken

log = logging.getLogger(__name__)
EVERY = 100  # entries between checkpoints of a long-running process
MINUTE = 60.0  # seconds: at most this long between checkpoints while entries are written


def public_key(engine: Engine, anchor: Anchor) -> PublicKey:
    """The site's audit public key; a site without one is anchored now (key and witness)."""
    if anchor.key_file.exists():
        return PublicKey(load_key(anchor.key_file).public_key())
    return PublicKey(_anchor_anew(anchor, committed_head(engine)).public_key())


# --- writing checkpoints --------------------------------------------------------------------------


def committed_head(engine: Engine) -> Head | None:
    """The last committed entry: read on a connection of its own, outside any open
    transaction, so an entry a transaction may still roll back is never signed."""
    with engine.connect() as conn:
        return audit.head(conn)


def checkpoint(engine: Engine, anchor: Anchor) -> Checkpoint | None:
    """Sign the committed head when it moved since the last checkpoint; the checkpoint written,
    or None. A site never anchored is anchored now. Nothing is signed over a log that no
    longer matches the last checkpoint, or a witness that lost lines or its key: the evidence
    stays as found, for ``stairway audit verify`` to name."""
    head = committed_head(engine)
    if head is None and not anchor.key_file.exists():
        return None  # nothing to anchor yet
    if not anchor.key_file.exists():
        if _witnessed(anchor):
            log.warning("the audit key %s is missing: no checkpoint written", anchor.key_file)
            return None
        _anchor_anew(anchor, head)
        return read_witness(anchor.witness, None).points[-1]
    head = head or Head(0, audit.GENESIS)
    key = load_key(anchor.key_file)
    witness = read_witness(anchor.witness, PublicKey(key.public_key()))
    if not witness.points or witness.problems:
        log.warning(
            "the audit witness %s is damaged or gone: no checkpoint written", anchor.witness
        )
        return None
    last = witness.points[-1]
    if (last.seq, last.hash) == (head.id, head.hash):
        return None
    problems = _since(engine, last, head)
    if problems:
        log.warning("the audit log no longer matches its witness: %s", "; ".join(problems))
        return None
    return _write(anchor, key, head, "checkpoint")


@dataclass(frozen=True)
class Signed:
    """The log's last signed checkpoint and the key that signed it: what an export carries."""

    point: Checkpoint
    key: PublicKey


def signed_head(engine: Engine, anchor: Anchor) -> Signed | None:
    """The committed head signed now (if it moved), then the witness's last checkpoint with
    its key; None when the site has no log, or its witness or key is not whole."""
    checkpoint(engine, anchor)
    if not anchor.key_file.exists():
        return None
    key = PublicKey(load_key(anchor.key_file).public_key())
    witness = read_witness(anchor.witness, key)
    if witness.problems or not witness.points:
        return None
    return Signed(witness.points[-1], key)


def rebase(engine: Engine, anchor: Anchor, reason: str, backup: str | None) -> Checkpoint | None:
    """After a restore replaced the log: a checkpoint from which the log is judged afresh."""
    head = committed_head(engine)
    if head is None:
        return None
    if anchor.key_file.exists():
        key = load_key(anchor.key_file)
    elif _witnessed(anchor):
        log.warning("the audit key %s is missing: the restore was not anchored", anchor.key_file)
        return None
    else:
        key = new_key(anchor.key_file)
    return _write(anchor, key, head, reason, backup)


def _witnessed(anchor: Anchor) -> bool:
    return anchor.witness.exists() and anchor.witness.stat().st_size > 0


def _anchor_anew(anchor: Anchor, head: Head | None) -> Ed25519PrivateKey:
    """A new key, and at once its first checkpoint (of the empty log, when it is): a key
    never exists without a witness line, so a witness found missing beside it was removed."""
    key = new_key(anchor.key_file)
    _write(anchor, key, head or Head(0, audit.GENESIS), "anchored")
    return key


def due(moved: int, waited: float) -> bool:
    """Whether a long-running process checkpoints now: ``moved`` entries were committed since
    its last checkpoint, ``waited`` seconds ago."""
    return moved >= EVERY or (moved > 0 and waited >= MINUTE)


def _write(
    anchor: Anchor, key: Ed25519PrivateKey, head: Head, reason: str, backup: str | None = None
) -> Checkpoint:
    point = sign(key, head, reason, backup)
    append_witness(anchor, point)
    return point


def _since(engine: Engine, last: Checkpoint, head: Head) -> list[str]:
    """The log from ``last`` to ``head`` checked: ``last`` still there, the rest chained on."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_table).where(audit_table.c.id >= last.seq).order_by(audit_table.c.id)
        ).all()
    if last.seq == 0:
        return audit.verify_rows(rows)
    if not rows or rows[0].id != last.seq or rows[0].hash != last.hash:
        return [f"entry {last.seq} is not the one the witness signed"]
    return audit.verify_rows(rows[1:], last.hash, last.seq + 1)


# --- judging the log against the witness ----------------------------------------------------------


@dataclass(frozen=True)
class AnchorCheck:
    """The log judged against the witness: problems as sentences, the last checkpoint seen."""

    problems: list[str]
    anchored: bool
    last: Checkpoint | None = None
    key: str | None = None

    def as_json(self) -> dict[str, Any]:
        """What ``audit verify --json`` says of the anchor."""
        seen = asdict(self.last) if self.last else None
        return {"anchored": self.anchored, "checkpoint": seen, "key": self.key}


def judge(points: Sequence[Checkpoint], hashes: Mapping[int, str], head: Head | None) -> list[str]:
    """Pure: the log (``hashes`` of the entries the checkpoints name, and its ``head``; None
    when it is empty) against the checkpoints since the last re-base."""
    reached = max((p.seq for p in points), default=0)
    if reached == 0:
        return []  # anchored while the log was empty, and nothing signed since
    if head is None:
        return [
            f"every entry is gone: entries 1..{reached} are missing (the witness saw the log "
            f"reach {reached})"
        ]
    problems = []
    if head.id < reached:
        problems.append(
            f"entries {head.id + 1}..{reached} are missing: the witness saw the log reach {reached}"
        )
    for point in points:
        found = hashes.get(point.seq)
        if found is not None and found != point.hash:
            problems.append(f"entry {point.seq}'s hash differs from the one the witness signed")
        elif found is None and point.seq <= head.id:
            problems.append(f"entry {point.seq} is missing: the witness signed it")
    return list(dict.fromkeys(problems))


def check_anchor(engine: Engine, anchor: Anchor) -> AnchorCheck:
    """The site's log judged against its witness."""
    try:
        key = PublicKey(load_key(anchor.key_file).public_key())
    except AuditBroken as err:
        key, unreadable = None, err.message
    else:
        unreadable = ""
    witness = read_witness(anchor.witness, key)
    if not witness.lines:
        if key is not None:
            gone = f"the witness {anchor.witness} is missing or empty, yet the audit key exists"
            return AnchorCheck([gone + ": its checkpoints were removed"], True, None, key.id)
        return AnchorCheck([], False)
    if key is None:
        return AnchorCheck([f"{unreadable}: the witness cannot be checked"], True)
    points = witness.since_base
    table, hashes, head = _log_at(engine, [p.seq for p in points])
    problems = list(witness.problems)
    if not table and any(p.seq for p in points):
        problems.append(
            f"the audit table is gone: the witness saw the log reach {max(p.seq for p in points)}"
        )
    else:
        problems += judge(points, hashes, head)
    return AnchorCheck(problems, True, witness.points[-1] if witness.points else None, key.id)


def _log_at(engine: Engine, seqs: Sequence[int]) -> tuple[bool, dict[int, str], Head | None]:
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, audit_table.name):
            return False, {}, None
        hashes: dict[int, str] = {}
        wanted = sorted(set(seqs))
        for start in range(0, len(wanted), 500):  # SQLite bounds a statement's parameters
            query = select(audit_table.c.id, audit_table.c.hash).where(
                audit_table.c.id.in_(wanted[start : start + 500])
            )
            hashes.update((int(i), str(h)) for i, h in conn.execute(query))
        return True, hashes, audit.head(conn)
