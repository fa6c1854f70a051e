"""The control plane's state: its configuration, its database, the agents connected to this
replica, and sending them upgrades. The endpoint, the admin API, the evaluator and the web UI
all act through one ``Fleet``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import anyio
from fastapi import WebSocket
from sqlalchemy import Connection, Engine

from stairway import audit
from stairway.audit_witness import Anchor
from stairway.database import serialised
from stairway.fleet import builds, events, notices, plugin_hosts, revocations, skew, states, store
from stairway.fleet.inputs import PolicyIn
from stairway.fleet.messages import Close, PluginDirectory, WireMessage
from stairway.fleet.metrics import Metrics
from stairway.fleet.notices import Notice
from stairway.fleet.policy import Policy, drifted
from stairway.fleet.refusals import Refusals
from stairway.fleet.replicas import Replicas, conninfo
from stairway.fleet.requests import logger
from stairway.fleet.revocations import Revocation
from stairway.fleet.signin import Limits
from stairway.fleet.skew import Verdict
from stairway.fleet.states import Event, State
from stairway.version_grammars import GrammarName
from stairway.versions import AgentWindow

T = TypeVar("T")
REVOCATION_POLL = 0.5  # seconds between reads of the revocations: closed within a second
REFUSALS_FLUSH = 5.0  # seconds between writes of the minutes of refusals that are over
REVOKED_MEMORY = 10.0  # seconds a revocation is remembered for agents still saying hello
PLUGIN_POLL = 0.5  # seconds between reads of the plug-in rollbacks asked of agents
log = logger(__name__)


@dataclass
class FleetConfig:
    """What the control plane serves: the product, its release and the site's ``[fleet]``.

    Attributes:
        product: The product whose agents connect.
        version: The server's release: the version agents are upgraded to.
        protocol: The lowest and highest agent protocol this release accepts; None accepts
            any.
        builds: The directory of published agent builds; None when there is none.
        public_url: How agents reach this server, for the URLs of builds (with the mount
            prefix of a product that mounts the app).
        schema_level: The site database's schema level, shown on the web UI's dashboard.
        heartbeat: Seconds between an agent's heartbeats.
        deadline: Seconds an upgraded agent has to say hello on the target version.
        replica: This replica's id, random per process, by which other replicas reach the
            agents connected to it.
        ui_sessions: How long a web UI session lives idle, and at most.
        anchor: Where the site's audit log is anchored: the server signs checkpoints of it
            while it runs; None signs none.
        agents: The agent releases this release accepts; None accepts every one.
        series: The catalog's minor series, by which an agent's lag is counted.
        grammar: The catalog's version grammar, in which agents' releases are read.
        announced: What the dashboard tells the operator of newer releases, read afresh for
            each page (a release check run since the server started counts).
        plugins: The plug-ins an upgrade from an agent's release to the server's moves, with
            their directories: an offer names them, and the agent snapshots them first.
    """

    product: str
    version: str  # the server's release: the version agents are upgraded to
    protocol: tuple[int, int] | None  # agent protocols this release accepts
    builds: Path | None  # published agent builds
    public_url: str  # how agents reach this server, for artifact URLs
    schema_level: int | None = None
    heartbeat: float = 10.0
    deadline: float = 120.0  # seconds for an upgraded agent to say hello on the target
    replica: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    ui_sessions: Limits = field(default_factory=Limits)
    anchor: Anchor | None = None
    agents: AgentWindow | None = None
    series: tuple[tuple[int, int], ...] = ()
    grammar: GrammarName = "pep440"
    announced: Callable[[], Sequence[Notice]] = lambda: ()
    plugins: Callable[[str], list[PluginDirectory]] = lambda _release: []

    def judge(self, agent_version: str) -> Verdict:
        """Whether this release accepts an agent on ``agent_version``, and its skew."""
        return skew.judge(agent_version, self.version, self.agents, self.series, self.grammar)


class Hub:
    """The agents connected to this replica."""

    def __init__(self) -> None:
        self.sockets: dict[str, WebSocket] = {}
        self.seen: dict[str, str] = {}
        self.credentials: dict[str, str] = {}  # agent id -> the token its connection presented
        self.revoked: dict[str, float] = {}  # token ids revoked lately -> when read

    def join(self, agent_id: str, token_id: str, socket: WebSocket) -> bool:
        """Hold ``socket`` as the agent's connection; False when its credential was revoked
        while it said hello (a revocation read before the agent was held here)."""
        if token_id in self.revoked:
            return False
        self.sockets[agent_id], self.credentials[agent_id] = socket, token_id
        return True

    def leave(self, agent_id: str, socket: WebSocket) -> bool:
        """Let go of the agent's connection, unless a newer one replaced it; whether it did."""
        if self.sockets.get(agent_id) is not socket:
            return False
        del self.sockets[agent_id]
        self.credentials.pop(agent_id, None)
        return True

    async def close_revoked(self, found: list[Revocation]) -> list[str]:
        """Close the connections made with the tokens ``found`` revokes, with 4401; the agents
        closed."""
        moment = time.monotonic()
        self.revoked = {k: t for k, t in self.revoked.items() if moment - t < REVOKED_MEMORY}
        self.revoked |= {revocation.token_id: moment for revocation in found}
        hit = [agent for agent, token in self.credentials.items() if token in self.revoked]
        for agent_id in hit:
            socket = self.sockets[agent_id]
            with contextlib.suppress(Exception):  # already going away: closed all the same
                await socket.close(code=Close.UNAUTHORIZED, reason="credential revoked")
        return hit

    async def send(self, agent_id: str, message: WireMessage) -> bool:
        """Send ``message`` to an agent connected here; False if it is not, or the send failed."""
        socket = self.sockets.get(agent_id)
        if socket is None:
            return False
        try:
            await socket.send_text(message.wire())
        except Exception:  # a connection that is going away fails in its own ways
            log.debug("%s: the message was not delivered", agent_id, exc_info=True)
            return False
        return True


class Fleet:
    """The app's state: configuration, database, connected agents, metrics."""

    def __init__(self, engine: Engine, config: FleetConfig) -> None:
        self.engine, self.config, self.hub = serialised(engine), config, Hub()
        url = conninfo(engine)
        self.replicas = Replicas(url, config.replica) if url else None
        self.metrics = Metrics(self.engine)
        self.wake = asyncio.Event()  # the policy changed here: evaluate without waiting
        self.revoked_wake = asyncio.Event()  # a replica was told of a revocation: read it now
        self.refusals = Refusals()
        self.last_note = ""

    async def db(self, work: Callable[[Connection], T]) -> T:
        """``work`` in one transaction, on a worker thread."""

        def run() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return await anyio.to_thread.run_sync(run)

    async def upgrade(self, agent_id: str, actor: str) -> str:
        """Send the server's build to one connected agent; a sentence saying what happened."""
        return (await self.upgrade_one(agent_id, actor)).sentence

    async def upgrade_one(self, agent_id: str, actor: str) -> Notice:
        """Send the server's build to one connected agent; what happened, and what to do when
        nothing was sent."""
        target = self.config.version
        row = await self.db(lambda c: store.agent(c, agent_id)) or {}
        if row and not drifted(store.rows_from([row])[0], target, self.config.grammar):
            return notices.error(f"{agent_id} runs {row['version']}: nothing to upgrade")
        build = builds.find(self.config.builds, target)
        if build is None:
            return notices.no_build(target)
        if not (agent_id in self.hub.sockets or (row.get("connected") and self.replicas)):
            return _not_connected(agent_id)
        state = State(row["state"])
        if not states.allowed(state, Event.UPGRADE_SENT):
            said = f"{agent_id} is {state}: an upgrade cannot be sent to it"
            return notices.error(said, "wait until it is online again")
        replica = self.config.replica
        chosen = await self.db(lambda c: events.upgrade_sent(c, [agent_id], target, actor, replica))
        sent = chosen and await self.deliver(build, [(agent_id, row.get("replica"))])
        if not sent:
            return _not_connected(agent_id)
        return notices.ok(f"upgrade to {target} sent to {agent_id}")

    async def deliver(self, build: builds.Build, agents: list[tuple[str, str | None]]) -> int:
        """Send the offer to every agent at once, here or through its replica, naming the
        plug-ins the move from its release changes; those that cannot be reached are marked
        gone. Returns how many were sent."""
        bare = build.offer(self.config.public_url)
        ids = [agent_id for agent_id, _ in agents]
        releases = dict(await self.db(lambda c: store.versions_of(c, ids)))

        async def one(agent_id: str, replica: str | None) -> bool:
            release = releases.get(agent_id)
            moved = self.config.plugins(release) if release else []
            offer = bare.model_copy(update={"plugins": moved or None})
            if await self.hub.send(agent_id, offer):
                return True
            if self.replicas and replica and replica != self.config.replica:
                await self.replicas.publish(replica, agent_id, offer)
                return True
            await self.db(lambda c: events.gone(c, agent_id, None))
            return False

        done = sum(await asyncio.gather(*(one(agent_id, where) for agent_id, where in agents)))
        self.metrics.sent.inc(done)
        return done

    async def set_policy(self, body: PolicyIn, actor: str) -> Policy:
        """The operator's policy; a halted rollout resumes (its failures stay pinned)."""

        def write(conn: Connection) -> Policy:
            new = replace(store.read_policy(conn), **body.model_dump(), halted=None)
            store.resume_after_halt(conn)
            store.write_policy(conn, new)
            data = {**body.model_dump(), "mode": body.mode.value}
            audit.append(conn, "agent.upgrade_policy", data, actor=actor)
            return new

        policy = await self.db(write)
        self.wake.set()
        return policy

    async def watch_revocations(self) -> None:
        """Close the connections of revoked credentials within a second of the revocation,
        whichever replica or command revoked them."""
        seen = await self.db(revocations.last)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.revoked_wake.wait(), REVOCATION_POLL)
            self.revoked_wake.clear()
            found = await self.db(functools.partial(revocations.since, seq=seen))
            if found:
                seen = found[-1].seq
                for agent_id in await self.hub.close_revoked(found):
                    log.info("agent %s: credential revoked; connection closed", agent_id)

    async def send_plugin_rollbacks(self) -> None:
        """Send the plug-in rollbacks asked of the agents connected here, as they are asked
        (by ``stairway plugin rollback``, in the database) and when an agent comes back."""
        while True:
            await asyncio.sleep(PLUGIN_POLL)
            await self._send_plugin_rollbacks(list(self.hub.sockets))

    async def _send_plugin_rollbacks(self, connected: list[str]) -> None:
        for agent_id, message in await self.db(lambda c: plugin_hosts.to_send(c, connected)):
            if not await self.hub.send(agent_id, message):
                await self.db(functools.partial(plugin_hosts.unsent, agent_id=agent_id))

    async def flush_refusals(self, everything: bool = False) -> None:
        """Write the refused requests of the minutes that are over to the audit log, one entry
        per source and minute; every minute's when the server stops."""
        items = [("auth.denied", data) for data in self.refusals.due(everything)]
        if items:
            await self.db(lambda c: audit.append_many(c, items, actor="anonymous"))

    async def audit_refusals(self) -> None:
        """``flush_refusals`` every few seconds, while the server runs."""
        while True:
            await asyncio.sleep(REFUSALS_FLUSH)
            await self.flush_refusals()

    async def flush_seen(self) -> None:
        """Heartbeats update memory; the database hears of them in one batch every few
        seconds."""
        while True:
            await asyncio.sleep(max(1.0, self.config.heartbeat / 2))
            seen, self.hub.seen = self.hub.seen, {}
            if seen:
                await self.db(functools.partial(store.seen_many, seen=seen))


def _not_connected(agent_id: str) -> Notice:
    return notices.error(
        f"{agent_id} is not connected", "start its agent: stairway agent run --home AGENT_HOME"
    )
