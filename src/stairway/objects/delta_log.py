"""The one owner of ``stairway_deltas``: which configuration deltas a site has settled.

A delta's row is written in the same transaction as the objects it changes, so after a crash a
delta is either applied and recorded, or neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, Text, select, update
from sqlalchemy import insert as sql_insert

from stairway.objects.delta import Delta

metadata = MetaData()
deltas_table = Table(
    "stairway_deltas",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("release", String(50), nullable=False),
    Column("op", String(20), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)


class Outcome(StrEnum):
    """What became of a delta on this site."""

    APPLIED = "applied"  # done (or found already in place): never looked at again
    REPORTED = "reported"  # target missing or changed by an operator: judged again next run
    SKIPPED = "skipped"  # an operator chose to keep their version: never looked at again

    @property
    def settled(self) -> bool:
        """Whether the delta is done with: applied or skipped, never judged again."""
        return self != Outcome.REPORTED


@dataclass(frozen=True)
class Entry:
    """A delta's row in ``stairway_deltas``: its release, outcome and why."""

    id: str
    release: str
    outcome: Outcome
    reason: str
    recorded_at: datetime


def ensure_table(conn: Connection) -> None:
    """Create ``stairway_deltas`` unless it exists."""
    metadata.create_all(conn, checkfirst=True)


def entries(conn: Connection) -> dict[str, Entry]:
    """Every recorded delta, by id."""
    rows = conn.execute(select(deltas_table))
    return {r.id: Entry(r.id, r.release, Outcome(r.outcome), r.reason, r.recorded_at) for r in rows}


def record(conn: Connection, delta: Delta, outcome: Outcome, reason: str) -> None:
    """Record ``delta``'s outcome, replacing an earlier one; in the transaction of its objects."""
    values = {
        "release": str(delta.release),
        "op": str(delta.op),
        "outcome": str(outcome),
        "reason": reason,
        "recorded_at": datetime.now(UTC),
    }
    done = conn.execute(update(deltas_table).where(deltas_table.c.id == delta.id).values(**values))
    if done.rowcount == 0:
        conn.execute(sql_insert(deltas_table).values(id=delta.id, **values))
