"""``stairway import``: an export file into a site, migrated while parsing, one chunk at a time.

Each chunk is checked against its chunk record, its objects are migrated into the release the
site runs (an old export comes out in the new shape) and inserted in one transaction together
with the import's checkpoint, so a killed import resumes after its last committed chunk. An
object already present is left alone, so importing the same file twice leaves one copy. A record
that cannot be read goes to the reject file with its line and reason; ``max_errors`` decides
when to stop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import JSON, Column, Connection, Integer, MetaData, String, Table, select, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from stairway.errors import ObjectMigrationError, TransferError
from stairway.objects.store import ObjectStore, encode
from stairway.transfer.format import FORMAT, digest, records
from stairway.versions import Version

Progress = Callable[[int], None]
metadata = MetaData()
imports_table = Table(
    "stairway_imports",
    metadata,
    Column("import_id", String(64), primary_key=True),
    Column("chunks", Integer, nullable=False),
)


@dataclass
class ImportReport:
    header: dict[str, Any] = field(default_factory=dict)
    imported: int = 0  # objects inserted by this run
    present: int = 0  # objects already there (an earlier run, or the same file twice)
    rejected: int = 0
    migrated: int = 0
    chunks: int = 0
    skipped_chunks: int = 0  # committed by an interrupted earlier run
    counts: dict[str, int] = field(default_factory=dict)  # objects of each type in the file
    complete: bool = False
    problems: list[str] = field(default_factory=list)


class _Rejects:
    def __init__(self, path: Path, limit: int) -> None:
        self.path, self.limit, self.count = path, limit, 0
        self._out = path.open("ab")

    def add(self, number: int, reason: str, raw: bytes) -> None:
        self.count += 1
        entry = {"line": number, "reason": reason, "record": raw[:2000].decode("utf-8", "replace")}
        self._out.write(orjson.dumps(entry) + b"\n")
        self._out.flush()
        if self.count > self.limit:
            raise TransferError(
                f"{self.count} records rejected, more than --max-errors {self.limit} "
                f"(the last: line {number}: {reason})",
                hint=f"see {self.path}; chunks before it are imported, and the import resumes",
            )

    def close(self) -> None:
        self._out.close()


def import_objects(
    store: ObjectStore,
    path: Path,
    product: str,
    max_errors: int = 0,
    progress: Progress | None = None,
) -> ImportReport:
    report = ImportReport()
    rejects = _Rejects(path.with_name(path.name + ".rejects.ndjson"), max_errors)
    try:
        _run(store, path, product, report, rejects)
    finally:
        rejects.close()
    report.rejected = rejects.count
    return report


def _run(
    store: ObjectStore, path: Path, product: str, report: ImportReport, rejects: _Rejects
) -> None:
    chunk: list[tuple[int, bytes, dict[str, Any]]] = []
    hashes: list[str] = []
    import_id = ""
    done = 0
    for number, raw in records(path):
        if number == 1:  # nothing is imported from a file without a readable header
            import_id, done = _begin(store, _header(raw), raw, product, report)
            continue
        record = _parse(number, raw, rejects)
        if record is None:
            continue
        kind = record.get("kind")
        if kind == "header":
            rejects.add(number, "a second header", raw)
        elif kind == "object":
            chunk.append((number, raw, record))
            report.counts[str(record.get("type"))] = (
                report.counts.get(str(record.get("type")), 0) + 1
            )
        elif kind == "chunk":
            hashes.append(str(record.get("sha256")))
            report.chunks += 1
            if report.chunks <= done:
                report.skipped_chunks += 1
            else:
                _import_chunk(store, import_id, report, record, chunk, rejects)
            chunk = []
        elif kind == "trailer":
            _finish(report, record, hashes)
        else:
            rejects.add(number, f"unknown record kind {kind!r}", raw)
    if not report.header:
        raise TransferError(f"{path} is empty: not a Stairway export", hint="")
    if not report.complete:
        report.problems.append(
            "no trailer: the file is truncated; objects of whole chunks were imported"
        )


def _header(raw: bytes) -> dict[str, Any]:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        raise TransferError(
            "the first line is not a header record: not a Stairway export, or damaged",
            hint="check the file with `stairway export verify FILE`",
        )
    return record


def _parse(number: int, raw: bytes, rejects: _Rejects) -> dict[str, Any] | None:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        rejects.add(number, f"not JSON: {err}", raw)
        return None
    if not isinstance(record, dict):
        rejects.add(number, "not a JSON object", raw)
        return None
    return record


def _begin(
    store: ObjectStore, header: dict[str, Any], raw: bytes, product: str, report: ImportReport
) -> tuple[str, int]:
    if header.get("kind") != "header" or header.get("format") != FORMAT:
        raise TransferError(
            "the file does not start with a Stairway export header",
            hint="check the file with `stairway export verify FILE`",
        )
    if header.get("product") != product:
        raise TransferError(
            f"the export is of {header.get('product')!r}, this site runs {product!r}",
            hint="import it into a site of the same product",
        )
    exported, running = header.get("version"), Version.parse(store.current)
    if not isinstance(exported, str) or _newer(exported, running):
        raise TransferError(
            f"the export was made by release {exported}, newer than this site's {running}",
            hint="upgrade this site first: objects are never migrated backwards",
        )
    report.header = header
    import_id = hashlib.sha256(raw).hexdigest()
    with store.engine.begin() as conn:
        metadata.create_all(conn, checkfirst=True)
        done = conn.execute(
            select(imports_table.c.chunks).where(imports_table.c.import_id == import_id)
        ).scalar()
        if done is None:
            conn.execute(sql_insert(imports_table).values(import_id=import_id, chunks=0))
    return import_id, int(done or 0)


def _newer(exported: str, running: Version) -> bool:
    try:
        return Version(exported) > running
    except ValueError:
        return True  # an unreadable version cannot be trusted to be older


def _import_chunk(
    store: ObjectStore,
    import_id: str,
    report: ImportReport,
    marker: dict[str, Any],
    chunk: list[tuple[int, bytes, dict[str, Any]]],
    rejects: _Rejects,
) -> None:
    body = b"".join(raw + b"\n" for _, raw, _ in chunk)
    if (
        marker.get("count") != len(chunk)
        or marker.get("sha256") != hashlib.sha256(body).hexdigest()
    ):
        for number, raw, _ in chunk:
            rejects.add(number, f"chunk {marker.get('number')} does not match its SHA-256", raw)
        return
    native = isinstance(store.table.c[store.spec.body].type, JSON)  # SQLAlchemy encodes it
    rows = [r for item in chunk if (r := _row(store, item, native, rejects, report)) is not None]
    with store.engine.begin() as conn:
        inserted = _insert(conn, store, rows)
        conn.execute(
            update(imports_table)
            .where(imports_table.c.import_id == import_id)
            .values(chunks=report.chunks)
        )
    report.imported += inserted
    report.present += len(rows) - inserted


def _row(
    store: ObjectStore,
    item: tuple[int, bytes, dict[str, Any]],
    native: bool,
    rejects: _Rejects,
    report: ImportReport,
) -> dict[str, Any] | None:
    number, raw, record = item
    oid, type_, data, stamp = (record.get(k) for k in ("id", "type", "data", "written_by"))
    if oid is None or not isinstance(type_, str) or not isinstance(data, dict):
        rejects.add(number, "an object needs an id, a type and a JSON object as data", raw)
        return None
    try:
        outcome = store.migrator.migrate(type_, data, stamp if isinstance(stamp, str) else None)
    except ObjectMigrationError as err:
        rejects.add(number, err.message, raw)
        return None
    if outcome.applied:
        report.migrated += 1
    spec = store.spec
    body = outcome.document if native else encode(outcome.document)
    row = {spec.id: oid, spec.type: type_, spec.body: body}
    if spec.version:
        row[spec.version] = store.current if outcome.applied else (stamp or store.current)
    return row


def _insert(conn: Connection, store: ObjectStore, rows: list[dict[str, Any]]) -> int:
    """Insert the rows an earlier run did not; returns how many were new."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return _copy(conn, store, rows)
    statement = (
        sqlite_insert(store.table)
        .on_conflict_do_nothing(index_elements=[store.spec.id])
        .returning(store.id_column)
    )
    return len(conn.execute(statement, rows).all())


def _copy(conn: Connection, store: ObjectStore, rows: list[dict[str, Any]]) -> int:
    """PostgreSQL: COPY into a staging table, then one INSERT ... ON CONFLICT DO NOTHING.

    COPY alone cannot skip rows already present, which importing twice or resuming needs.
    """
    quote = conn.dialect.identifier_preparer.quote
    columns = list(rows[0])
    names = ", ".join(quote(c) for c in columns)
    table, stage = quote(store.spec.table), "stairway_import_stage"
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_copy_value(row[c]) for c in columns])
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} "
            f"ON CONFLICT ({quote(store.spec.id)}) DO NOTHING RETURNING 1"
        )
        inserted = len(cursor.fetchall())
        cursor.execute(f"TRUNCATE {stage}")
    return inserted


def _copy_value(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, dict) else value


def _finish(report: ImportReport, trailer: dict[str, Any], hashes: list[str]) -> None:
    report.complete = True
    if trailer.get("digest") != digest(hashes):
        report.problems.append(
            "the trailer's digest does not match the chunks: the file was changed"
        )
    if trailer.get("counts") != report.counts:
        report.problems.append("the trailer's counts differ from the objects in the file")
