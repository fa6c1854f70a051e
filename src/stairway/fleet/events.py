"""What the control plane records when agents speak: hello, failure, silence, disconnect.

Each function runs in one transaction and writes the audit entry that goes with the change.
Every state change goes through the transition table of ``stairway.fleet.states``: a change it
does not allow raises ``TransitionRefused`` (one agent) or leaves that agent out (many at once),
and nothing is written for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case

from stairway import audit
from stairway.errors import TransitionRefused
from stairway.fleet import states, store
from stairway.fleet.messages import Hello
from stairway.fleet.skew import Skew, skew
from stairway.fleet.states import Event, State
from stairway.fleet.tables import agents_table
from stairway.fleet.tokens import now
from stairway.version_grammars import GrammarName

log = logging.getLogger(__name__)
TRYING = (State.UPGRADING, State.NO_SIGNAL)  # states whose hello on the target ends an upgrade


@dataclass(frozen=True)
class Moved:
    """One agent's change of state, and what it means for the upgrade it was in."""

    event: Event
    before: State
    after: State

    @property
    def upgraded(self) -> bool:
        """Whether this move ended an upgrade: a hello on the target from an agent trying it."""
        return self.event == Event.ARRIVED and self.before in TRYING

    @property
    def rolled_back(self) -> bool:
        """Whether the agent came back on its previous build after a failed upgrade."""
        return self.event == Event.ROLLED_BACK


def hello(
    conn: Connection,
    said: Hello,
    replica: str,
    server: str | None = None,
    held: str | None = None,
    grammar: GrammarName = "pep440",
) -> Moved:
    """Record a hello: online, back from an upgrade, back on the previous build, held outside
    the window (``held``: why), or ahead of the server's release ``server`` (flagged, with a
    message saying so), releases read in the catalog's ``grammar``."""
    row = _locked(conn, said.agent_id, Event.HELLO)
    values: dict[str, Any] = {
        "version": said.version,
        "protocol": said.protocol,
        "connected": True,
        "replica": replica,
        "last_seen": now().isoformat(),
    }
    if said.rolled_back:
        event = Event.ROLLED_BACK
        values |= _rolled_back(conn, said, row)
    elif said.version == row.get("target"):
        event = Event.ARRIVED
    elif held is not None:
        event = Event.HELD
        values["message"] = f"held: {held}"
    elif server is not None and skew(said.version, server, grammar) == Skew.AHEAD:
        event = Event.AHEAD
        values["message"] = f"runs {said.version}, newer than the server's {server}"
    else:
        event = Event.HELLO
    moved = _move(conn, row, event, values)
    if moved.upgraded:
        data = {"agent": said.agent_id, "from": row.get("version"), "to": said.version}
        audit.append(conn, "agent.upgrade", data | {"artifact": f"agent-{said.version}.pyz"})
    return moved


def _rolled_back(conn: Connection, said: Hello, row: dict[str, Any]) -> dict[str, Any]:
    assert said.rolled_back is not None
    failed = str(said.rolled_back.to or row.get("target"))
    reason = str(said.rolled_back.reason or "the new build did not come up")
    data = {"agent": said.agent_id, "from": said.version, "to": failed, "reason": reason}
    audit.append(conn, "agent.upgrade_failed", data)
    return {"failed_version": failed, "message": reason}


def refused(
    conn: Connection,
    agent_id: str,
    version: str,
    protocol: int,
    why: str,
    event: Event = Event.PROTOCOL_REFUSED,
) -> None:
    """Record an agent refused for its protocol or its release (``event``): disconnected, with
    its version and ``why``."""
    row = _locked(conn, agent_id, event)
    values = {"version": version, "protocol": protocol, "connected": False, "message": why}
    _move(conn, row, event, values | {"last_seen": now().isoformat()})


def upgrade_sent(
    conn: Connection, agent_ids: list[str], target: str, actor: str, replica: str
) -> list[str]:
    """The agents sent an upgrade, all in one update and one append; returns those whose state
    allows it (the others are left as they are and must not be sent it)."""
    if not agent_ids:
        return []
    moved = store.move_many(
        conn,
        agent_ids,
        states.sources(Event.UPGRADE_SENT),
        state=State.UPGRADING,
        target=target,
        attempt_started=now().isoformat(),
        message=f"upgrade to {target} sent",
    )
    _left_out(agent_ids, moved, Event.UPGRADE_SENT)
    entries = [("agent.upgrade_run", {"agent": a, "to": target, "replica": replica}) for a in moved]
    audit.append_many(conn, entries, actor=actor)
    return moved


def failure(conn: Connection, agent_id: str, stage: str, version: str, reason: str) -> Moved:
    """An agent says it could not take the build: unreachable (pending) or refused (failed)."""
    if stage == "download":
        row = _locked(conn, agent_id, Event.UNREACHABLE)
        return _move(conn, row, Event.UNREACHABLE, {"message": reason})
    row = _locked(conn, agent_id, Event.BUILD_REFUSED)
    moved = _move(conn, row, Event.BUILD_REFUSED, {"failed_version": version, "message": reason})
    data = {"agent": agent_id, "to": version, "stage": stage, "reason": reason}
    audit.append(conn, "agent.upgrade_failed", data)
    return moved


def silent(conn: Connection, agent_ids: list[str], target: str) -> list[str]:
    """Upgrades past their deadline with no hello on the target: ``no signal``."""
    message = f"no hello on {target} before the deadline"
    sources = states.sources(Event.SILENT)
    moved = store.move_many(conn, agent_ids, sources, state=State.NO_SIGNAL, message=message)
    _left_out(agent_ids, moved, Event.SILENT)
    return moved


def gone(conn: Connection, agent_id: str, seen: str | None) -> None:
    """Disconnected: each state becomes what the table says a disconnect leads to."""
    state = agents_table.c.state
    leads = states.TRANSITIONS[Event.GONE].items()
    after = case(*[(state == a.value, b.value) for a, b in leads if a != b], else_=state)
    last_seen = seen or now().isoformat()
    store.change(conn, agent_id, connected=False, last_seen=last_seen, state=after)


def _locked(conn: Connection, agent_id: str, event: Event) -> dict[str, Any]:
    row = store.agent(conn, agent_id, lock=True)
    if row is None:
        raise TransitionRefused(agent_id, "not enrolled", event.value)
    return row


def _move(conn: Connection, row: dict[str, Any], event: Event, values: dict[str, Any]) -> Moved:
    agent_id, before = str(row["agent_id"]), State(row["state"])
    after = states.after(agent_id, before, event)
    if after == State.ONLINE:
        values = values | {"message": ""}
    store.change(conn, agent_id, state=after.value, **values)
    return Moved(event, before, after)


def _left_out(asked: list[str], moved: list[str], event: Event) -> None:
    if len(moved) < len(asked):
        skipped = sorted(set(asked) - set(moved))
        log.warning("%s: not applied to %s: their state does not allow it", event, skipped)
