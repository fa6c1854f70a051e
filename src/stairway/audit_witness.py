"""The audit key and the witness file: where the audit log is anchored outside the database.

The audit key (Ed25519, PEM, mode 0600) signs checkpoints of the log's head; the witness file
holds them, one JSON line each (``Checkpoint``), appended and never rewritten. Both live
outside the database and outside the backups (``keep_out``). What a checkpoint is for, and how
the log is judged against them: ``stairway.audit_anchor``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import logging.handlers
import os
import stat
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from stairway.audit import Head
from stairway.errors import AuditBroken, BackupError
from stairway.files import write_atomic
from stairway.site import Site

log = logging.getLogger(__name__)
SIGNED_AS = b"stairway-audit-checkpoint/1\n"
BASES = ("anchored", "restore")  # reasons that start the chain afresh
SYSLOG = Path("/dev/log")


# --- where: the site's settings -------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """Where a site's audit key and witness file are, and whether checkpoints go to syslog."""

    key_file: Path
    witness: Path
    syslog: bool = False


def anchor_of(site: Site) -> Anchor:
    """``[audit]`` of the site file; by default ``.stairway/<site file stem>.audit.key`` and
    ``.audit.witness`` beside the site file (outside the data directory and the backups)."""
    base = site.path.resolve().parent / ".stairway"
    stem = site.path.stem
    return Anchor(
        site.audit.key_file or base / f"{stem}.audit.key",
        site.audit.witness or base / f"{stem}.audit.witness",
        site.audit.syslog,
    )


def keep_out(anchor: Anchor, data_dir: Path | None, config: Sequence[Path]) -> None:
    """Refuse a backup that would carry the audit key or witness: a restore would put back an
    older witness, and whoever holds a backup could sign checkpoints."""
    for path in (anchor.key_file, anchor.witness):
        inside = data_dir is not None and path.resolve().is_relative_to(data_dir.resolve())
        if inside or any(path.resolve() == p.resolve() for p in config):
            raise BackupError(
                f"{path} would be in every backup (it is inside the data directory or a "
                "config file): the audit anchor must live apart from what it anchors",
                hint="set [audit] key_file and witness in site.toml to a place outside the "
                "data directory and the backups",
            )


# --- the key --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    """The audit key's public half: what checks a checkpoint, here or on another site."""

    key: Ed25519PublicKey

    @property
    def id(self) -> str:
        """The start of the SHA-256 of the raw public key."""
        raw = self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()[:16]

    def pem(self) -> str:
        """The public key as PEM (SubjectPublicKeyInfo), what ``stairway audit key`` prints."""
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return self.key.public_bytes(serialization.Encoding.PEM, spki).decode()

    def signed(self, point: Checkpoint) -> bool:
        """Whether ``point`` was signed with this key."""
        try:
            self.key.verify(base64.b64decode(point.sig, validate=True), point.signed_body())
        except (InvalidSignature, ValueError):
            return False
        return point.key == self.id

    @classmethod
    def parse(cls, text: str, where: str) -> PublicKey:
        """A PEM public key; raises AuditBroken naming ``where`` when it is not an Ed25519 one."""
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError:
            key = None
        if not isinstance(key, Ed25519PublicKey):
            raise AuditBroken(
                f"{where} is not an Ed25519 audit public key",
                hint="give the PEM that `stairway audit key` prints on the exporting site",
            )
        return cls(key)

    def __repr__(self) -> str:
        return f"PublicKey({self.id})"


def load_key(path: Path) -> Ed25519PrivateKey:
    """The audit key in ``path``; AuditBroken when it is unreadable or readable by others."""
    try:
        mode = path.stat().st_mode
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        raise AuditBroken(
            f"cannot read the audit key {path}: {err}",
            hint="restore the key file from where it is kept safe",
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditBroken(
            f"the audit key {path} can be read by others (mode {stat.S_IMODE(mode):o})",
            hint=f"chmod 600 {path}: only the site's user may sign checkpoints",
        )
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditBroken(f"{path} is not an Ed25519 key", hint="restore the audit key file")
    return key


def new_key(path: Path) -> Ed25519PrivateKey:
    """A new audit key, written 0600 (``write_atomic``'s temporary file is) to ``path``."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, pem)
    return key


# --- checkpoints and the witness file -------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement: the log had reached entry ``seq``, whose hash was ``hash``."""

    seq: int
    hash: str
    at: str
    key: str
    reason: str = "checkpoint"
    backup: str | None = None
    sig: str = ""

    def signed_body(self) -> bytes:
        """What the signature covers: every field but the signature, keys sorted."""
        fields = {k: v for k, v in asdict(self).items() if k != "sig" and v is not None}
        return SIGNED_AS + orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)

    def fields(self) -> dict[str, Any]:
        """The checkpoint as JSON: a witness line, or an export header's ``audit_checkpoint``."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def line(self) -> bytes:
        """The checkpoint as a witness line, newline included."""
        return orjson.dumps(self.fields()) + b"\n"

    @property
    def rebases(self) -> bool:
        """Whether the log is judged from this checkpoint on (the first, or after a restore)."""
        return self.reason in BASES

    def describe(self) -> str:
        """The checkpoint in a few words."""
        why = f", {self.reason} of backup {self.backup}" if self.backup else f", {self.reason}"
        return f"entry {self.seq} at {self.at}{why}"

    @classmethod
    def parse(cls, record: Any) -> Checkpoint:
        """A witness line's JSON; ValueError when it is not a checkpoint."""
        try:
            point = cls(**record)
        except TypeError as err:
            raise ValueError(str(err)) from None
        if not isinstance(point.seq, int) or not isinstance(point.hash, str):
            raise ValueError("seq and hash of the wrong type")
        return point


def sign(key: Ed25519PrivateKey, head: Head, reason: str, backup: str | None) -> Checkpoint:
    """A checkpoint of ``head``, signed."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    point = Checkpoint(head.id, head.hash, at, PublicKey(key.public_key()).id, reason, backup)
    return replace(point, sig=base64.b64encode(key.sign(point.signed_body())).decode())


@dataclass(frozen=True)
class Witness:
    """The witness file as read: its checkpoints, and its lines that are not valid ones."""

    points: tuple[Checkpoint, ...] = ()
    problems: tuple[str, ...] = ()
    lines: int = 0

    @property
    def since_base(self) -> tuple[Checkpoint, ...]:
        """The checkpoints from the last re-base on: the ones the log must match."""
        bases = [n for n, p in enumerate(self.points) if p.rebases]
        return self.points[bases[-1] :] if bases else self.points


def read_witness(path: Path, key: PublicKey | None) -> Witness:
    """The witness at ``path`` checked line by line with ``key`` (None: the key is missing,
    no line can be trusted)."""
    try:
        text = path.read_bytes().splitlines()
    except FileNotFoundError:
        return Witness()
    points, problems = [], []
    for number, raw in enumerate(text, 1):
        try:
            point = Checkpoint.parse(orjson.loads(raw))
        except ValueError:
            problems.append(f"witness line {number} is not a checkpoint")
            continue
        if key is not None and not key.signed(point):
            problems.append(f"witness line {number} ({point.describe()}) has a bad signature")
        else:
            points.append(point)
    return Witness(tuple(points), tuple(problems), len(text))


def append_witness(anchor: Anchor, point: Checkpoint) -> None:
    """Append ``point`` to the witness, fsynced; and to syslog when the site asks for it."""
    anchor.witness.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with anchor.witness.open("ab") as out:
        out.write(point.line())
        out.flush()
        os.fsync(out.fileno())
    if anchor.syslog and SYSLOG.exists():
        _to_syslog(point)


def _to_syslog(point: Checkpoint) -> None:
    handler = logging.handlers.SysLogHandler(address=str(SYSLOG))
    try:
        record = logging.LogRecord(
            "stairway.audit", logging.INFO, __file__, 0, "stairway-audit %s", (point.line(),), None
        )
        handler.emit(record)
    finally:
        handler.close()
