"""``plan --estimate``: each step of the upgrade with its lock, its table and its predicted time,
and the steps that would break a limit the operator sets.

A schema change's time is what this site's last rehearsal or upgrade measured for it, when it
did; otherwise the sum of its statements' operations costed on the table they touch (rows, heap
bytes, indexes) with the calibration's rates. Object steps count the documents of the types the
hop migrates; the backup is the database and data directory at the measured or built-in rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import Engine, text

from stairway.catalog import Catalog
from stairway.estimate.operations import (
    SHARE_UPDATE_EXCLUSIVE,
    Operation,
    OpKind,
    operations,
)
from stairway.estimate.rates import BACKUP_BYTES_PER_S, OBJECTS_PER_S, Rates
from stairway.estimate.sizes import TableSize
from stairway.plan import PlanStep, UpgradePlan
from stairway.schema.change import Change
from stairway.schema.sql_of import opaque_sql, sql_of
from stairway.steps import StepKind, serving_down
from stairway.tasks import Task, TaskKind

CONCURRENT_PASSES = 2.0  # CREATE INDEX CONCURRENTLY scans the table twice
# Steps whose time does not grow with the site: a flag, a link, a few rows or files.
QUICK = frozenset(
    {
        StepKind.MAINTENANCE_ON,
        StepKind.MAINTENANCE_OFF,
        StepKind.AUDIT,
        StepKind.INTERRUPT_JOBS,
        StepKind.CLEAR,
        StepKind.DELTAS,
        StepKind.CONFIG_FILES,
        StepKind.RELEASE,
        StepKind.SMOKE,
    }
)


@dataclass(frozen=True)
class Limits:
    """The limits an operator sets on an upgrade, in seconds; None sets no limit."""

    window: float | None = None  # seconds the product may be down
    probe: float | None = None  # a startup probe: a step that migrates on start must fit
    transaction: float | None = None  # the longest a transaction may run
    lock: float | None = None  # the longest the product's writes may wait behind a lock


@dataclass(frozen=True)
class OperationEstimate:
    """One operation of a change's statements, the table it touches and its predicted time."""

    operation: Operation
    size: TableSize | None
    seconds: float | None  # None: not known (a statement sqlglot cannot read)


@dataclass(frozen=True)
class ChangeEstimate:
    """A schema change's predicted time, where it comes from, and its operations."""

    change: Change
    seconds: float | None
    basis: str  # "measured" | "calibration" | "unknown"
    operations: tuple[OperationEstimate, ...] = ()

    @property
    def lock(self) -> str | None:
        """The lock of the first operation that blocks the product's writes, if any."""
        held = [o.operation.lock for o in self.operations if o.operation.blocks_writes]
        return held[0] if held else None

    @property
    def table(self) -> str | None:
        """The first table the change's operations touch, if any."""
        tables = [o.operation.table for o in self.operations if o.operation.table]
        return tables[0] if tables else None


@dataclass
class StepEstimate:
    """One step of the upgrade with its predicted time and the limits it would break."""

    kind: StepKind
    label: str  # the step as the upgrade describes it
    seconds: float | None
    basis: str
    changes: tuple[ChangeEstimate, ...] = ()
    flags: list[str] = field(default_factory=list)
    downtime: bool = True  # between stop and start: the product is not serving
    task: Task | None = None  # a task step's task

    @property
    def lock(self) -> str | None:
        """The first write-blocking lock any of the step's changes takes, if any."""
        return next((c.lock for c in self.changes if c.lock), None)

    @property
    def table(self) -> str | None:
        """The first table any of the step's changes touches, if any."""
        return next((c.table for c in self.changes if c.table), None)


@dataclass(frozen=True)
class Estimate:
    """Every step's prediction, the limits checked, and where the rates came from."""

    steps: tuple[StepEstimate, ...]
    limits: Limits
    rates_from: str

    @property
    def unknown(self) -> tuple[StepEstimate, ...]:
        """The steps without a basis for a prediction: no time is made up for them."""
        return tuple(s for s in self.steps if s.seconds is None)

    @property
    def known(self) -> float:
        """The predicted time of the steps that have a basis (the whole when none lacks one)."""
        return sum(s.seconds or 0.0 for s in self.steps)

    @property
    def known_downtime(self) -> float:
        """The predicted time of the steps while the product is down, those with a basis."""
        return sum(s.seconds or 0.0 for s in self.steps if s.downtime)

    @property
    def total(self) -> float | None:
        """The whole upgrade's predicted time; None when a step has no basis."""
        return None if self.unknown else self.known

    @property
    def downtime(self) -> float | None:
        """The predicted downtime; None when a step while the product is down has no basis."""
        return None if any(s.downtime for s in self.unknown) else self.known_downtime

    @property
    def flags(self) -> list[str]:
        """Each step's broken limits, led by the downtime window when the steps exceed it."""
        found = [f"{s.label}: {flag}" for s in self.steps for flag in s.flags]
        window = self.limits.window
        down = self.known_downtime  # with steps unknown, at least this long
        if window is not None and down > window:
            about = "about" if self.downtime is not None else "at least"
            found.insert(
                0,
                f"the product would be down {about} {_say(down)}, beyond the {_say(window)} window",
            )
        return found


@dataclass(frozen=True)
class SiteFacts:
    """What estimates read from the site: table sizes, objects per type, data bytes."""

    sizes: dict[str, TableSize]
    objects_by_type: dict[str, int]
    data_bytes: int
    postgres: bool = True  # locks are PostgreSQL's; SQLite locks the whole database to write
    index_tables: dict[str, str] = field(default_factory=dict)  # index name -> its table
    plugin_objects: dict[str, int] = field(default_factory=dict)  # hop's release -> repointed


def site_facts(
    engine: Engine, catalog: Catalog, sizes: dict[str, TableSize], data: Path | None
) -> SiteFacts:
    """Count the site's objects per type and the bytes of its data directory."""
    counts: dict[str, int] = {}
    model = catalog.objects
    if model is not None and model.table in sizes:
        with engine.connect() as conn:
            rows = conn.execute(
                text(f'SELECT "{model.type}", count(*) FROM "{model.table}" GROUP BY 1')
            )
            counts = {str(t): int(n) for t, n in rows}
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) if data else 0
    postgres = engine.dialect.name == "postgresql"
    return SiteFacts(sizes, counts, size, postgres, index_tables(engine))


def index_tables(engine: Engine) -> dict[str, str]:
    """Each index of the site's database with the table it indexes (for reindex tasks)."""
    query = (
        "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema()"
        if engine.dialect.name == "postgresql"
        else "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"
    )
    with engine.connect() as conn:
        return {str(index): str(table) for index, table in conn.execute(text(query))}


def estimate(
    plan: UpgradePlan,
    step_kinds: list[tuple[StepKind, str, PlanStep | None]],
    catalog: Catalog,
    facts: SiteFacts,
    rates: Rates,
    limits: Limits,
    tasks: Mapping[str, Task] | None = None,
) -> Estimate:
    """``step_kinds``: (kind, label, hop) for every step of the upgrade, in order; ``tasks``:
    the task of each task step, by its label."""
    steps = []
    down = serving_down(kind for kind, _, _ in step_kinds)
    for (kind, label, hop), downtime in zip(step_kinds, down, strict=True):
        task = (tasks or {}).get(label)
        if task is not None:
            found = _task(kind, label, task, facts, rates)
        else:
            found = _step(kind, label, hop, catalog, facts, rates)
        found.downtime = downtime
        _flag(found, limits)
        steps.append(found)
    basis = rates.measured_by or f"calibration of {rates.calibrated}"
    return Estimate(tuple(steps), limits, basis)


def _step(
    kind: StepKind,
    label: str,
    hop: PlanStep | None,
    catalog: Catalog,
    facts: SiteFacts,
    rates: Rates,
) -> StepEstimate:
    if kind == StepKind.SCHEMA and hop is not None:
        changes = tuple(_change(c, facts, rates) for c in hop.changes)
        known = [c.seconds for c in changes if c.seconds is not None]
        unknown = len(known) < len(changes)
        if unknown:  # one change without a basis makes the step's time unknown too
            return StepEstimate(kind, label, None, "unknown", changes)
        measured = changes and all(c.basis == "measured" for c in changes)
        return StepEstimate(
            kind, label, sum(known), "measured" if measured else "calibration", changes
        )
    if kind == StepKind.OBJECTS and hop is not None:
        count = _objects_to_rewrite(catalog, facts, hop)
        rate = rates.objects_per_s or OBJECTS_PER_S
        return StepEstimate(kind, label, count / rate, _basis(rates.objects_per_s))
    if kind == StepKind.BACKUP:
        size = sum(s.bytes for s in facts.sizes.values()) + facts.data_bytes
        rate = rates.backup_bytes_per_s or BACKUP_BYTES_PER_S
        return StepEstimate(kind, label, size / rate, _basis(rates.backup_bytes_per_s))
    if kind in rates.steps:
        return StepEstimate(kind, label, rates.steps[kind], "measured")
    quick = kind in QUICK
    return StepEstimate(kind, label, 0.0 if quick else None, "built-in" if quick else "unknown")


def _task(kind: StepKind, label: str, task: Task, facts: SiteFacts, rates: Rates) -> StepEstimate:
    """What this site last measured for the task; else, for a reindex, an index build on its
    table at the calibration's rate; a command's time is unknown until measured."""
    if task.name in rates.tasks:
        return StepEstimate(kind, label, rates.tasks[task.name], "measured", task=task)
    if not task.reindex:
        return StepEstimate(kind, label, None, "unknown", task=task)
    table = task.target if task.kind is TaskKind.REINDEX_TABLE else None
    table = table or facts.index_tables.get(task.target)
    concurrently = OpKind.INDEX_CONCURRENTLY if facts.postgres else OpKind.INDEX
    lock = SHARE_UPDATE_EXCLUSIVE if facts.postgres else None
    found = _operation(Operation(concurrently, table, lock, "reindex"), facts.sizes, rates)
    sizes = facts.sizes.get(table or "")
    count = sizes.indexes if sizes and task.kind is TaskKind.REINDEX_TABLE else 1
    seconds = None if found.seconds is None else found.seconds * count
    basis = "calibration" if seconds is not None else "unknown"
    return StepEstimate(kind, label, seconds, basis, task=task)


def _basis(measured: float | None) -> str:
    return "measured" if measured else "built-in"


def _change(change: Change, facts: SiteFacts, rates: Rates) -> ChangeEstimate:
    found = tuple(
        _operation(op if facts.postgres else replace(op, lock=None), facts.sizes, rates)
        for statement in sql_of(change)
        for op in operations(statement.text)
    )
    if change.label in rates.changes:
        return ChangeEstimate(change, rates.changes[change.label], "measured", found)
    if opaque_sql(change) or change.batches or any(o.seconds is None for o in found):
        return ChangeEstimate(change, None, "unknown", found)
    return ChangeEstimate(change, sum(o.seconds or 0.0 for o in found), "calibration", found)


def _operation(op: Operation, sizes: dict[str, TableSize], rates: Rates) -> OperationEstimate:
    if op.kind == OpKind.UNKNOWN:
        return OperationEstimate(op, None, None)
    size = sizes.get(op.table) if op.table else None
    if op.kind == OpKind.INSTANT or size is None:
        return OperationEstimate(op, size, 0.0)
    kind = OpKind.INDEX if op.kind == OpKind.INDEX_CONCURRENTLY else op.kind
    cost = rates.costs.get(str(kind))
    if cost is None:
        return OperationEstimate(op, size, None)
    seconds = cost.seconds(size.rows, size.bytes, size.indexes)
    if op.kind == OpKind.INDEX_CONCURRENTLY:
        seconds *= CONCURRENT_PASSES
    return OperationEstimate(op, size, seconds)


def _objects_to_rewrite(catalog: Catalog, facts: SiteFacts, hop: PlanStep) -> int:
    source, target = hop.source, hop.release.version
    types = {m.type for m in catalog.object_migrations if source < m.since <= target}
    rewritten = sum(n for t, n in facts.objects_by_type.items() if t in types)
    # the objects naming a plug-in the hop moves are written again, in the same step
    return rewritten + facts.plugin_objects.get(str(target), 0)


def _flag(step: StepEstimate, limits: Limits) -> None:
    if step.seconds is None:
        return
    if (
        limits.probe is not None
        and step.kind in (StepKind.SCHEMA, StepKind.OBJECTS)
        and step.seconds > limits.probe
    ):
        step.flags.append(
            f"about {_say(step.seconds)}: a product that migrates on start would outlive its "
            f"{_say(limits.probe)} startup probe"
        )
    for change in step.changes:
        _flag_change(step, change, limits)


def _flag_change(step: StepEstimate, change: ChangeEstimate, limits: Limits) -> None:
    if change.seconds is None:
        return
    if (
        limits.transaction is not None
        and change.change.transactional
        and change.seconds > limits.transaction
    ):
        step.flags.append(
            f"{change.change.label} runs in one transaction for about {_say(change.seconds)}, "
            f"beyond the {_say(limits.transaction)} transaction limit"
        )
    for op in change.operations:
        if (
            limits.lock is not None
            and op.operation.blocks_writes
            and op.seconds is not None
            and op.seconds > limits.lock
        ):
            rows = f"{op.size.rows:,}-row " if op.size else ""
            step.flags.append(
                f"{change.change.label} holds {op.operation.lock} on the {rows}table "
                f"{op.operation.table} for about {_say(op.seconds)} ({op.operation.what}), "
                f"beyond the {_say(limits.lock)} lock limit"
            )


def _say(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def say_duration(seconds: float | None) -> str:
    """``seconds`` for a person to read, or ``unknown``."""
    return "unknown" if seconds is None else _say(seconds)


def parse_duration(text_value: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h`` → seconds; refused with an example otherwise."""
    value = text_value.strip().lower()
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
    for unit in sorted(units, key=len, reverse=True):
        if value.endswith(unit):
            number, factor = value[: -len(unit)], units[unit]
            break
    else:
        number, factor = value, 1.0
    try:
        seconds = float(number) * factor
    except ValueError:
        raise ValueError(f"{text_value!r} is not a duration (e.g. 90s, 15m, 2h)") from None
    if seconds <= 0:
        raise ValueError(f"{text_value!r}: a limit must be more than zero")
    return seconds
