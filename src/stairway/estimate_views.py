"""Estimates as a Rich table and as JSON."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from stairway.estimate.predict import Estimate, say_duration
from stairway.tasks import Task
from stairway.views import whole_column


def estimate_table(found: Estimate) -> Table:
    """The estimate as a table: each step with its lock, table, predicted time, basis and flags,
    and the step's changes indented under it.
    """
    table = Table(title=f"Estimate (rates: {found.rates_from})")
    labels = [c.change.label for s in found.steps for c in s.changes]
    labels += [task_words(s.task) for s in found.steps if s.task]
    whole_column(table, "step", [f"  {label}" for label in labels])  # change labels stay whole
    for column in ("lock", "table"):
        table.add_column(column, overflow="fold")
    for column in ("predicted", "basis", "flags"):
        table.add_column(column, overflow="fold")
    for step in found.steps:
        table.add_row(
            step.label,
            step.lock or "",
            step.table or "",
            say_duration(step.seconds),
            step.basis,
            "\n".join(step.flags),
        )
        if step.task is not None:
            table.add_row(f"  {task_words(step.task)}", "", "", "", "", "")
        for change in step.changes:
            table.add_row(
                f"  {change.change.label}",
                change.lock or "",
                change.table or "",
                say_duration(change.seconds),
                change.basis,
                "",
            )
    return table


def task_words(task: Task) -> str:
    """A task's kind and when it runs, under its step: ``reindex ix_email, serving``."""
    return f"{task.what()}, {'serving' if task.serving else 'offline'}"


def estimate_summary(found: Estimate) -> str:
    """The total, or, when a step has no basis, that the total is unknown and what is known."""
    if not found.unknown:
        return f"predicted: {_s(found.known)} in all, {_s(found.known_downtime)} of downtime"
    names = ", ".join(s.label for s in found.unknown)
    return (
        f"predicted: total unknown: {len(found.unknown)} step(s) have no basis for a prediction "
        f"({names}); the others take {_s(found.known)} ({_s(found.known_downtime)} of "
        "downtime), a partial sum and not the upgrade's time; a rehearsal or an upgrade of "
        "this site measures them for the next estimate"
    )


def _s(seconds: float) -> str:
    return f"{seconds:.1f} s"


def estimate_json(found: Estimate) -> dict[str, Any]:
    """The estimate as ``--json`` prints it: totals, the steps with no basis, then every step with
    its changes and their operations; a duration is null where it is not known.
    """
    return {
        "rates_from": found.rates_from,
        "total_s": found.total,  # null: a step has no basis, see unknown_steps
        "downtime_s": found.downtime,
        "known_s": found.known,
        "known_downtime_s": found.known_downtime,
        "unknown_steps": [s.label for s in found.unknown],
        "flags": found.flags,
        "steps": [
            {
                "kind": s.kind,
                "step": s.label,
                "seconds": s.seconds,
                "basis": s.basis,
                "lock": s.lock,
                "table": s.table,
                "downtime": s.downtime,
                "flags": s.flags,
                "task": _task_json(s.task) if s.task else None,
                "changes": [
                    {
                        "change": c.change.label,
                        "seconds": c.seconds,
                        "basis": c.basis,
                        "operations": [
                            {
                                "kind": str(o.operation.kind),
                                "table": o.operation.table,
                                "lock": o.operation.lock,
                                "what": o.operation.what,
                                "rows": o.size.rows if o.size else None,
                                "bytes": o.size.bytes if o.size else None,
                                "seconds": o.seconds,
                            }
                            for o in c.operations
                        ],
                    }
                    for c in s.changes
                ],
            }
            for s in found.steps
        ],
    }


def _task_json(task: Task) -> dict[str, Any]:
    return {
        "name": task.name,
        "release": task.release,
        "kind": str(task.kind),
        "serving": task.serving,
        "runs": task.what(),
    }
