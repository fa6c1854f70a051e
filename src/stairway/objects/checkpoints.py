"""The one owner of ``stairway_rewrites``: where each bulk rewrite of the objects got to.

A checkpoint is written in the same transaction as the batch it follows, so after a kill the
rewrite resumes exactly after the last batch that committed: none done twice, none skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

metadata = MetaData()
rewrites_table = Table(
    "stairway_rewrites",
    metadata,
    Column("job", String(200), primary_key=True),
    Column("last_id", Text, nullable=True),  # JSON of the last id done: ints stay ints
    Column("scanned", Integer, nullable=False),
    Column("rewritten", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)


@dataclass(frozen=True)
class Checkpoint:
    """Where one bulk rewrite got to: the last id done and the objects read and rewritten."""

    job: str
    last_id: object
    scanned: int
    rewritten: int
    finished: bool

    @property
    def started(self) -> bool:
        """Whether any batch of the pass has committed."""
        return self.last_id is not None


def ensure_table(conn: Connection) -> None:
    """Create ``stairway_rewrites`` unless it exists."""
    metadata.create_all(conn, checkfirst=True)


def load(conn: Connection, job: str) -> Checkpoint | None:
    """The checkpoint of ``job``, or None when it never started."""
    row = conn.execute(select(rewrites_table).where(rewrites_table.c.job == job)).first()
    if row is None:
        return None
    last = None if row.last_id is None else orjson.loads(row.last_id)
    return Checkpoint(job, last, row.scanned, row.rewritten, row.finished_at is not None)


def begin(conn: Connection, job: str) -> Checkpoint:
    """A fresh pass: any earlier record of ``job`` is replaced."""
    conn.execute(delete(rewrites_table).where(rewrites_table.c.job == job))
    values = {"job": job, "last_id": None, "scanned": 0, "rewritten": 0}
    conn.execute(insert(rewrites_table).values(**values, started_at=datetime.now(UTC)))
    return Checkpoint(job, None, 0, 0, False)


def advance(conn: Connection, done: Checkpoint) -> None:
    """Record ``done`` as where ``job`` got to; in the transaction of the batch it follows."""
    conn.execute(
        update(rewrites_table)
        .where(rewrites_table.c.job == done.job)
        .values(
            last_id=orjson.dumps(done.last_id).decode(),
            scanned=done.scanned,
            rewritten=done.rewritten,
            finished_at=datetime.now(UTC) if done.finished else None,
        )
    )
