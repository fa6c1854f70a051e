"""``stairway import``: an export file into a site, migrated while parsing, one chunk at a time.

The header is read and checked first (product, a release no newer than the site's), then the
whole file as ``export verify`` checks it: a file damaged, truncated or edited anywhere (a
chunk against its record, the trailer's manifest and digest against the chunks) is refused
before anything is written. Then one or more processes each take their part of the chunks
(``scan``): each chunk is checked again against its chunk record, its objects are migrated
into the release the site runs (an old export comes out in the new shape) and loaded in one
transaction with the chunk's checkpoint row, so a killed import resumes after the chunks it
committed. An object already present is left alone, so importing the same file twice leaves
one copy. A record that passes the checks but cannot be taken (no id, a failed migration) goes
to the reject file with its line and reason; ``max_errors`` decides when to stop. At the end
the counts per type of every chunk in are checked against the header.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from stairway import audit
from stairway.errors import TransferError
from stairway.objects.store import ObjectStore
from stairway.progress import Progress
from stairway.transfer import checkpoint
from stairway.transfer.format import FORMAT, ExportSummary, check, records
from stairway.transfer.rejects import Rejects, shared_counter
from stairway.transfer.scan import Part, Scan, ScanReport
from stairway.transfer.shards import WHOLE, Shard
from stairway.transfer.trust import NO_TRUST, AuditTrust, judge
from stairway.transfer.workers import Alive, Task, Tick, run_all
from stairway.version_grammars import GrammarName, describe
from stairway.versions import Version


@dataclass
class TypeCount:
    """Objects of one type: as the header announces them, as read and as stored."""

    header: int  # objects of this type the header announces
    read: int  # object records of this type in the chunks that are in
    stored: int  # of those, now in the site (new or already there)


@dataclass
class ImportReport:
    """What an import did, and once every chunk is in, whether the counts match the header."""

    header: dict[str, Any] = field(default_factory=dict)
    imported: int = 0
    present: int = 0
    rejected: int = 0
    migrated: int = 0
    chunks: int = 0  # chunks in the file
    skipped_chunks: int = 0  # committed by an interrupted earlier run
    chunks_in: int = 0  # chunks committed by every run and process so far
    types: dict[str, TypeCount] = field(default_factory=dict)  # checked once every chunk is in
    complete: bool = False  # every chunk of the file is in and the trailer was read
    problems: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Object records read per type, over every chunk that is in."""
        return {name: found.read for name, found in self.types.items()}


def import_objects(
    store: ObjectStore,
    path: Path,
    product: str,
    max_errors: int = 0,
    progress: Progress[None] | None = None,
    workers: int = 1,
    shard: Shard = WHOLE,
    trust: AuditTrust = NO_TRUST,
) -> ImportReport:
    """Import an export file into the site's objects, resuming after its last recorded chunk.

    The file is checked whole before anything is written. Objects from an older release are
    migrated to the site's; records that cannot be taken go to ``<file>.rejects.ndjson``.

    Args:
        store: The site's object store.
        path: The export file.
        product: The site's product; an export of another product is refused.
        max_errors: Rejected records allowed before the import stops.
        progress: Called with (objects done, objects expected).
        workers: Processes on this machine, each taking its share of the chunks.
        shard: This machine's share when several import the same file.
        trust: The exporting site's audit public key, by which its audit entries are checked;
            entries not signed with it are refused, or with ``untrusted`` imported marked
            ``unverified``.

    Returns:
        The counts, and the problems found; ``complete`` once every chunk is in.

    Raises:
        TransferError: The file fails its check, is of another product or of a newer release,
            ``workers`` is below 1, its audit entries are not signed with the trusted key
            (unless ``trust.untrusted``), or more than ``max_errors`` records were rejected.
    """
    if workers < 1:
        raise TransferError(
            f"--workers must be at least 1 (got {workers})",
            hint="pass --workers 1, or up to the number of CPU cores",
        )
    header, raw = _read_header(path)
    _check_header(store, header, path, product)
    summary = _check_whole(path)
    verified = judge(summary, trust, path)
    signer = summary.checkpoint.key if verified and summary.checkpoint else None
    with store.engine.begin() as conn:
        checkpoint.ensure_table(conn)
    import_id = hashlib.sha256(raw + store.spec.table.encode()).hexdigest()  # per file and table
    job = _Job(store, path, import_id, _rejects_path(path), max_errors, not verified, signer)
    with store.engine.connect() as conn:
        done = checkpoint.recorded(conn, job.import_id)
    parts = [Part(shard.index, shard.of, worker, workers) for worker in range(workers)]
    tick = _ticker(progress, sum((header.get("counts") or {}).values()) // shard.of)
    tasks: list[Task[ScanReport]] = [functools.partial(job.scan, part, done) for part in parts]
    scanned = run_all(tasks, tick, "import")
    report = ImportReport(header=header, rejected=int(job.counter.value))
    _merge(report, scanned)
    _check_counts(job, report)
    with store.engine.begin() as conn:
        audit.append(conn, "site.import", _audit_data(path, shard, report))
    return report


def _audit_data(path: Path, shard: Shard, report: ImportReport) -> dict[str, Any]:
    return {
        "file": path.name,
        "from": {key: report.header.get(key) for key in ("product", "version", "created")},
        "shard": str(shard),
        "imported": report.imported,
        "present": report.present,
        "rejected": report.rejected,
        "complete": report.complete,
    }


@dataclass
class _Job:
    """What every process of one import shares."""

    store: ObjectStore
    path: Path
    import_id: str
    rejects: Path
    max_errors: int
    unverified: bool  # the audit entries are taken marked unverified
    signer: str | None  # the audit key id that signed them, kept with each
    counter: Any = field(default_factory=shared_counter)

    def scan(self, part: Part, done: set[int], progress: Tick, alive: Alive) -> ScanReport:
        """Import the chunks ``part`` owns, skipping those in ``done``; runs in a worker process."""
        if part.workers > 1:
            self.store.engine.dispose(close=False)  # the parent's pooled connections stay its own
        rejects = Rejects(self.rejects, self.max_errors, self.counter)
        scan = Scan(self.store, self.import_id, part, done, rejects, progress, alive)
        scan.unverified, scan.signer = self.unverified, self.signer
        try:
            return scan.run(self.path)
        finally:
            rejects.close()


def _merge(report: ImportReport, scanned: list[ScanReport]) -> None:
    first = scanned[0]  # every process reads every chunk record and the trailer
    total = ScanReport()
    for part in scanned:
        total.merge(part)
    report.imported, report.present, report.migrated = total.imported, total.present, total.migrated
    report.skipped_chunks, report.chunks = total.skipped_chunks, first.chunks
    report.problems.extend(first.problems)
    for part in scanned[1:]:
        report.problems.extend(p for p in part.problems if p not in report.problems)
    if first.trailer is None:
        report.problems.append("no trailer: the file is truncated; whole chunks were imported")
    elif first.trailer.get("chunks") not in (None, first.chunks):
        report.problems.append(
            f"the trailer counts {first.trailer.get('chunks')} chunks, the file has {first.chunks}"
        )


def _check_counts(job: _Job, report: ImportReport) -> None:
    """Once every chunk of the file is in (from this run, earlier ones, other machines),
    the objects per type read and stored must be the header's."""
    with job.store.engine.connect() as conn:
        report.chunks_in, sums = checkpoint.total(conn, job.import_id)
    announced: dict[str, int] = dict(report.header.get("counts") or {})
    names = sorted(set(announced) | set(sums.types))
    report.types = {
        name: TypeCount(announced.get(name, 0), *sums.types.get(name, [0, 0])) for name in names
    }
    if report.chunks_in < report.chunks or report.chunks == 0:
        return
    report.complete = not report.problems
    for name, found in report.types.items():
        if found.read != found.header:
            report.problems.append(
                f"{name}: the header announces {found.header:,}, the file holds {found.read:,}"
            )
        elif found.stored != found.header:
            report.problems.append(
                f"{name}: {found.header - found.stored:,} of {found.header:,} objects are not "
                "in the site (rejected)"
            )


def _ticker(progress: Progress[None] | None, expected: int) -> Tick | None:
    """Chunks report how many objects they held; the bar wants the running total."""
    if progress is None:
        return None
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        progress(done, max(expected, done), None)

    return tick


def _read_header(path: Path) -> tuple[dict[str, Any], bytes]:
    """Nothing is imported from a file without a readable header."""
    for _, raw in records(path):
        try:
            header = orjson.loads(raw)
        except orjson.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("kind") != "header":
            break
        return header, raw
    raise TransferError(
        f"{path} does not start with a Stairway export header: not an export, or damaged",
        hint="check the file with `stairway export verify FILE`",
    )


def _check_header(store: ObjectStore, header: dict[str, Any], path: Path, product: str) -> None:
    if header.get("format") != FORMAT:
        raise TransferError(
            f"{path} is in export format {header.get('format')!r}; this Stairway reads {FORMAT}",
            hint="export it again with this Stairway",
        )
    if "audit_after" in header:
        raise TransferError(
            f"{path} is an audit tail (`stairway audit export`), not an export of objects",
            hint="import it with `stairway audit import FILE --trust KEY`",
        )
    if header.get("product") != product:
        raise TransferError(
            f"the export is of {header.get('product')!r}, this site runs {product!r}",
            hint="import it into a site of the same product",
        )
    _check_release(store, header.get("version"))


def _check_release(store: ObjectStore, exported: object) -> None:
    """The export's release, read in the catalog's grammar, is no newer than the site's."""
    grammar = store.migrator.grammar
    running = Version.parse(store.current, grammar)
    if not isinstance(exported, str) or _unreadable(exported, grammar):
        raise TransferError(
            f"the export names release {exported!r}, not a version of this catalog's "
            f"{grammar} grammar",
            hint=f"import it into a site of the product that made it ({describe(grammar)})",
        )
    if Version(exported, grammar) > running:
        raise TransferError(
            f"the export was made by release {exported}, newer than this site's {running}",
            hint="upgrade this site first: objects are never migrated backwards",
        )


def _check_whole(path: Path) -> ExportSummary:
    """The checks of ``export verify``, before anything is written: a damaged, truncated or
    edited file (a chunk, its record, the trailer's manifest or digest) is refused whole, so
    an import never stops half-way on a file that was wrong from the start. It costs one more
    pass of decompressing and hashing, small beside migrating and loading the objects."""
    summary = check(path)
    if summary.ok:
        return summary
    first, more = summary.problems[0], len(summary.problems) - 1
    also = f" (and {more} more)" if more else ""
    raise TransferError(
        f"{path} fails its check, nothing was imported: {first.describe()}{also}",
        hint="`stairway export verify FILE` lists every problem; copy or export the file again",
    )


def _unreadable(exported: str, grammar: GrammarName) -> bool:
    try:
        Version(exported, grammar)
    except ValueError:
        return True
    return False


def _rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.ndjson")
