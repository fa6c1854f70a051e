"""The plug-in snapshots agents keep on their hosts, and the plug-in rollbacks asked of them:
the one owner of ``stairway_agent_plugins`` and ``stairway_plugin_requests``.

An agent tells the server of each snapshot it took before an upgrade (``recorded``); a
``plugin rollback`` on the site asks each agent holding a snapshot of the version it goes back
to to put it back (``ask``): a request is ``pending`` until the replica holding the agent's
connection sends it (``sent``; back to ``pending`` when that connection goes, so that it is
sent again when the agent is back), then ``restored`` or ``failed`` as the agent answers.
Every function runs in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from stairway import audit
from stairway.fleet.messages import PluginRestored, PluginRollback, PluginSnapshotted
from stairway.fleet.tables import agent_plugins_table, plugin_requests_table
from stairway.fleet.tokens import now

PENDING, SENT, RESTORED, FAILED = "pending", "sent", "restored", "failed"


@dataclass(frozen=True)
class HostSnapshot:
    """A snapshot of a plug-in kept on an agent's host."""

    agent_id: str
    plugin: str
    snapshot: str
    version: str
    files: int

    def describe(self) -> str:
        """``relay-1: 1.2.0-20260101T120000000000Z``."""
        return f"{self.agent_id}: {self.snapshot}"


@dataclass(frozen=True)
class HostRequest:
    """A plug-in rollback asked of one agent, and how far it got."""

    id: int
    agent_id: str
    plugin: str
    version: str
    state: str
    snapshot: str | None
    message: str

    def describe(self) -> str:
        """One host's line of a ``plugin rollback`` report."""
        if self.state == RESTORED:
            return f"{self.agent_id}: put back from snapshot {self.snapshot}"
        if self.state == FAILED:
            return f"{self.agent_id}: not put back: {self.message}"
        return (
            f"{self.agent_id}: not answered yet; it is put back when the agent is connected "
            "(`stairway plugin list` shows it once done)"
        )

    def as_json(self) -> dict[str, Any]:
        """The request as ``plugin rollback --json`` lists it under ``hosts``."""
        return {"agent": self.agent_id, "state": self.state, "snapshot": self.snapshot} | {
            "reason": self.message or None
        }


def recorded(conn: Connection, agent_id: str, said: PluginSnapshotted) -> None:
    """An agent's report of a snapshot it took, kept with an audit entry; the agent's older
    snapshots of that version are forgotten, as the agent prunes them."""
    table = agent_plugins_table
    older = (table.c.agent_id == agent_id) & (table.c.plugin == said.plugin)
    conn.execute(delete(table).where(older & (table.c.version == said.version)))
    row: dict[str, object] = {"agent_id": agent_id, "plugin": said.plugin}
    row |= {"snapshot": said.snapshot, "version": said.version, "files": said.files}
    row["reported"] = now().isoformat()
    conn.execute(insert(agent_plugins_table), [row])
    data = {"agent": agent_id, "plugin": said.plugin, "version": said.version}
    audit.append(conn, "agent.plugin_snapshot", data | {"snapshot": said.snapshot})


def snapshots(conn: Connection, plugin: str | None = None) -> list[HostSnapshot]:
    """The snapshots agents keep (of ``plugin``), oldest report first."""
    if not conn.dialect.has_table(conn, agent_plugins_table.name):
        return []
    table = agent_plugins_table
    query = select(table).order_by(table.c.reported, table.c.agent_id)
    if plugin is not None:
        query = query.where(table.c.plugin == plugin)
    return [
        HostSnapshot(r.agent_id, r.plugin, r.snapshot, r.version, r.files)
        for r in conn.execute(query)
    ]


def ask(conn: Connection, plugin: str, directory: str, version: str) -> list[HostRequest]:
    """A request to each agent keeping a snapshot of ``plugin`` at ``version`` to put it
    back; the requests made (none when no agent keeps one)."""
    holders = sorted({s.agent_id for s in snapshots(conn, plugin) if s.version == version})
    asked = now().isoformat()
    made = []
    for agent_id in holders:
        row = {"agent_id": agent_id, "plugin": plugin, "directory": directory, "version": version}
        row |= {"state": PENDING, "message": "", "asked": asked}
        key = conn.execute(insert(plugin_requests_table).values(row)).inserted_primary_key
        number = int(key[0]) if key else 0
        made.append(HostRequest(number, agent_id, plugin, version, PENDING, None, ""))
    if made:
        data = {"plugin": plugin, "version": version, "agents": holders}
        audit.append(conn, "agent.plugin_rollback", data)
    return made


def requests(conn: Connection, ids: list[int]) -> list[HostRequest]:
    """The requests ``ids``, as they stand now."""
    table = plugin_requests_table
    query = select(table).where(table.c.id.in_(ids)).order_by(table.c.id)
    return [_request(row._mapping) for row in conn.execute(query)]


def to_send(conn: Connection, agent_ids: list[str]) -> list[tuple[str, PluginRollback]]:
    """The pending requests of the agents connected here, marked sent, as messages to send."""
    table = plugin_requests_table
    if not agent_ids or not conn.dialect.has_table(conn, table.name):
        return []
    waiting = (table.c.state == PENDING) & table.c.agent_id.in_(agent_ids)
    rows = list(conn.execute(select(table).where(waiting).order_by(table.c.id)))
    if rows:
        sent = table.c.id.in_([row.id for row in rows]) & (table.c.state == PENDING)
        conn.execute(update(table).where(sent).values(state=SENT))
    return [(row.agent_id, _message(row._mapping)) for row in rows]


def answered(conn: Connection, agent_id: str, said: PluginRestored) -> bool:
    """The agent's answer to a request sent to it, recorded with an audit entry; False when
    it names no request of this agent's in flight."""
    table = plugin_requests_table
    mine = (table.c.id == said.request) & (table.c.agent_id == agent_id)
    row = conn.execute(select(table).where(mine & (table.c.state == SENT))).first()
    if row is None:
        return False
    state = RESTORED if said.reason is None else FAILED
    values = {"state": state, "snapshot": said.snapshot, "message": said.reason or ""}
    conn.execute(update(table).where(mine).values(values | {"answered": now().isoformat()}))
    data = {"agent": agent_id, "plugin": row.plugin, "version": row.version, "state": state}
    audit.append(
        conn, "agent.plugin_restore", data | {"snapshot": said.snapshot, "reason": said.reason}
    )
    return True


def unsent(conn: Connection, agent_id: str) -> None:
    """The agent's connection went: what was sent on it and not answered is sent again
    when it is back."""
    table = plugin_requests_table
    if conn.dialect.has_table(conn, table.name):
        going = (table.c.agent_id == agent_id) & (table.c.state == SENT)
        conn.execute(update(table).where(going).values(state=PENDING))


def _message(row: Any) -> PluginRollback:
    return PluginRollback(
        request=row["id"], plugin=row["plugin"], directory=row["directory"], version=row["version"]
    )


def _request(row: Any) -> HostRequest:
    return HostRequest(
        row["id"],
        row["agent_id"],
        row["plugin"],
        row["version"],
        row["state"],
        row["snapshot"],
        row["message"],
    )
