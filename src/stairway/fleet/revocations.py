"""Revocations reach every live connection: each replica closes what a revoked credential opened.

Revoking writes a row to ``stairway_revocations`` in the same transaction as the revocation
itself (from the CLI or any replica). Every replica reads the rows past the last one it saw
twice a second and closes the sessions they name; on PostgreSQL the revocation also sends a
``NOTIFY`` on the replicas' channel when it commits, which wakes the readers at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import Connection, func, insert, select

from stairway.fleet.tables import revocations_table

CHANNEL = "stairway_fleet"  # the replicas' channel (``stairway.fleet.replicas``)
WAKE = orjson.dumps({"revoked": True}).decode()


@dataclass(frozen=True)
class Revocation:
    """One revoked token, and the agent it was the credential of, if any."""

    seq: int
    token_id: str
    agent_id: str | None


def record(conn: Connection, token_ids: list[str], agent_id: str | None) -> None:
    """Note revoked tokens for the replicas to act on; call inside the revoking transaction."""
    at = datetime.now(UTC).isoformat()
    rows = [{"token_id": token_id, "agent_id": agent_id, "at": at} for token_id in token_ids]
    conn.execute(insert(revocations_table), rows)
    if conn.dialect.name == "postgresql":  # sent when this transaction commits, not before
        conn.execute(select(func.pg_notify(CHANNEL, WAKE)))


def last(conn: Connection) -> int:
    """The newest revocation's number: a replica starting up acts only on later ones."""
    newest = select(func.coalesce(func.max(revocations_table.c.seq), 0))
    return int(conn.execute(newest).scalar_one())


def since(conn: Connection, seq: int) -> list[Revocation]:
    """The revocations after ``seq``, oldest first."""
    c = revocations_table.c
    rows = conn.execute(select(c.seq, c.token_id, c.agent_id).where(c.seq > seq).order_by(c.seq))
    return [Revocation(int(r.seq), str(r.token_id), r.agent_id) for r in rows]
