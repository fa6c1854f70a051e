"""One import process's pass over an export: find the chunks, import the ones it owns.

Every process reads the whole file, but only splits it into lines and finds chunk boundaries
(a line that starts like a chunk record); it parses, checks, migrates and loads only the
chunks of its own part. Whatever the number of machines and processes, they agree on the
boundaries, so each chunk is imported by exactly one of them. A chunk goes in with its
checkpoint row in one transaction: a killed import resumes at the first chunk not recorded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from stairway import audit
from stairway.errors import ObjectMigrationError, TransferError
from stairway.objects.store import ObjectStore
from stairway.transfer.checkpoint import ChunkTally, record_chunk
from stairway.transfer.format import digest, records
from stairway.transfer.loading import Row, load
from stairway.transfer.rejects import Rejects

CHUNK_PREFIX = b'{"kind":"chunk"'
TRAILER_PREFIX = b'{"kind":"trailer"'
Counted = Callable[[int], None]  # lines scanned so far, for the importer's own ticker


@dataclass(frozen=True)
class Part:
    """Which chunks one process imports: shard ``shard`` of ``shards`` machines, then
    worker ``worker`` of that machine's ``workers``. Chunk ``k`` goes to shard (k-1) mod N,
    so every machine may run its own number of workers."""

    shard: int = 0
    shards: int = 1
    worker: int = 0
    workers: int = 1

    def owns(self, chunk: int) -> bool:
        """Whether chunk ``chunk`` (1-based) is this process's to import."""
        k = chunk - 1
        return k % self.shards == self.shard and (k // self.shards) % self.workers == self.worker


@dataclass
class ScanReport:
    """What one process's pass over an export found and imported."""

    imported: int = 0  # objects inserted by this run
    present: int = 0  # objects already there (an earlier run, or the same file twice)
    migrated: int = 0
    chunks: int = 0  # chunk records seen in the file
    owned: int = 0  # of those, chunks of this part
    skipped_chunks: int = 0  # of this part's, committed by an earlier run
    trailer: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def merge(self, other: ScanReport) -> None:
        """Add another process's imported, present, migrated and skipped counts to these."""
        for name in ("imported", "present", "migrated", "owned", "skipped_chunks"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Scan:
    """One process's pass over an export file, importing the chunks of its part."""

    store: ObjectStore
    import_id: str
    part: Part
    done: set[int]  # chunks recorded by earlier runs
    rejects: Rejects
    progress: Counted | None = None
    alive: Callable[[], bool] = lambda: True  # a worker stops when its parent is gone
    report: ScanReport = field(default_factory=ScanReport)
    unverified: bool = False  # the audit entries' signature was not checked: they say so
    signer: str | None = None  # the audit key id that signed them, when it was checked
    _hashes: list[str] = field(default_factory=list)
    _pending: list[tuple[int, bytes]] = field(default_factory=list)

    def run(self, path: Path) -> ScanReport:
        """Read the whole file at ``path`` and import this part's chunks; returns the report."""
        for number, raw in records(path):
            if number == 1:
                continue  # the header, read and checked before any process started
            if raw.startswith(CHUNK_PREFIX):
                self._end_chunk(number, raw)
            elif raw.startswith(TRAILER_PREFIX):
                self._trailer(number, raw)
            elif self.part.owns(self.report.chunks + 1):
                self._pending.append((number, raw))
        if self._pending:
            self.report.problems.append(
                f"{len(self._pending)} records after the last chunk record: the file is "
                "truncated; they were not imported"
            )
        return self.report

    def _end_chunk(self, number: int, raw: bytes) -> None:
        self.report.chunks += 1
        chunk, lines, self._pending = self.report.chunks, self._pending, []
        marker = _parse(raw)
        self._hashes.append(str(marker.get("sha256")) if marker else "")
        if not self.part.owns(chunk):
            return
        self.report.owned += 1
        if chunk in self.done:
            self.report.skipped_chunks += 1
        elif not self.alive():
            raise SystemExit(1)
        else:
            self._import_chunk(chunk, number, marker, lines)
        if self.progress:
            self.progress(len(lines))

    def _import_chunk(
        self, chunk: int, number: int, marker: dict[str, Any] | None, lines: list[tuple[int, bytes]]
    ) -> None:
        tally = ChunkTally()
        objects = self._objects(lines, tally)
        body = b"".join(raw + b"\n" for _, raw, _ in objects)
        if (
            marker is None
            or marker.get("count") != len(objects)
            or marker.get("sha256") != hashlib.sha256(body).hexdigest()
        ):
            reason = f"chunk {chunk} (line {number}) does not match its count and SHA-256"
            for line_number, raw, _ in objects:
                self.rejects.add(line_number, reason, raw)
            tally.rejected += len(objects)
            rows: list[Row] = []
            entries: list[dict[str, Any]] = []
        else:
            rows = [row for item in objects if (row := self._row(item, tally)) is not None]
            entries = [record for _, _, record in objects if record.get("kind") == "audit"]
        with self.store.engine.begin() as conn:
            _append_audit(conn, entries, self.unverified, self.signer)
            tally.imported = load(conn, self.store, rows)
            tally.present = len(rows) - tally.imported
            record_chunk(conn, self.import_id, chunk, tally)
        self.report.imported += tally.imported
        self.report.present += tally.present

    def _objects(
        self, lines: list[tuple[int, bytes]], tally: ChunkTally
    ) -> list[tuple[int, bytes, dict[str, Any]]]:
        """The object and audit records of a chunk; any other line is rejected and left out
        of its hash."""
        found = []
        for number, raw in lines:
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as err:
                record, problem = None, f"not JSON: {err}"
            else:
                problem = "not a JSON object"
            kind = record.get("kind") if isinstance(record, dict) else None
            if not isinstance(record, dict):
                self.rejects.add(number, problem, raw)
            elif kind == "object":
                found.append((number, raw, record))
                tally.saw(record.get("type"))
            elif kind == "audit":
                found.append((number, raw, record))
            else:
                reason = "a second header" if kind == "header" else f"a {kind!r} record here"
                self.rejects.add(number, reason, raw)
            if kind not in ("object", "audit"):
                tally.rejected += 1
        return found

    def _row(self, item: tuple[int, bytes, dict[str, Any]], tally: ChunkTally) -> Row | None:
        number, raw, record = item
        if record.get("kind") == "audit":
            return None
        get = record.get
        oid, type_, data, stamp = get("id"), get("type"), get("data"), get("written_by")
        if oid is None or not isinstance(type_, str) or not isinstance(data, dict):
            self.rejects.add(number, "an object needs an id, a type and a JSON object as data", raw)
            tally.rejected += 1
            return None
        store = self.store
        try:
            outcome = store.migrator.migrate(type_, data, stamp if isinstance(stamp, str) else None)
        except ObjectMigrationError as err:
            self.rejects.add(number, err.message, raw)
            tally.rejected += 1
            return None
        if outcome.applied:
            self.report.migrated += 1
        tally.stored(type_)
        written = store.current if outcome.applied or not isinstance(stamp, str) else stamp
        return (oid, type_, outcome.document, written if store.spec.version else None)

    def _trailer(self, number: int, raw: bytes) -> None:
        trailer = _parse(raw)
        if self._pending and self.part.owns(self.report.chunks + 1):
            self.report.problems.append(
                f"{len(self._pending)} records before the trailer have no chunk record; "
                "they were not imported"
            )
        self._pending = []
        if trailer is None:
            self.report.problems.append(f"line {number}: the trailer is not readable")
            return
        self.report.trailer = trailer
        if trailer.get("digest") != digest(self._hashes):
            self.report.problems.append(
                "the trailer's digest does not match the chunks: the file was changed"
            )


def _append_audit(
    conn: Connection, entries: list[dict[str, Any]], unverified: bool, signer: str | None
) -> None:
    """The source site's log joins this site's, each entry kept with when, who and what, and
    the id and hash it had there (the export's own chain was checked with its chunk, its head
    against the exporting site's signature unless ``unverified``, which each entry then says).
    The key id that ``signer`` names is kept too: ``stairway audit move`` continues from it."""
    mark = {"unverified": True} if unverified else {}
    signed = {"key": signer} if signer and not unverified else {}
    for entry in entries:
        try:
            data = orjson.loads(entry["data"])
            source = {"id": entry["id"], "hash": entry["hash"], **signed}
            audit.append(
                conn,
                str(entry["action"]),
                {**data, "source": source, **mark},
                str(entry["actor"]),
                str(entry["at"]),
            )
        except (KeyError, TypeError, orjson.JSONDecodeError):
            raise TransferError(
                f"audit entry {entry.get('id')!r} of the export is not readable",
                hint="check the file with `stairway export verify FILE`",
            ) from None


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None
