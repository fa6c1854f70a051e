"""Reading and writing the fleet's rows: agents, their states, and the one policy row."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from packaging.version import InvalidVersion
from sqlalchemy import Connection, bindparam, case, func, insert, select, update

from stairway.fleet.policy import AgentRow, Mode, Policy
from stairway.fleet.states import State
from stairway.fleet.tables import agents_table, policy_table
from stairway.fleet.tokens import now
from stairway.version_grammars import GrammarName
from stairway.versions import Version

POLICY_ID = 1
STATES = {state.value: state for state in State}


TICK_LOCK = 0x5374_6169_7277_6180  # one evaluation at a time, Run now on any replica included


def one_tick_at_a_time(conn: Connection) -> None:
    """Serialise evaluations until the transaction ends (SQLite: its write lock does that)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({TICK_LOCK})")


def read_policy(conn: Connection) -> Policy:
    """The upgrade policy; the default (manual) before one is written."""
    row = conn.execute(select(policy_table).where(policy_table.c.id == POLICY_ID)).first()
    if row is None:
        return Policy()
    values = {k: v for k, v in row._asdict().items() if k not in ("id", "last_tick")}
    return Policy(**values | {"mode": Mode(row.mode)})


def write_policy(conn: Connection, policy: Policy) -> None:
    """Write ``policy`` as the one policy row, with now as its ``last_tick``."""
    values = asdict(policy) | {"mode": policy.mode.value, "last_tick": now().isoformat()}
    done = conn.execute(update(policy_table).where(policy_table.c.id == POLICY_ID).values(**values))
    if not done.rowcount:
        conn.execute(insert(policy_table).values(id=POLICY_ID, **values))


def agent(conn: Connection, agent_id: str, lock: bool = False) -> dict[str, Any] | None:
    """The agent's row; with ``lock``, held until the transaction ends (PostgreSQL), so that a
    state read here is still the state when the change is written."""
    query = select(agents_table).where(agents_table.c.agent_id == agent_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return None if row is None else row._asdict()


def all_agents(conn: Connection) -> list[dict[str, Any]]:
    """Every enrolled agent's row, by agent id."""
    rows = conn.execute(select(agents_table).order_by(agents_table.c.agent_id))
    return [row._asdict() for row in rows]


def enroll(conn: Connection, agent_id: str, group: str | None) -> bool:
    """Add ``agent_id`` as an offline agent in ``group``; False when it is enrolled already.

    Two enrollments of one new id racing on PostgreSQL: the second's insert fails on the
    primary key once the first commits (``IntegrityError``), which its caller also refuses.
    """
    if agent(conn, agent_id) is not None:
        return False
    conn.execute(
        insert(agents_table).values(
            agent_id=agent_id,
            state=State.OFFLINE.value,
            connected=False,
            group=group,
            message="",
            enrolled=now().isoformat(),
        )
    )
    return True


def change(conn: Connection, agent_id: str, **values: Any) -> None:
    """Columns of one agent's row. Its state changes only through ``stairway.fleet.events``,
    which checks each change against the transition table."""
    conn.execute(update(agents_table).where(agents_table.c.agent_id == agent_id).values(**values))


def move_many(
    conn: Connection, agent_ids: list[str], sources: list[State], **values: Any
) -> list[str]:
    """Update the agents whose state is one of ``sources``, in one statement per thousand
    (checked in the same statement, so a change made meanwhile is not overwritten); returns
    the ids updated, in the order asked (``RETURNING`` gives them in whatever order the
    database found them, and the audit log records a wave in the order the evaluator chose)."""
    c = agents_table.c
    allowed = c.state.in_([state.value for state in sources])
    moved: list[str] = []
    for start in range(0, len(agent_ids), 1000):
        chunk = agent_ids[start : start + 1000]
        query = update(agents_table).where(c.agent_id.in_(chunk), allowed).values(**values)
        updated = set(conn.execute(query.returning(c.agent_id)).scalars())
        moved += [agent_id for agent_id in chunk if agent_id in updated]
    return moved


def seen_many(conn: Connection, seen: dict[str, str]) -> None:
    """Last heartbeats of many agents in one executemany (psycopg pipelines it: one round
    trip for thousands of agents, not one each)."""
    if not seen:
        return
    c = agents_table.c
    query = update(agents_table).where(c.agent_id == bindparam("b_agent"))
    rows = [{"b_agent": agent_id, "last_seen": when} for agent_id, when in seen.items()]
    conn.execute(query.values(last_seen=bindparam("last_seen")), rows)


def rows_for_evaluator(conn: Connection) -> list[AgentRow]:
    """The columns the evaluator reads, unpacked straight into its rows: every tick reads every
    agent, so this is kept to a few microseconds a row."""
    c = agents_table.c
    columns = (c.agent_id, c.version, c.state, c.connected, c.group, c.target)
    query = select(*columns, c.attempt_started, c.failed_version, c.replica)
    return [
        AgentRow(agent, version, STATES[state], bool(on), group, target, _when(at), failed, replica)
        for agent, version, state, on, group, target, at, failed, replica in conn.execute(
            query.order_by(c.agent_id)
        )
    ]


def rows_from(rows: list[dict[str, Any]]) -> list[AgentRow]:
    """The agent rows as the evaluator takes them."""
    return [
        AgentRow(
            agent_id=row["agent_id"],
            version=row["version"],
            state=State(row["state"]),
            connected=bool(row["connected"]),
            group=row["group"],
            target=row["target"],
            attempt_started=_when(row["attempt_started"]),
            failed_version=row["failed_version"],
        )
        for row in rows
    ]


def resume_after_halt(conn: Connection) -> None:
    """The operator changed the policy: failures so far no longer count against the rollout
    (the versions that failed stay pinned on their agents)."""
    c = agents_table.c
    failed = c.state.in_([State.FAILED.value, State.NO_SIGNAL.value])
    conn.execute(update(agents_table).where(failed).values(target=None))


def disconnect_replica(conn: Connection, replica: str) -> None:
    """A replica that stops (or starts again) holds no connection any more."""
    c = agents_table.c
    conn.execute(update(agents_table).where(c.replica == replica).values(connected=False))


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def versions_of(conn: Connection, agent_ids: list[str]) -> list[tuple[str, str | None]]:
    """Each of ``agent_ids`` with the release it runs."""
    table = agents_table
    query = select(table.c.agent_id, table.c.version).where(table.c.agent_id.in_(agent_ids))
    return [(str(agent_id), version) for agent_id, version in conn.execute(query)]


def connected_versions(conn: Connection) -> list[tuple[str, str | None]]:
    """Each connected agent and the release it last said it runs; none before the fleet's
    tables exist (a site that never served a fleet)."""
    if not conn.dialect.has_table(conn, agents_table.name):
        return []
    query = select(agents_table.c.agent_id, agents_table.c.version).where(
        agents_table.c.connected.is_(True)
    )
    return [(r.agent_id, r.version) for r in conn.execute(query)]


def held(conn: Connection) -> list[tuple[str, str, str]]:
    """Each agent held outside the release's window: its id, release and why; none before the
    fleet's tables exist."""
    if not conn.dialect.has_table(conn, agents_table.name):
        return []
    c = agents_table.c
    query = select(c.agent_id, c.version, c.message).where(c.state == State.HELD.value)
    return [(r.agent_id, r.version or "", r.message or "") for r in conn.execute(query)]


def census(conn: Connection) -> list[tuple[str, str, int]]:
    """How many agents are in each state on each version (no version yet: "")."""
    c = agents_table.c
    query = select(c.state, c.version, func.count()).group_by(c.state, c.version)
    return sorted((str(state), version or "", int(n)) for state, version, n in conn.execute(query))


def by_version(
    conn: Connection, grammar: GrammarName = "pep440"
) -> list[tuple[str, int, int]] | None:
    """How many agents run each release, and how many of them are connected, oldest release
    first in the catalog's ``grammar`` (none heard from yet, or not a version of it: ""
    first); None before the fleet's tables exist."""
    if not conn.dialect.has_table(conn, agents_table.name):
        return None
    c = agents_table.c
    connected = func.sum(case((c.connected.is_(True), 1), else_=0))
    query = select(c.version, func.count(), connected).group_by(c.version)
    found = [(version or "", int(n), int(on or 0)) for version, n, on in conn.execute(query)]
    return sorted(found, key=lambda row: _order(row[0], grammar))


def _order(version: str, grammar: GrammarName) -> tuple[int, Version | str]:
    try:
        return (1, Version(version, grammar))
    except InvalidVersion:
        return (0, version)  # no version, or one that is not a version: first
