"""The one owner of the upgrade journal: an append-only file of records, one a line.

The journal lives outside the database (in ``backup_dir``) because a rollback replaces the
database. Each step is recorded before it starts and after it ends, so after a crash the journal
says which step was under way; the first record holds the plan, so ``--resume`` needs nothing
else. A finished journal moves to ``upgrades/<id>.journal`` and is history.

Each line is ``<checksum>\t<json>``: the first 16 hex digits of the SHA-256 of the JSON bytes.
The file is fsynced after every append, and its directory when the file is created. A crash can
leave the last line torn; its checksum fails and readers skip it, as a record never written. It
is never rewritten: the next append first ends it with a newline and a line of its own saying it
was cut short (``CUT``), so the torn bytes stay as they were and are told apart from damage. Any
other line that fails its checksum (a flipped bit, an edit) is damage: reading goes on, but
``JournalState.damaged`` names those lines, and an upgrade is not resumed from such a journal,
since it can no longer say which steps ran (a rollback, which restores everything from the
backup, still can be). Lines without a checksum are the format of earlier versions and are read
as they are.

The plan is written before any step runs. A journal whose plan line is torn and which holds no
other record therefore recorded nothing that ran: ``active()`` moves it into the history as
``<stamp>.torn`` and the site has no interrupted upgrade. With any other record beside it, it is
not set aside: that needs an operator.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from stairway import faults
from stairway.errors import JournalWriteError, UpgradeError
from stairway.files import sync_directory

ACTIVE = "upgrade.journal"
HISTORY = "upgrades"
TORN = ".torn"  # a set-aside journal whose plan was torn: nothing had started
# Fault-injection tests (stairway.faults): "<step>:<event>" kills this process (SIGKILL) right
# after writing that record; "<step>:<event>:torn" kills it after writing only the first half of
# the record's line.
CHECK = 16  # hex digits of SHA-256 before the tab of each line
# Written after a torn last line by the next append: the line above it was cut short by a crash
# or a failed write, not damaged afterwards. It never decodes as a record.
CUT = b"~ the line above was cut short and is not a record"


@dataclass(frozen=True)
class Record:
    """One record of the journal after its plan: an event, the step it is about, and its data."""

    # plan | begin | done | failed | rollback-begin | rollback-started | rolled-back | finished
    event: str
    step: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: str = ""  # ISO 8601, UTC, milliseconds


@dataclass(frozen=True)
class JournalState:
    """What a journal says: the plan, where it got to, and how it ended (if it did)."""

    upgrade_id: str
    plan: dict[str, Any]
    records: tuple[Record, ...]
    torn: int = 0  # lines cut short by a crash or a failed write: records never written
    damaged: tuple[int, ...] = ()  # line numbers (from 1) failing their checksum otherwise

    @property
    def done(self) -> set[int]:
        """The steps recorded as done."""
        return {r.step for r in self.records if r.event == "done" and r.step is not None}

    @property
    def ended(self) -> str | None:
        """``finished`` or ``rolled-back`` when the last record ends the upgrade, else None."""
        last = self.records[-1].event if self.records else None
        return last if last in ("finished", "rolled-back") else None

    def value(self, key: str) -> Any:
        """The latest value a ``done`` record carried for ``key`` (such as the backup id)."""
        found = [r.data[key] for r in self.records if key in r.data]
        return found[-1] if found else None


class Journal:
    """The upgrade journal in ``backup_dir``: the active one and the history of finished ones."""

    def __init__(self, backup_dir: Path) -> None:
        self.directory = backup_dir
        self.path = backup_dir / ACTIVE

    def active(self) -> JournalState | None:
        """The interrupted upgrade, if any; a journal that recorded nothing is set aside."""
        if not self.path.exists():
            return None
        if _recorded_nothing(self.path):
            self.set_aside()
            return None
        return read(self.path)

    def set_aside(self) -> Path:
        """Move the active journal into the history as ``<stamp>.torn`` (it is not one)."""
        stamp = datetime.fromtimestamp(self.path.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%SZ")
        return self._move(f"{stamp}{TORN}")

    def start(self, upgrade_id: str, plan: dict[str, Any]) -> None:
        """Open a journal for ``upgrade_id`` with its plan as the first record.

        Raises UpgradeError when an interrupted upgrade's journal is open.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.active() is not None:
            raise UpgradeError(
                "an upgrade journal is already open", hint="`stairway upgrade --resume`"
            )
        self._append({"event": "plan", "upgrade": upgrade_id, "plan": plan})

    def begin(self, step: int) -> None:
        """Record that ``step`` is starting."""
        self._append({"event": "begin", "step": step})

    def done(self, step: int, **data: Any) -> None:
        """Record that ``step`` ended, with what a resume or rollback needs, such as a backup id."""
        self._append({"event": "done", "step": step, **data})

    def record(self, event: str, step: int | None = None, **data: Any) -> None:
        """Append a record of ``event``, about ``step`` if given, with ``data``."""
        self._append({"event": event, "step": step, **data})

    def close(self, upgrade_id: str) -> Path:
        """Move the finished journal into the history."""
        return self._move(f"{upgrade_id}.journal")

    def mark_history(self, upgrade_id: str, event: str) -> None:
        """Append a record to a finished upgrade's journal (a later rollback of it)."""
        history = Journal(self.directory)
        history.path = self.directory / HISTORY / f"{upgrade_id}.journal"
        history.record(event)

    def history(self) -> list[JournalState]:
        """Every finished upgrade's journal, oldest first."""
        return [read(path) for path in self.history_files()]

    def history_files(self) -> list[Path]:
        """The files of the finished upgrades' journals, sorted by name, none of them read."""
        folder = self.directory / HISTORY
        return sorted(folder.glob("*.journal")) if folder.is_dir() else []

    def _move(self, name: str) -> Path:
        history = self.directory / HISTORY
        history.mkdir(exist_ok=True)
        target = history / name
        os.replace(self.path, target)
        sync_directory(self.directory)  # a rename touches both directories: both made durable
        sync_directory(history)
        return target

    def _append(self, entry: dict[str, Any]) -> None:
        faults.point("before:journal-write")
        entry["at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
        line = encode(entry)
        torn = _torn_fault(entry)
        try:
            append_line(self.path, line[: len(line) // 2] if torn else line)
        except OSError as err:
            raise JournalWriteError(str(self.path), err.errno, _reason(err)) from err
        _fault(entry, torn)


def encode(entry: dict[str, Any]) -> bytes:
    """One journal line: the checksum of the record's JSON, a tab, the JSON, a newline."""
    payload = orjson.dumps(entry)
    return _checksum(payload) + b"\t" + payload + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """The record a line holds, or None for a torn or damaged line."""
    if line[CHECK : CHECK + 1] == b"\t":
        payload = line[CHECK + 1 :]
        return _entry(payload) if _checksum(payload) == line[:CHECK] else None
    if line.startswith(b"{"):
        return _entry(line)  # written by an earlier version, without a checksum
    return None


def append_line(path: Path, line: bytes) -> None:
    """Append ``line`` and fsync; the directory too when this creates the file.

    Bytes a crash left after the last newline are ended first, never overwritten: the torn line
    stays as it is, followed by ``CUT`` (unless it is a whole record missing only its newline),
    and readers skip it by its checksum.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        created = True
    except FileExistsError:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        created = False
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = _closing(_last_line(fd, size)) + line
        _write_all(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        sync_directory(path.parent)


def read(path: Path) -> JournalState:
    """The journal at ``path``; torn and damaged lines are counted, not read.

    Raises UpgradeError when its first readable record is not a plan.
    """
    found = scan(path.read_bytes())
    entries = found.entries
    if not entries or entries[0].get("event") != "plan":
        skipped = found.torn + len(found.damaged)
        raise UpgradeError(
            f"{path} is not an upgrade journal"
            + (f" ({skipped} unreadable line(s), its plan among them)" if skipped else ""),
            hint="if no upgrade is under way, move it away; the backups hold the site as it was",
        )
    head = entries[0]
    records = tuple(_record(e) for e in entries[1:])
    return JournalState(
        str(head["upgrade"]), dict(head["plan"]), records, found.torn, found.damaged
    )


@dataclass(frozen=True)
class Scan:
    """A journal's bytes read line by line."""

    entries: list[dict[str, Any]]
    torn: int  # the last line cut short, or a line followed by ``CUT``
    damaged: tuple[int, ...]  # every other line that is not a record: its number, from 1


def scan(data: bytes) -> Scan:
    """Split journal bytes into records, torn lines and damaged lines."""
    lines = data.split(b"\n")
    entries: list[dict[str, Any]] = []
    torn, damaged = 0, []
    for number, line in enumerate(lines, 1):
        if not line or line == CUT:
            continue  # the end of the file, or the mark after a torn line
        entry = decode(line)
        if entry is not None:
            entries.append(entry)
        elif number == len(lines) or lines[number] == CUT:
            torn += 1  # the file's unfinished end, or an end a later append closed off
        else:
            damaged.append(number)
    return Scan(entries, torn, tuple(damaged))


def _recorded_nothing(path: Path) -> bool:
    """Empty, or only damaged lines: the plan never completed, so no step can have begun."""
    return not scan(path.read_bytes()).entries


def _last_line(fd: int, size: int) -> bytes:
    """The bytes after the file's last newline (a torn line is at most one record long)."""
    tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
    return tail.rsplit(b"\n", 1)[-1]


def _closing(torn: bytes) -> bytes:
    """What ends an unfinished last line: a newline, and ``CUT`` unless it is a whole record."""
    return b"\n" if decode(torn) is not None else b"\n" + CUT + b"\n"


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(payload).hexdigest()[:CHECK].encode()


def _entry(payload: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and "event" in value else None


def _record(entry: dict[str, Any]) -> Record:
    data = {k: v for k, v in entry.items() if k not in ("event", "step", "at")}
    return Record(str(entry["event"]), entry.get("step"), data, str(entry.get("at", "")))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _reason(err: OSError) -> str:
    name = errno.errorcode.get(err.errno or 0, "")
    text = err.strerror or str(err)
    return f"{text} ({name})" if name else text


def _point(entry: dict[str, Any]) -> str:
    return f"{entry.get('step')}:{entry['event']}"


def _torn_fault(entry: dict[str, Any]) -> bool:
    return faults.named(f"{_point(entry)}:torn")


def _fault(entry: dict[str, Any], torn: bool = False) -> None:
    faults.point(f"{_point(entry)}:torn" if torn else _point(entry))
