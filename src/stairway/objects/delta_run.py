"""Applying configuration deltas to the stored objects, after schema and object migrations.

Each delta runs in its own transaction with its log row: applied whole, or reported whole and
left alone. Deltas already settled (applied, or skipped by an operator) are not looked at again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, inspect

from stairway.objects import delta_log
from stairway.objects.delta import Delta, DeltaOp, Judgement, Verdict, judge, overall
from stairway.objects.delta_log import Outcome
from stairway.objects.store import ObjectStore, StoredObject


@dataclass(frozen=True)
class DeltaResult:
    """What one run judged of one delta, and how many objects it wrote."""

    delta: Delta
    verdict: Verdict | None  # None: settled by an earlier run
    reason: str
    objects: int = 0  # objects it wrote (or would write, in a dry run)

    def describe(self) -> str:
        """The delta's id, its verdict and the reason, on one line."""
        state = "settled earlier" if self.verdict is None else str(self.verdict)
        why = f": {self.reason}" if self.reason else ""
        return f"{self.delta.id} [{state}]{why}"


@dataclass(frozen=True)
class DeltaReport:
    """Every delta's result from one run; ``written`` is false for a dry run."""

    results: tuple[DeltaResult, ...]
    written: bool

    def having(self, verdict: Verdict | None) -> tuple[DeltaResult, ...]:
        """The results with ``verdict``; None gives those settled by an earlier run."""
        return tuple(r for r in self.results if r.verdict == verdict)

    @property
    def reported(self) -> tuple[DeltaResult, ...]:
        """The deltas left for the operator: target missing or changed by hand."""
        return self.having(Verdict.REPORT)


def apply_deltas(
    store: ObjectStore, deltas: Sequence[Delta], lifecycle: tuple[str, ...], dry_run: bool = False
) -> DeltaReport:
    """Apply each delta not yet settled; with ``dry_run`` judge them and write nothing."""
    with store.engine.begin() as conn:
        if not dry_run:
            delta_log.ensure_table(conn)
        elif not inspect(conn).has_table(delta_log.deltas_table.name):
            return _judged(store, deltas, lifecycle, set())  # a dry run creates nothing
        settled = {i for i, e in delta_log.entries(conn).items() if e.outcome.settled}
    return _judged(store, deltas, lifecycle, settled, dry_run)


def _judged(
    store: ObjectStore,
    deltas: Sequence[Delta],
    lifecycle: tuple[str, ...],
    settled: set[str],
    dry_run: bool = True,
) -> DeltaReport:
    results = []
    for delta in deltas:
        if delta.id in settled:
            results.append(DeltaResult(delta, None, ""))
            continue
        with store.engine.connect() as conn:
            results.append(_run(store, conn, delta, lifecycle, dry_run))
    return DeltaReport(tuple(results), not dry_run)


def skip_delta(store: ObjectStore, delta: Delta, reason: str) -> None:
    """Record that an operator keeps their version of what ``delta`` would change."""
    with store.engine.begin() as conn:
        delta_log.ensure_table(conn)
        delta_log.record(conn, delta, Outcome.SKIPPED, reason)


def _run(
    store: ObjectStore, conn: Connection, delta: Delta, lifecycle: tuple[str, ...], dry_run: bool
) -> DeltaResult:
    with conn.begin() as transaction:
        found = _targets(store, conn, delta)
        judgements = judge(delta, [f.document for f in found], lifecycle)
        verdict = overall(judgements)
        result = DeltaResult(delta, verdict, _reason(judgements, verdict), _count(judgements))
        if dry_run:
            transaction.rollback()
            return result
        if verdict == Verdict.APPLY:
            _write(store, conn, delta, found, judgements)
        outcome = Outcome.REPORTED if verdict == Verdict.REPORT else Outcome.APPLIED
        delta_log.record(conn, delta, outcome, result.reason)
    return result


def _targets(store: ObjectStore, conn: Connection, delta: Delta) -> list[StoredObject]:
    if delta.target is not None:
        return list(store.find(conn, delta.type, delta.target))
    return [o for o in store.find(conn, delta.type) if delta.selects(o.document)]


def _write(
    store: ObjectStore,
    conn: Connection,
    delta: Delta,
    found: Sequence[StoredObject],
    judgements: Sequence[Judgement],
) -> None:
    if delta.op == DeltaOp.ADD:
        document = judgements[0].document
        assert document is not None  # an APPLY verdict carries it
        store.insert(conn, delta.target, delta.type, document, shaped_by=delta.release)
        return
    changed = [
        dataclasses.replace(o, outcome=o.outcome._replace(document=j.document))
        for o, j in zip(found, judgements, strict=True)
        if j.verdict == Verdict.APPLY and j.document is not None
    ]
    store.write(conn, changed)


def _reason(judgements: Sequence[Judgement], verdict: Verdict) -> str:
    reasons = [j.reason for j in judgements if j.verdict == verdict and j.reason]
    return "; ".join(dict.fromkeys(reasons))


def _count(judgements: Sequence[Judgement]) -> int:
    return sum(1 for j in judgements if j.verdict == Verdict.APPLY)
