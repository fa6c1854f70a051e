"""The rates estimates use: the calibration's costs per operation kind, and what this site's last
rehearsal or upgrade measured (each schema change's time, the object rewrite rate, the backup
rate, the service's stop and start).

They are kept beside the backups (``<backup_dir>/stairway-rates.json``) rather than in the site
database, so that a rehearsal leaves the live database byte for byte as it was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from stairway import faults
from stairway.estimate.calibration import Cost, calibrate
from stairway.files import write_atomic
from stairway.steps import StepKind

FILE = "stairway-rates.json"
OBJECTS_PER_S = 20_000.0  # built-in: one JSON document read, migrated and written
BACKUP_BYTES_PER_S = 50e6  # built-in: dump and zstd of the database and data directory


@dataclass
class Rates:
    """The calibration's costs per operation kind and what this site last measured."""

    engine: str
    costs: dict[str, Cost]  # operation kind -> cost
    calibrated: str  # when
    changes: dict[str, float] = field(default_factory=dict)  # change label -> seconds measured
    steps: dict[str, float] = field(default_factory=dict)  # step kind -> seconds measured
    tasks: dict[str, float] = field(default_factory=dict)  # task name -> seconds measured
    objects_per_s: float | None = None  # measured
    backup_bytes_per_s: float | None = None  # measured
    measured_by: str | None = None  # "rehearsal <id>" or "upgrade <id>"

    def as_json(self) -> bytes:
        """The rates as the indented JSON of the rates file."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def parse(cls, raw: bytes) -> Rates:
        """Rates from the file's bytes; raises ValueError, TypeError or KeyError when damaged."""
        data: dict[str, Any] = orjson.loads(raw)
        data["costs"] = {k: Cost(**v) for k, v in data["costs"].items()}
        return cls(**data)


def rates_path(backup_dir: Path | None) -> Path | None:
    """Where the rates file is kept: beside the backups, or nowhere without them."""
    return backup_dir / FILE if backup_dir else None


def load_rates(engine: Engine, backup_dir: Path | None, recalibrate: bool = False) -> Rates:
    """The site's rates; calibrated now when there are none yet (or when asked)."""
    kind = engine.dialect.name
    found = read_rates(backup_dir, kind)
    if found is not None and found.costs and not recalibrate:
        return found
    rates = found or Rates(kind, {}, "")
    rates.costs = calibrate(engine)
    rates.calibrated = datetime.now(UTC).isoformat(timespec="seconds")
    save_rates(backup_dir, rates)
    return rates


def read_rates(backup_dir: Path | None, engine_kind: str) -> Rates | None:
    """The rates kept for this site, or None when there are none for ``engine_kind``.

    A damaged file is ignored, to be measured again.
    """
    path = rates_path(backup_dir)
    if path is None or not path.is_file():
        return None
    try:
        found = Rates.parse(path.read_bytes())
    except (ValueError, TypeError, KeyError):
        return None  # a damaged file is measured again, not trusted
    return found if found.engine == engine_kind else None


def record_measured(
    backup_dir: Path | None,
    engine_kind: str,
    done: list[tuple[StepKind, dict[str, Any]]],
    by: str,
    service: bool = True,
) -> None:
    """Keep what an upgrade or a rehearsal measured: ``done`` is (step kind, its data);
    ``service`` is False for a rehearsal, which never stops or starts the product."""
    rates = read_rates(backup_dir, engine_kind) or Rates(engine_kind, {}, "")
    for kind, data in done:
        seconds = float(data.get("seconds", 0.0))
        rates.changes.update({k: v / 1000 for k, v in data.get("ms", {}).items()})
        if kind == StepKind.OBJECTS and data.get("rewritten", 0) >= 1000 and seconds > 0:
            rates.objects_per_s = data["rewritten"] / seconds
        took = float(data.get("took", seconds))  # the backup ran beside verify
        if kind == StepKind.BACKUP and data.get("bytes") and took > 0:
            rates.backup_bytes_per_s = data["bytes"] / took
        if kind == StepKind.TASK and data.get("ran_s") is not None:
            rates.tasks[str(data["task"])] = float(data["ran_s"])
        if service and kind in (StepKind.STOP, StepKind.START, StepKind.HEALTH):
            rates.steps[kind.value] = seconds  # a plain str: the rates file's keys are JSON
    rates.measured_by = by
    save_rates(backup_dir, rates)


def save_rates(backup_dir: Path | None, rates: Rates) -> None:
    """Write the rates file atomically; without a backup directory, nothing is kept."""
    path = rates_path(backup_dir)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        faults.point("before:rates-write")
        write_atomic(path, rates.as_json())
