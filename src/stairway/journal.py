"""The one owner of the upgrade journal: a JSON-lines file, fsynced after every record.

The journal lives outside the database (in ``backup_dir``) because a rollback replaces the
database. Each step is recorded before it starts and after it ends, so after a crash the journal
says which step was under way; the first record holds the plan, so ``--resume`` needs nothing
else. A finished journal moves to ``upgrades/<id>.journal`` and is history.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from stairway import faults
from stairway.errors import UpgradeError
from stairway.files import sync_directory

ACTIVE = "upgrade.journal"
HISTORY = "upgrades"
# "<step>:<event>": kill -9 this process right after writing that record (fault-injection tests)
FAULT = faults.FAULT


@dataclass(frozen=True)
class Record:
    event: str  # plan | begin | done | failed | rollback-begin | rolled-back | finished
    step: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: str = ""  # ISO 8601, UTC, milliseconds


@dataclass(frozen=True)
class JournalState:
    """What a journal says: the plan, where it got to, and how it ended (if it did)."""

    upgrade_id: str
    plan: dict[str, Any]
    records: tuple[Record, ...]

    @property
    def done(self) -> set[int]:
        return {r.step for r in self.records if r.event == "done" and r.step is not None}

    @property
    def ended(self) -> str | None:
        last = self.records[-1].event if self.records else None
        return last if last in ("finished", "rolled-back") else None

    def value(self, key: str) -> Any:
        """The latest value a ``done`` record carried for ``key`` (such as the backup id)."""
        found = [r.data[key] for r in self.records if key in r.data]
        return found[-1] if found else None


class Journal:
    def __init__(self, backup_dir: Path) -> None:
        self.directory = backup_dir
        self.path = backup_dir / ACTIVE

    def active(self) -> JournalState | None:
        return read(self.path) if self.path.exists() else None

    def start(self, upgrade_id: str, plan: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            raise UpgradeError(
                "an upgrade journal is already open", hint="`stairway upgrade --resume`"
            )
        self._append({"event": "plan", "upgrade": upgrade_id, "plan": plan})

    def begin(self, step: int) -> None:
        self._append({"event": "begin", "step": step})

    def done(self, step: int, **data: Any) -> None:
        self._append({"event": "done", "step": step, **data})

    def record(self, event: str, step: int | None = None, **data: Any) -> None:
        self._append({"event": event, "step": step, **data})

    def close(self, upgrade_id: str) -> Path:
        """Move the finished journal into the history."""
        history = self.directory / HISTORY
        history.mkdir(exist_ok=True)
        target = history / f"{upgrade_id}.journal"
        os.replace(self.path, target)
        sync_directory(self.directory)
        return target

    def mark_history(self, upgrade_id: str, event: str) -> None:
        """Append a record to a finished upgrade's journal (a later rollback of it)."""
        history = Journal(self.directory)
        history.path = self.directory / HISTORY / f"{upgrade_id}.journal"
        history.record(event)

    def history(self) -> list[JournalState]:
        folder = self.directory / HISTORY
        found = [read(p) for p in sorted(folder.glob("*.journal"))] if folder.is_dir() else []
        return found

    def _append(self, entry: dict[str, Any]) -> None:
        faults.point("before:journal-write")
        entry["at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self.path.open("ab") as out:
            out.write(orjson.dumps(entry) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        _fault(entry)


def read(path: Path) -> JournalState:
    lines = path.read_bytes().splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            break  # a record torn by a crash is the last one: it never completed
    if not entries or entries[0].get("event") != "plan":
        raise UpgradeError(
            f"{path} is not an upgrade journal", hint="move it away if no upgrade is under way"
        )
    head = entries[0]
    records = tuple(_record(e) for e in entries[1:])
    return JournalState(str(head["upgrade"]), dict(head["plan"]), records)


def _record(entry: dict[str, Any]) -> Record:
    data = {k: v for k, v in entry.items() if k not in ("event", "step", "at")}
    return Record(str(entry["event"]), entry.get("step"), data, str(entry.get("at", "")))


def _fault(entry: dict[str, Any]) -> None:
    faults.point(f"{entry.get('step')}:{entry['event']}")
