"""``stairway export``: every stored object, in id order, to one checked NDJSON+zstd file.

Objects are written as stored (with the release that wrote them), not migrated: an import
migrates them while parsing, into whatever release the target site runs. Each chunk is one zstd
frame, fsynced, and recorded in a progress file beside the export; after a kill the export is cut
back to its last whole chunk and continues from there.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import zstandard
from sqlalchemy import select

from stairway.errors import TransferError
from stairway.files import write_atomic
from stairway.objects.store import ObjectStore
from stairway.transfer.format import FORMAT, digest, line

Progress = Callable[[int, int], None]


@dataclass
class _State:
    """Where an export got to: saved after every chunk, so a killed export can resume."""

    header: dict[str, Any]
    size: int = 0  # bytes of the export file that are whole
    last_id: Any = None
    chunks: int = 0
    hashes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def objects(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class ExportReport:
    path: Path
    objects: int
    chunks: int
    counts: dict[str, int]
    resumed_at: int


def export_objects(
    store: ObjectStore,
    path: Path,
    header: dict[str, Any],
    chunk: int = 10_000,
    progress: Progress | None = None,
) -> ExportReport:
    """Write (or finish) the export at ``path``."""
    state = _resume_or_start(store, path, header)
    resumed_at = state.objects
    total = sum(state.header["counts"].values())
    compressor = zstandard.ZstdCompressor(level=3)
    with path.open("r+b" if path.exists() else "wb") as out:
        out.truncate(state.size)
        out.seek(state.size)
        if state.size == 0:
            _frame(out, compressor, line(state.header), path, state)
        while rows := _rows(store, state.last_id, chunk):
            _frame(out, compressor, _chunk(state, rows), path, state)
            if progress:
                progress(state.objects, total)
        trailer = {
            "kind": "trailer",
            "counts": state.counts,
            "chunks": state.chunks,
            "objects": state.objects,
            "digest": digest(state.hashes),
        }
        _frame(out, compressor, line(trailer), path, state, final=True)
    _progress_file(path).unlink(missing_ok=True)
    return ExportReport(path, state.objects, state.chunks, state.counts, resumed_at)


def _resume_or_start(store: ObjectStore, path: Path, header: dict[str, Any]) -> _State:
    saved = _progress_file(path)
    if saved.exists():
        value = orjson.loads(saved.read_bytes())
        return _State(**value)
    if path.exists():
        raise TransferError(
            f"{path} already exists and holds no interrupted export",
            hint="choose another file name, or remove it first",
        )
    counts = store.counts()
    return _State(
        {
            "kind": "header",
            "format": FORMAT,
            **header,
            "counts": counts,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )


def _rows(store: ObjectStore, after: Any, size: int) -> list[tuple[Any, ...]]:
    query = select(*store.selection()).order_by(store.id_column).limit(size)
    if after is not None:
        query = query.where(store.id_column > after)
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def _chunk(state: _State, rows: list[tuple[Any, ...]]) -> bytes:
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
        record = {
            "kind": "object",
            "id": oid,
            "type": type_,
            "written_by": written_by,
            "data": data,
        }
        lines.append(line(record))
        state.counts[str(type_)] = state.counts.get(str(type_), 0) + 1
    body_bytes = b"".join(lines)
    sha = hashlib.sha256(body_bytes).hexdigest()
    state.chunks += 1
    state.hashes.append(sha)
    state.last_id = rows[-1][0]
    marker = {
        "kind": "chunk",
        "number": state.chunks,
        "count": len(rows),
        "last_id": state.last_id,
        "sha256": sha,
    }
    return body_bytes + line(marker)


def _frame(
    out: Any,
    compressor: zstandard.ZstdCompressor,
    data: bytes,
    path: Path,
    state: _State,
    final: bool = False,
) -> None:
    out.write(compressor.compress(data))
    out.flush()
    os.fsync(out.fileno())
    state.size = out.tell()
    if not final:
        write_atomic(_progress_file(path), orjson.dumps(state.__dict__))


def _progress_file(path: Path) -> Path:
    return path.with_name(path.name + ".progress")
