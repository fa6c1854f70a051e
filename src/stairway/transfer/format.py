"""The export format: NDJSON records in zstd frames, checkable without a database.

One file. The first frame holds the header record; each following frame holds one chunk: its
object records, then a chunk record with their count and the SHA-256 of their bytes; the last
frame holds the trailer: the counts per type and a digest over every chunk's SHA-256. zstd frames
concatenate, so an interrupted export is resumed by cutting the file after its last whole chunk.

Records (one JSON object per line):
    {"kind": "header", "format": 1, "product", "version", "schema_level", "counts",
     ["shard": {"index", "of", "from", "to"}], "created", "audit_entries",
     ["audit_after": {"seq", "hash"}],
     ["audit_checkpoint": {"seq", "hash", "at", "key", "reason", ["backup"], "sig"},
      "audit_key": "<PEM of the exporting site's audit public key>"]}
    {"kind": "object", "id", "type", "written_by", "data"}
    {"kind": "chunk", "number", "count", "last_id", "sha256"}   (number: within its part)
    {"kind": "audit", "id", "at", "actor", "action", "data", "previous", "hash"}
    {"kind": "chunk", "number", "count", "audit", "sha256"}     (after the audit entries)
    {"kind": "trailer", "counts", "chunks", "objects", "audit_entries",
     "manifest": [{"count", "sha256"} of every chunk], "digest"}

The audit entries are the site's log as stored (``data`` is the hashed text), so the check
verifies their chain too. The exporting site signed the last of them (``audit_checkpoint``,
a witness line of ``stairway.audit_anchor``): the check verifies that signature with the
header's own ``audit_key`` and that the entries end where it says; an import trusts them only
when that key is the one it was given (``--trust``), so recomputed hashes do not pass.

An audit tail (``stairway audit export``) is such a file without objects whose entries start
after the entry ``audit_after`` names: their chain is checked from that entry's hash on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

import orjson
import zstandard

from stairway import audit
from stairway.audit_witness import Checkpoint, PublicKey
from stairway.errors import AuditBroken, TransferError

FORMAT = 1
BLOCK = 1 << 16  # decompressed bytes read at a time


def line(record: dict[str, Any]) -> bytes:
    """``record`` as one NDJSON line, newline included."""
    return orjson.dumps(record) + b"\n"


def digest(chunk_hashes: list[str]) -> str:
    """The trailer's digest: the SHA-256 of every chunk's SHA-256 in order."""
    return hashlib.sha256("".join(chunk_hashes).encode()).hexdigest()


@dataclass
class Problem:
    """One thing wrong with an export file, at a line."""

    line: int
    reason: str

    def describe(self) -> str:
        """The problem with its line number."""
        return f"line {self.line}: {self.reason}"


@dataclass
class ExportSummary:
    """What ``check`` found in an export: header, counts per type, chunks and problems."""

    header: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    objects: int = 0
    problems: list[Problem] = field(default_factory=list)
    audit_entries: int = 0
    audit_head: tuple[int, str] | None = None  # the last audit entry's id and hash
    # the header's signed checkpoint does not match the audit entries: ``export verify`` says
    # so; an import judges it (``transfer.trust``), as --untrusted-audit may take them anyway
    audit_doubts: list[str] = field(default_factory=list)
    complete: bool = False  # a trailer was found and matched

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The header's signed audit checkpoint; None when it has none (or an unreadable one)."""
        try:
            return Checkpoint.parse(self.header.get("audit_checkpoint"))
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        """Whether the file is whole (a trailer that matched) and nothing is wrong."""
        return self.complete and not self.problems


class DamagedStream(TransferError):
    """The zstd stream cannot be decompressed past some point."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path}: the compressed stream is damaged: {reason}",
            hint="check the file with `stairway export verify FILE`; copy or export it again",
        )
        self.reason = reason


def records(path: Path) -> Iterator[tuple[int, bytes]]:
    """Every line of the export with its number, decompressed as a stream."""
    try:
        raw = path.open("rb")
    except OSError as err:
        raise TransferError(
            f"{path}: cannot read: {err.strerror}", hint="check the file's permissions"
        ) from None
    with raw:
        try:
            yield from _lines(raw)
        except zstandard.ZstdError as err:
            raise DamagedStream(path, str(err)) from None


def _lines(raw: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """The lines of the stream, ``BLOCK`` bytes decompressed at a time: what is held is one
    block and the line it ends in, however long the file; a line longer than a block is
    gathered without searching its start again."""
    reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    number, pending = 0, bytearray()
    while block := reader.read(BLOCK):
        scan = len(pending)
        pending += block
        start = 0
        while (end := pending.find(b"\n", scan)) >= 0:
            number += 1
            yield number, bytes(pending[start:end])
            start = scan = end + 1
        del pending[:start]
    if pending:
        yield number + 1, bytes(pending)


def check(path: Path) -> ExportSummary:
    """Verify an export without a database: order of records, every chunk, the trailer."""
    summary = ExportSummary()
    state = _Check(summary)
    try:
        for number, text in records(path):
            state.feed(number, text)
    except DamagedStream as err:
        summary.problems.append(
            Problem(state.last + 1, f"the compressed stream is damaged: {err.reason}")
        )
    if not summary.complete and not summary.problems:
        summary.problems.append(Problem(state.last, "no trailer: the export is truncated"))
    return summary


class _Check:
    def __init__(self, summary: ExportSummary) -> None:
        self.summary = summary
        self.chunk = hashlib.sha256()
        self.in_chunk = 0
        self.hashes: list[str] = []
        self.manifest: list[dict[str, Any]] = []
        self.chain: _Chain | None = None  # the audit entries', from the first one on
        self.last = 0
        # built once: made per line, this map cost as much as hashing the line
        self.handlers = {
            "header": self._header,
            "object": self._object,
            "audit": self._audit,
            "chunk": self._chunk,
            "trailer": self._trailer,
        }

    def feed(self, number: int, text: bytes) -> None:
        """Check line ``number`` of the export, holding ``text``, in file order."""
        self.last = number
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as err:
            self._problem(number, f"not JSON ({err})")
            return
        kind = record.get("kind") if isinstance(record, dict) else None
        if number == 1 and kind != "header":
            self._problem(number, "the first record is not a header: not a Stairway export")
        handler = self.handlers.get(str(kind))
        if handler is None:
            self._problem(number, f"unknown record kind {kind!r}")
        else:
            handler(number, record, text)

    def _header(self, number: int, record: dict[str, Any], _text: bytes) -> None:
        if number != 1:
            self._problem(number, "a second header")
        elif record.get("format") != FORMAT:
            self._problem(number, f"export format {record.get('format')!r}, expected {FORMAT}")
        self.summary.header = record

    def _object(self, number: int, record: dict[str, Any], text: bytes) -> None:
        if not isinstance(record.get("type"), str) or not isinstance(record.get("data"), dict):
            self._problem(number, "an object record needs a type and a JSON object as data")
        self.chunk.update(text + b"\n")
        self.in_chunk += 1
        kind = str(record.get("type"))
        self.summary.counts[kind] = self.summary.counts.get(kind, 0) + 1
        self.summary.objects += 1

    def _audit(self, number: int, record: dict[str, Any], text: bytes) -> None:
        fields = ("id", "at", "actor", "action", "data", "previous", "hash")
        if any(name not in record for name in fields):
            self._problem(number, "an audit record needs " + ", ".join(fields))
        else:
            self.chain = self.chain or _Chain(self._after())
            self.chain.feed(SimpleNamespace(**{name: record[name] for name in fields}))
        self.chunk.update(text + b"\n")
        self.in_chunk += 1

    def _chunk(self, number: int, record: dict[str, Any], _text: bytes) -> None:
        found = self.chunk.hexdigest()
        ordinal = self.summary.chunks + 1
        if record.get("count") != self.in_chunk:
            self._problem(
                number,
                f"chunk {ordinal} says {record.get('count')} records, {self.in_chunk} precede it",
            )
        if record.get("sha256") != found:
            self._problem(number, f"chunk {ordinal} does not match its SHA-256")
        self.hashes.append(str(record.get("sha256")))
        self.manifest.append({"count": record.get("count"), "sha256": record.get("sha256")})
        self.summary.chunks += 1
        self.chunk, self.in_chunk = hashlib.sha256(), 0

    def _trailer(self, number: int, record: dict[str, Any], _text: bytes) -> None:
        if self.in_chunk:
            self._problem(number, f"{self.in_chunk} objects after the last chunk record")
        if record.get("counts") != self.summary.counts:
            self._problem(number, "the trailer's counts differ from the objects in the file")
        if record.get("counts") != self.summary.header.get("counts"):
            self._problem(number, "the trailer's counts differ from the header's")
        if record.get("digest") != digest(self.hashes):
            self._problem(number, "the trailer's digest does not match the chunks")
        if record.get("manifest") != self.manifest:
            self._problem(number, "the trailer's manifest of chunks differs from the chunks")
        chain = self.chain or _Chain(self._after())
        if record.get("audit_entries", 0) != chain.count:
            self._problem(number, "the trailer's count of audit entries differs from the file's")
        for problem in chain.problems:
            self._problem(number, f"the exported audit log: {problem}")
        self.summary.audit_doubts = self._signature(chain)
        self.summary.audit_entries = chain.count
        self.summary.audit_head = chain.last
        self.summary.complete = True

    def _signature(self, chain: _Chain) -> list[str]:
        """The header's checkpoint, when there is one, signed by the header's key and naming
        the last entry; whether that key is to be trusted is the importer's question."""
        if "audit_checkpoint" not in self.summary.header:
            return []
        point = self.summary.checkpoint
        try:
            key = PublicKey.parse(str(self.summary.header.get("audit_key")), "audit_key")
        except AuditBroken:
            return ["the header's audit_key is not an audit public key"]
        if point is None or not key.signed(point):
            return ["its checkpoint's signature does not check out"]
        after = self._after()
        last = chain.last or (after.id, after.hash)
        if last != (point.seq, point.hash):
            return [f"it does not end at entry {point.seq}, the one its checkpoint signed"]
        return []

    def _after(self) -> audit.Head:
        """Where the audit entries start: after ``audit_after`` in an audit tail, else at the
        first entry."""
        after = self.summary.header.get("audit_after")
        if after is None:
            return audit.Head(0, audit.GENESIS)
        if not isinstance(after, dict) or not isinstance(after.get("seq"), int):
            self._problem(1, "the header's audit_after is not {seq, hash}")
            return audit.Head(0, audit.GENESIS)
        return audit.Head(after["seq"], str(after.get("hash")))

    def _problem(self, number: int, reason: str) -> None:
        self.summary.problems.append(Problem(number, reason))


class _Chain:
    """The audit entries' hash chain, checked one entry at a time as the file streams past:
    a tail of any length is checked in the memory of one entry (and of what is wrong)."""

    def __init__(self, after: audit.Head) -> None:
        self.previous, self.expected = after.hash, after.id + 1
        self.problems: list[str] = []
        self.count = 0
        self.last: tuple[int, str] | None = None  # the last entry's id and hash
        self.unreadable = False

    def feed(self, row: SimpleNamespace) -> None:
        """Check ``row`` against the entry before it."""
        self.count += 1
        if self.unreadable:
            return  # past an entry that cannot be read there is no chain to follow
        try:
            self.problems += audit.verify_rows([row], self.previous, self.expected)
            self.previous, self.expected = row.hash, row.id + 1
            self.last = (row.id, row.hash)
        except (TypeError, ValueError) as err:
            self.problems.append(f"unreadable ({err})")
            self.unreadable = True
