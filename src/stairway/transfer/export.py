"""``stairway export``: every stored object, in id order, and the audit log, to one checked file.

Objects are written as stored (with the release that wrote them), not migrated: an import
migrates them while parsing, into whatever release the target site runs. The id range to
export (all of it, or this machine's ``--shard i/N``) is split at id quantiles into one part
per worker process; each part is written to its own file, chunk by chunk, each chunk one zstd
frame, fsynced and recorded in the part's progress file, so after a kill a part is cut back to
its last whole chunk and continues from there. When every part is done the file is assembled
and renamed into place: the header, the parts in id order, a chunk with the audit log, and the
trailer.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import zstandard
from sqlalchemy import ColumnElement, func, select

from stairway.errors import TransferError
from stairway.files import sync_directory, write_atomic
from stairway.objects.store import ObjectStore
from stairway.progress import Progress
from stairway.transfer.format import FORMAT, digest, line
from stairway.transfer.shards import WHOLE, Shard
from stairway.transfer.workers import Alive, Task, Tick, run_all


@dataclass
class _Part:
    """One id range of the export: from ``low`` (inclusive) to ``high`` (exclusive)."""

    number: int
    low: Any = None  # None: from the first id
    high: Any = None  # None: to the last id
    size: int = 0  # bytes of the part file that are whole
    last_id: Any = None
    chunks: int = 0
    hashes: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # records per chunk
    counts: dict[str, int] = field(default_factory=dict)
    done: bool = False

    @property
    def objects(self) -> int:
        """The objects written to this part so far."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class LogRows:
    """Audit entries as stored, read as they are written: their ``count`` (which the header
    states before them) and the ``rows`` themselves, an iterable read once."""

    count: int
    rows: Iterable[dict[str, Any]]


@dataclass(frozen=True)
class ExportReport:
    """What ``export_objects`` wrote: the file, its objects per type and its chunks."""

    path: Path
    objects: int
    chunks: int  # every checked chunk of the file, the audit log's included
    counts: dict[str, int]
    resumed_at: int
    audit_entries: int = 0


def export_objects(
    store: ObjectStore,
    path: Path,
    header: dict[str, Any],
    chunk: int = 10_000,
    progress: Progress[None] | None = None,
    workers: int = 1,
    shard: Shard = WHOLE,
    audit: list[dict[str, Any]] | None = None,
) -> ExportReport:
    """Write (or finish) the export at ``path``; ``audit`` is the log's rows as stored."""
    plan = _resume_or_plan(store, path, header, workers, shard)
    parts = [_load_part(path, _Part(**p)) for p in plan["parts"]]
    resumed_at = sum(p.objects for p in parts)
    total = sum(plan["header"]["counts"].values())
    tasks: list[Task[_Part]] = [
        functools.partial(_export_part, store, path, part, chunk, len(parts) > 1) for part in parts
    ]
    parts = run_all(tasks, _ticker(progress, resumed_at, total), "export")
    audit_rows = audit if audit is not None else []
    chunks = _assemble(path, plan["header"], parts, LogRows(len(audit_rows), audit_rows))
    counts: dict[str, int] = {}
    for part in parts:
        for name, count in part.counts.items():
            counts[name] = counts.get(name, 0) + count
    return ExportReport(
        path, sum(counts.values()), chunks, counts, resumed_at, audit_entries=len(audit_rows)
    )


def _ticker(progress: Progress[None] | None, done: int, total: int) -> Tick | None:
    if progress is None:
        return None
    progress(done, total, None)

    def tick(count: int) -> None:
        nonlocal done
        done += count
        progress(done, total, None)

    return tick


# --- the plan: header and id ranges, fixed when the export starts ---------------------------------


def _resume_or_plan(
    store: ObjectStore, path: Path, header: dict[str, Any], workers: int, shard: Shard
) -> dict[str, Any]:
    saved = _progress_file(path)
    if saved.exists():
        plan: dict[str, Any] = orjson.loads(saved.read_bytes())
        return plan
    if path.exists():
        raise TransferError(
            f"{path} already exists and holds no interrupted export",
            hint="choose another file name, or remove it first",
        )
    low, high = _range(store, shard)
    bounds = [low, *_quantiles(store, low, high, workers), high]
    head = {"kind": "header", "format": FORMAT, **header, "counts": _counts(store, low, high)}
    if shard != WHOLE:
        head["shard"] = {"index": shard.index + 1, "of": shard.of, "from": low, "to": high}
    head["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    parts = [asdict(_Part(n, bounds[n], bounds[n + 1])) for n in range(len(bounds) - 1)]
    plan = {"header": head, "parts": parts}
    write_atomic(saved, orjson.dumps(plan))
    return plan


def _range(store: ObjectStore, shard: Shard) -> tuple[Any, Any]:
    """The ids of this machine's shard: split at the N-quantiles of every id."""
    inner = _quantiles(store, None, None, shard.of)
    if not inner:
        return None, None  # no objects at all: every shard is empty
    bounds = [None, *inner, None]
    return bounds[shard.index], bounds[shard.index + 1]


def _quantiles(store: ObjectStore, low: Any, high: Any, parts: int) -> list[Any]:
    """The ids that split [low, high) into ``parts`` ranges of about equal count; none when
    the range is empty (it is then one empty part)."""
    column = store.id_column
    within = _within(column, low, high)
    with store.engine.connect() as conn:
        count_query = select(func.count()).select_from(store.table).where(*within)
        count = int(conn.execute(count_query).scalar() or 0)
        if count == 0:
            return []
        found = []
        for n in range(1, parts):
            query = select(column).where(*within).order_by(column).offset(count * n // parts)
            found.append(conn.execute(query.limit(1)).scalar())
    return found


def _within(column: ColumnElement[Any], low: Any, high: Any) -> list[ColumnElement[bool]]:
    conditions = []
    if low is not None:
        conditions.append(column >= low)
    if high is not None:
        conditions.append(column < high)
    return conditions


def _counts(store: ObjectStore, low: Any, high: Any) -> dict[str, int]:
    type_ = store.table.c[store.spec.type]
    query = select(type_, func.count()).where(*_within(store.id_column, low, high))
    with store.engine.connect() as conn:
        return {str(t): int(n) for t, n in conn.execute(query.group_by(type_))}


# --- one part, in its own process when there are several ------------------------------------------


def _export_part(
    store: ObjectStore, path: Path, part: _Part, chunk: int, forked: bool, tick: Tick, alive: Alive
) -> _Part:
    if part.done:
        return part
    if forked:
        store.engine.dispose(close=False)  # the parent's pooled connections stay its own
    target = _part_file(path, part.number)
    compressor = zstandard.ZstdCompressor(level=3)
    with target.open("r+b" if target.exists() else "wb") as out:
        out.truncate(part.size)
        out.seek(part.size)
        while rows := _rows(store, part, chunk):
            if not alive():
                raise SystemExit(1)
            _write_frame(out, compressor, _chunk(part, rows))
            part.size = out.tell()
            write_atomic(_part_progress(path, part.number), orjson.dumps(part))
            tick(len(rows))
    part.done = True
    write_atomic(_part_progress(path, part.number), orjson.dumps(part))
    return part


def _rows(store: ObjectStore, part: _Part, size: int) -> list[tuple[Any, ...]]:
    column = store.id_column
    query = select(*store.selection()).where(*_within(column, part.low, part.high))
    if part.last_id is not None:
        query = query.where(column > part.last_id)
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query.order_by(column).limit(size))]


def _chunk(part: _Part, rows: list[tuple[Any, ...]]) -> bytes:
    lines = []
    for oid, type_, body, written_by in rows:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise TransferError(
                f"object {oid!r} is not valid JSON in the database",
                hint="fix or remove it (`stairway objects show ID`), then export again: "
                "the export resumes where it stopped",
            ) from None
        record = {"kind": "object", "id": oid, "type": type_, "written_by": written_by}
        lines.append(line(record | {"data": data}))
        part.counts[str(type_)] = part.counts.get(str(type_), 0) + 1
    part.last_id = rows[-1][0]
    return _sealed(part, lines, last_id=part.last_id)


def _sealed(part: _Part, lines: list[bytes], **marker: Any) -> bytes:
    """A chunk's records followed by its chunk record: their count and SHA-256."""
    body = b"".join(lines)
    sha = hashlib.sha256(body).hexdigest()
    part.chunks += 1
    part.hashes.append(sha)
    part.sizes.append(len(lines))
    record = {"kind": "chunk", "number": part.chunks, "count": len(lines), **marker, "sha256": sha}
    return body + line(record)


def _write_frame(out: BinaryIO, compressor: zstandard.ZstdCompressor, data: bytes) -> None:
    out.write(compressor.compress(data))
    out.flush()
    os.fsync(out.fileno())


# --- the whole file -------------------------------------------------------------------------------


def _assemble(path: Path, header: dict[str, Any], parts: list[_Part], audit: LogRows) -> int:
    """Header, the parts in id order, the audit log, the trailer, under a temporary name
    renamed into place: the export's own name only ever holds a whole export. Returns the
    chunks written (the audit log's counts as one), as the trailer and `export verify` count."""
    assembling = path.with_name(path.name + ".assembling")
    try:
        chunks = _write_whole(path, assembling, header, parts, audit)
    except BaseException:
        assembling.unlink(missing_ok=True)  # a refused or failed log leaves no half file
        raise
    os.replace(assembling, path)
    sync_directory(path.parent)
    for part in parts:
        _part_file(path, part.number).unlink(missing_ok=True)
        _part_progress(path, part.number).unlink(missing_ok=True)
    _progress_file(path).unlink(missing_ok=True)
    return chunks


def _write_whole(
    path: Path, target: Path, header: dict[str, Any], parts: list[_Part], audit: LogRows
) -> int:
    compressor = zstandard.ZstdCompressor(level=3)
    hashes = [sha for part in parts for sha in part.hashes]
    sizes = [size for part in parts for size in part.sizes]
    counts: dict[str, int] = {}
    for part in parts:
        for name, count in part.counts.items():
            counts[name] = counts.get(name, 0) + count
    head = header | {"audit_entries": audit.count}
    with target.open("wb") as out:
        out.write(compressor.compress(line(head)))
        for part in parts:
            with _part_file(path, part.number).open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
        chunks = len(hashes)
        if audit.count:
            sha = _write_log_chunk(out, compressor, audit)
            hashes.append(sha)
            sizes.append(audit.count)
            chunks += 1
        trailer = {
            "kind": "trailer",
            "counts": counts,
            "chunks": chunks,
            "objects": sum(counts.values()),
            "audit_entries": audit.count,
            "manifest": [{"count": n, "sha256": sha} for n, sha in zip(sizes, hashes, strict=True)],
            "digest": digest(hashes),
        }
        _write_frame(out, compressor, line(trailer))
    return chunks


def _write_log_chunk(out: BinaryIO, compressor: zstandard.ZstdCompressor, audit: LogRows) -> str:
    """The audit entries as one chunk, compressed and hashed as they are read: however long
    the log, one entry is held at a time. Returns the chunk's SHA-256."""
    sha, written = hashlib.sha256(), 0
    frame = compressor.compressobj()
    for row in audit.rows:
        text = line({"kind": "audit", **row})
        sha.update(text)
        out.write(frame.compress(text))
        written += 1
    if written != audit.count:
        raise TransferError(
            f"the audit log gave {written} entries where {audit.count} were counted",
            hint="run `stairway audit verify` on this site, then export again",
        )
    record = {"kind": "chunk", "number": 1, "count": written, "audit": written}
    out.write(frame.compress(line(record | {"sha256": sha.hexdigest()})))
    out.write(frame.flush())
    return sha.hexdigest()


def write_log(path: Path, header: dict[str, Any], audit: LogRows) -> int:
    """A file of audit entries only (an audit tail): the header, one chunk with the entries
    (streamed: ``audit.rows`` is read once, as it is written), the trailer, renamed into place
    whole. Returns the chunks written."""
    head = {"kind": "header", "format": FORMAT} | header | {"counts": {}}
    return _assemble(path, head, [], audit)


def _load_part(path: Path, planned: _Part) -> _Part:
    saved = _part_progress(path, planned.number)
    return _Part(**orjson.loads(saved.read_bytes())) if saved.exists() else planned


def _progress_file(path: Path) -> Path:
    return path.with_name(path.name + ".progress")


def _part_file(path: Path, number: int) -> Path:
    return path.with_name(f"{path.name}.part-{number + 1}")


def _part_progress(path: Path, number: int) -> Path:
    return path.with_name(f"{path.name}.part-{number + 1}.progress")
