"""What the control plane records when agents speak: hello, failure, silence, disconnect.

Each function runs in one transaction and writes the audit entry that goes with the change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case

from stairway import audit
from stairway.fleet import store
from stairway.fleet.policy import State
from stairway.fleet.tables import agents_table
from stairway.fleet.tokens import now


def hello(
    conn: Connection,
    agent_id: str,
    version: str,
    protocol: int,
    replica: str,
    rolled_back: dict[str, Any] | None,
) -> str:
    """Record a hello; returns the agent's state after it."""
    row = store.agent(conn, agent_id) or {}
    state = State(row.get("state") or State.OFFLINE)
    values: dict[str, Any] = {
        "version": version,
        "protocol": protocol,
        "connected": True,
        "replica": replica,
        "last_seen": now().isoformat(),
    }
    if rolled_back:
        failed = str(rolled_back.get("to") or row.get("target"))
        reason = str(rolled_back.get("reason") or "the new build did not come up")
        values |= {"state": State.FAILED, "failed_version": failed, "message": reason}
        audit.append(
            conn,
            "agent.upgrade_failed",
            {"agent": agent_id, "from": version, "to": failed, "reason": reason},
        )
    elif state in (State.UPGRADING, State.NO_SIGNAL) and version == row.get("target"):
        values |= {"state": State.ONLINE, "message": ""}
        audit.append(
            conn,
            "agent.upgrade",
            {
                "agent": agent_id,
                "from": row.get("version"),
                "to": version,
                "artifact": f"agent-{version}.pyz",
            },
        )
    elif state in (State.OFFLINE, State.ONLINE, State.REFUSED) or (
        state == State.PENDING and version == row.get("target")
    ):
        values |= {"state": State.ONLINE, "message": ""}
    store.change(conn, agent_id, **values)
    return str(values.get("state", state))


def refused(conn: Connection, agent_id: str, version: str, protocol: int, why: str) -> None:
    store.change(
        conn,
        agent_id,
        version=version,
        protocol=protocol,
        state=State.REFUSED,
        connected=False,
        message=why,
        last_seen=now().isoformat(),
    )


def upgrade_sent(
    conn: Connection, agent_ids: list[str], target: str, actor: str, replica: str
) -> None:
    """The agents sent an upgrade, all in one update and one append."""
    if not agent_ids:
        return
    store.change_many(
        conn,
        agent_ids,
        state=State.UPGRADING,
        target=target,
        attempt_started=now().isoformat(),
        message=f"upgrade to {target} sent",
    )
    entries = [
        ("agent.upgrade_run", {"agent": a, "to": target, "replica": replica}) for a in agent_ids
    ]
    audit.append_many(conn, entries, actor=actor)


def failure(conn: Connection, agent_id: str, stage: str, version: str, reason: str) -> None:
    """An agent says it could not take the build: unreachable (pending) or refused (failed)."""
    if stage == "download":
        store.change(conn, agent_id, state=State.PENDING, message=reason)
        return
    store.change(conn, agent_id, state=State.FAILED, failed_version=version, message=reason)
    audit.append(
        conn,
        "agent.upgrade_failed",
        {"agent": agent_id, "to": version, "stage": stage, "reason": reason},
    )


def silent(conn: Connection, agent_id: str, target: str) -> None:
    message = f"no hello on {target} before the deadline"
    store.change(conn, agent_id, state=State.NO_SIGNAL, message=message)


def gone(conn: Connection, agent_id: str, seen: str | None) -> None:
    """Disconnected: an online agent goes offline, any other state (upgrading...) stays."""
    state = agents_table.c.state
    offline = case((state == State.ONLINE.value, State.OFFLINE.value), else_=state)
    last_seen = seen or now().isoformat()
    store.change(conn, agent_id, connected=False, last_seen=last_seen, state=offline)
