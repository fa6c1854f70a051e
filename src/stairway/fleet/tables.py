"""The fleet's tables in the site database: tokens, agents, the upgrade policy, the web UI's
sessions, the revocations every replica reads to close the connections of a revoked
credential, the plug-in snapshots agents keep on their hosts, and the plug-in rollbacks asked
of them."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Connection, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

tokens_table = Table(
    "stairway_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("hash", String(64), nullable=False),  # SHA-256 of the secret; never the secret
    Column("label", String(200), nullable=False),
    Column("agent_id", String(200)),
    Column("created", String(40), nullable=False),
    Column("expires", String(40)),
    Column("uses_left", Integer),
    Column("revoked", Boolean, nullable=False),
)

agents_table = Table(
    "stairway_agents",
    metadata,
    Column("agent_id", String(200), primary_key=True),
    Column("version", String(64)),
    Column("protocol", Integer),
    Column("state", String(32), nullable=False),
    Column("connected", Boolean, nullable=False),
    Column("replica", String(64)),  # the server replica holding its connection
    Column("group", String(64)),  # "canary" agents go first
    Column("last_seen", String(40)),
    Column("target", String(64)),  # the version it is being upgraded to
    Column("attempt_started", String(40)),
    Column("failed_version", String(64)),  # pinned: not sent again
    Column("message", Text, nullable=False, default=""),
    Column("enrolled", String(40), nullable=False),
)

policy_table = Table(
    "stairway_fleet_policy",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("percent", Integer, nullable=False),
    Column("interval", Float, nullable=False),
    Column("canary", Boolean, nullable=False),
    Column("max_failures", Integer, nullable=False),  # percent of a wave that may fail
    Column("rollout_target", String(64)),
    Column("rollout_size", Integer),  # agents in the rollout: drifted or tried on its target
    Column("halted", Text),  # why the rollout stopped, or NULL
    Column("last_tick", String(40)),
)

revocations_table = Table(
    "stairway_revocations",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # replicas read past theirs
    Column("token_id", String(32), nullable=False),
    Column("agent_id", String(200)),  # whose credential it was, if an agent's
    Column("at", String(40), nullable=False),
)

ui_sessions_table = Table(
    "stairway_ui_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # SHA-256 of the session id; never the id
    Column("token_id", String(32), nullable=False),  # the admin token it was opened with
    Column("created", String(40), nullable=False),
    Column("last_seen", String(40), nullable=False),
    Column("expires", String(40), nullable=False),  # the absolute end, however busy it is
    Column("csrf", String(64), nullable=False),  # the forms' token: useless without the id
)


agent_plugins_table = Table(
    "stairway_agent_plugins",
    metadata,
    Column("agent_id", String(200), primary_key=True),
    Column("plugin", String(200), primary_key=True),
    Column("snapshot", String(200), primary_key=True),  # its id on the agent's host
    Column("version", String(64), nullable=False),  # the plug-in's version it holds
    Column("files", Integer, nullable=False),
    Column("reported", String(40), nullable=False),
)

plugin_requests_table = Table(
    "stairway_plugin_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent_id", String(200), nullable=False),
    Column("plugin", String(200), nullable=False),
    Column("directory", Text, nullable=False),
    Column("version", String(64), nullable=False),  # the version to put back
    Column("state", String(16), nullable=False),  # pending, sent, restored, failed
    Column("snapshot", String(200)),  # the one the agent put back
    Column("message", Text, nullable=False, default=""),  # why it failed
    Column("asked", String(40), nullable=False),
    Column("answered", String(40)),
)


def ensure_tables(conn: Connection) -> None:
    """Create the fleet's tables that do not exist yet."""
    metadata.create_all(conn, checkfirst=True)
