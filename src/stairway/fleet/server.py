"""``stairway serve``: the control plane's FastAPI app — agent listener, admin API, evaluator.

Agents connect to ``/agent/v1`` with their credential as a bearer token and say hello first;
the admin API under ``/api`` takes admin tokens; ``/api/enroll`` takes an enrollment token and
gives an agent its own credential; ``/artifacts/<build>`` serves published agent builds to
agents. A wrong or missing token gets 401 (403 for a valid token of the wrong kind), an audit
entry, and a body that says nothing more. The app can run alone or be mounted in a product's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import Connection, Engine

from stairway import audit
from stairway.database import serialised
from stairway.fleet import builds, events, store, tokens, web
from stairway.fleet.inputs import EnrollIn, PolicyIn
from stairway.fleet.policy import Policy, drifted, evaluate
from stairway.fleet.replicas import Replicas, conninfo
from stairway.fleet.tables import ensure_tables
from stairway.fleet.tokens import Forbidden, Kind, Token, Unauthorized

T = TypeVar("T")
PROTOCOL_PATH = "/agent/v1"


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


class Hub:
    """The agents connected to this replica."""

    def __init__(self) -> None:
        self.sockets: dict[str, WebSocket] = {}
        self.seen: dict[str, str] = {}

    async def send(self, agent_id: str, message: dict[str, Any]) -> bool:
        socket = self.sockets.get(agent_id)
        if socket is None:
            return False
        try:
            await socket.send_json(message)
        except Exception:  # a connection that is going away fails in its own ways
            return False
        return True


class Fleet:
    """The app's state: configuration, database, connected agents, the evaluator."""

    def __init__(self, engine: Engine, config: FleetConfig) -> None:
        self.engine, self.config, self.hub = serialised(engine), config, Hub()
        url = conninfo(engine)
        self.replicas = Replicas(url, config.replica) if url else None
        self.wake = asyncio.Event()
        self.last_note = ""

    async def db(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return await anyio.to_thread.run_sync(run)

    async def upgrade(self, agent_id: str, actor: str) -> str:
        """Send the server's build to one connected agent; a sentence saying what happened."""
        build = builds.find(self.config.builds, self.config.version)
        if build is None:
            return f"no agent build is published for {self.config.version}"
        row = await self.db(lambda c: store.agent(c, agent_id)) or {}
        if not (agent_id in self.hub.sockets or (row.get("connected") and self.replicas)):
            return f"{agent_id} is not connected"
        target, replica = self.config.version, self.config.replica
        await self.db(lambda c: events.upgrade_sent(c, [agent_id], target, actor, replica))
        sent = await self._deliver(build, [(agent_id, row.get("replica"))])
        return f"upgrade to {target} sent to {agent_id}" if sent else f"{agent_id} is not connected"

    async def _deliver(self, build: builds.Build, agents: list[tuple[str, str | None]]) -> int:
        """Send the offer to every agent at once, here or through its replica; those that
        cannot be reached are marked gone. Returns how many were sent."""
        offer = build.offer(self.config.public_url)

        async def one(agent_id: str, replica: str | None) -> bool:
            if await self.hub.send(agent_id, offer):
                return True
            if self.replicas and replica and replica != self.config.replica:
                await self.replicas.publish(replica, agent_id, offer)
                return True
            await self.db(lambda c: events.gone(c, agent_id, None))
            return False

        done = await asyncio.gather(*(one(agent_id, replica) for agent_id, replica in agents))
        return sum(done)

    async def tick(self) -> str:
        """One evaluation of the policy."""
        deadline = timedelta(seconds=self.config.deadline)

        build = builds.find(self.config.builds, self.config.version)
        target, replica = self.config.version, self.config.replica

        def decide(conn: Connection) -> tuple[list[tuple[str, str | None]], str]:
            store.one_tick_at_a_time(conn)
            policy = store.read_policy(conn)
            rows = store.rows_for_evaluator(conn)
            decision = evaluate(policy, rows, target, tokens.now(), deadline)
            for agent_id in decision.silent:
                events.silent(conn, agent_id, target)
            if decision.policy.halted and not policy.halted:
                audit.append(conn, "agent.upgrade_halted", {"reason": decision.policy.halted})
            store.write_policy(conn, decision.policy)
            if build is None:
                return [], f"no agent build is published for {target}"
            where = {row.agent_id: row.replica for row in rows}
            events.upgrade_sent(conn, decision.upgrade, target, "policy", replica)
            return [(a, where.get(a)) for a in decision.upgrade], decision.note

        chosen, note = await self.db(decide)
        if build is not None and chosen:
            await self._deliver(build, chosen)
        self.last_note = note
        return note

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

    async def run_now(self, actor: str) -> str:
        await self.db(lambda c: audit.append(c, "agent.upgrade_run", {"run": "now"}, actor=actor))
        return await self.tick()

    async def evaluator(self) -> None:
        """A tick every ``interval`` on the one replica holding the evaluator lock. The policy
        is read again every second, so a change made on any replica applies at once; a change
        made here restarts the wait (the operator's Run now acts at once)."""
        await self.leading()
        last = time.monotonic()
        while True:
            policy = await self.db(store.read_policy)
            due = last + policy.interval
            try:
                wait = max(0.0, min(due - time.monotonic(), 1.0))
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
                self.wake.clear()
                last = time.monotonic()
                continue
            except TimeoutError:
                pass
            if time.monotonic() >= due and await self.leading():
                try:
                    await self.tick()
                except Exception:  # the evaluator outlives one bad tick
                    traceback.print_exc()
                last = time.monotonic()

    async def leading(self) -> bool:
        """Whether this replica evaluates; waits for the lock when another one holds it."""
        if self.replicas is None:
            return True
        if not await self.replicas.still_leading():
            await self.replicas.lead()
        return True


def create_app(engine: Engine, config: FleetConfig) -> FastAPI:
    """The control plane's FastAPI app: agent listener, admin API, artifacts and web UI.

    Its lifespan creates the fleet's tables, records that no agent is connected to this
    replica, and runs the policy evaluator, the heartbeat writes and (on PostgreSQL) the
    replicas' listener. A product mounting the app enters that lifespan from its own
    (``running``).

    Args:
        engine: The engine of the site database, which holds tokens, agents, the policy and
            the audit log; on PostgreSQL several replicas share it.
        config: What it serves.
    """
    fleet = Fleet(engine, config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await fleet.db(ensure_tables)
        await fleet.db(lambda c: store.disconnect_replica(c, config.replica))
        tasks = [asyncio.create_task(fleet.evaluator()), asyncio.create_task(_flush_seen(fleet))]
        if fleet.replicas:
            tasks.append(asyncio.create_task(fleet.replicas.listen(fleet.hub.send)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if fleet.replicas:
                await fleet.replicas.close()

    app = FastAPI(title="Stairway control plane", lifespan=lifespan)
    app.state.fleet = fleet
    _admin_routes(app, fleet)
    _agent_routes(app, fleet)
    web.routes(app, fleet)
    return app


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The control plane's background work (the evaluator, heartbeat writes, replicas). A product
    that mounts the app enters this in its own lifespan: Starlette runs no mounted app's."""
    async with app.router.lifespan_context(app):
        yield


async def _flush_seen(fleet: Fleet) -> None:
    """Heartbeats update memory; the database hears of them in one batch every few seconds."""
    while True:
        await asyncio.sleep(max(1.0, fleet.config.heartbeat / 2))
        seen, fleet.hub.seen = fleet.hub.seen, {}
        if seen:
            await fleet.db(functools.partial(store.seen_many, seen=seen))


# --- authentication ----------------------------------------------------------------------------


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


async def _authenticate(fleet: Fleet, request: Request, allowed: set[Kind]) -> Token:
    presented = _bearer(request.headers.get("authorization"))
    try:
        return await fleet.db(lambda c: tokens.check(c, presented, allowed))
    except Unauthorized as err:
        await _denied(fleet, request.url.path, str(err), request.client)
        raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"}) from None
    except Forbidden as err:
        await _denied(fleet, request.url.path, str(err), request.client)
        raise HTTPException(403, "forbidden") from None


async def _denied(fleet: Fleet, path: str, reason: str, client: Any) -> None:
    where = f"{client.host}" if client else "unknown"
    data = {"path": path, "reason": reason, "from": where}
    await fleet.db(lambda c: audit.append(c, "auth.denied", data, actor="anonymous"))


async def _admin(request: Request) -> Token:
    return await _authenticate(request.app.state.fleet, request, {Kind.ADMIN})


async def _enroller(request: Request) -> Token:
    return await _authenticate(request.app.state.fleet, request, {Kind.ENROLL})


async def _downloader(request: Request) -> Token:
    return await _authenticate(request.app.state.fleet, request, {Kind.AGENT, Kind.ADMIN})


# FastAPI reads these annotations by name from the module: they must live at module level.
Admin = Annotated[Token, Depends(_admin)]
Enroller = Annotated[Token, Depends(_enroller)]
Downloader = Annotated[Token, Depends(_downloader)]


# --- the admin API -------------------------------------------------------------------------------


def _admin_routes(app: FastAPI, fleet: Fleet) -> None:
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": fleet.config.version, "replica": fleet.config.replica}

    @app.get("/api/agents")
    async def agents(_token: Admin) -> list[dict[str, Any]]:
        rows = await fleet.db(store.all_agents)
        for row in rows:
            row["drifted"] = drifted(_evaluable(row), fleet.config.version)
        return rows

    @app.post("/api/agents/{agent_id}/upgrade")
    async def upgrade_one(agent_id: str, token: Admin) -> dict[str, str]:
        row = await fleet.db(lambda c: store.agent(c, agent_id))
        if row is None:
            raise HTTPException(404, f"no agent {agent_id}")
        return {"result": await fleet.upgrade(agent_id, f"admin:{token.label}")}

    @app.get("/api/policy")
    async def get_policy(_token: Admin) -> dict[str, Any]:
        policy = await fleet.db(store.read_policy)
        return {**policy.__dict__, "mode": policy.mode.value, "note": fleet.last_note}

    @app.put("/api/policy")
    async def put_policy(body: PolicyIn, token: Admin) -> dict[str, Any]:
        policy = await fleet.set_policy(body, f"admin:{token.label}")
        return {**policy.__dict__, "mode": policy.mode.value}

    @app.post("/api/policy/run")
    async def run_now(token: Admin) -> dict[str, str]:
        return {"note": await fleet.run_now(f"admin:{token.label}")}

    @app.post("/api/enroll")
    async def enroll(body: EnrollIn, token: Enroller) -> dict[str, str]:
        def issue(conn: Connection) -> str:
            tokens.spend(conn, token)
            store.enroll(conn, body.agent_id, body.group)
            tokens.revoke_agent(conn, body.agent_id)  # one live credential per agent
            credential = tokens.issue(conn, Kind.AGENT, body.agent_id, agent_id=body.agent_id)
            audit.append(conn, "agent.enroll", {"agent": body.agent_id}, actor=token.label)
            return credential

        return {"agent_id": body.agent_id, "credential": await fleet.db(issue)}

    @app.get("/api/audit")
    async def audit_log(_token: Admin) -> list[dict[str, Any]]:
        found = await fleet.db(audit.entries)
        return [entry.__dict__ for entry in found]

    @app.get("/artifacts/{name}")
    async def artifact(name: str, _token: Downloader) -> FileResponse:
        folder = fleet.config.builds
        path = folder / name if folder else None
        if path is None or "/" in name or name.startswith(".") or not path.is_file():
            raise HTTPException(404, "no such build")
        return FileResponse(path)

    @app.exception_handler(HTTPException)
    async def plain(_request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, err.status_code, headers=err.headers)


def _evaluable(row: dict[str, Any]) -> Any:
    return store.rows_from([row])[0]


# --- the agent listener --------------------------------------------------------------------------


def _agent_routes(app: FastAPI, fleet: Fleet) -> None:
    @app.websocket(PROTOCOL_PATH)
    async def agent_socket(socket: WebSocket) -> None:
        await socket.accept()
        presented = _bearer(socket.headers.get("authorization"))
        try:
            token = await fleet.db(lambda c: tokens.check(c, presented, {Kind.AGENT}))
        except (Unauthorized, Forbidden) as err:
            code = 4401 if isinstance(err, Unauthorized) else 4403
            await _denied(fleet, PROTOCOL_PATH, str(err), socket.client)
            await _refuse(socket, code, "unauthorized" if code == 4401 else "forbidden")
            return
        with contextlib.suppress(WebSocketDisconnect):
            await _session(fleet, socket, token)


async def _session(fleet: Fleet, socket: WebSocket, token: Token) -> None:
    try:
        hello = await asyncio.wait_for(socket.receive_json(), timeout=30)
    except (TimeoutError, ValueError):
        await _refuse(socket, 4400, "say hello first: {type, agent_id, version, protocol}")
        return
    problem = _bad_hello(hello, token)
    if problem:
        await _refuse(socket, 4400, problem)
        return
    agent_id, version, protocol = hello["agent_id"], hello["version"], hello["protocol"]
    outside = _protocol_refusal(fleet.config, protocol)
    if outside:
        await fleet.db(lambda c: events.refused(c, agent_id, version, protocol, outside))
        await _refuse(socket, 4426, outside)
        return
    rolled_back = hello.get("rolled_back") if isinstance(hello.get("rolled_back"), dict) else None
    replica = fleet.config.replica
    await fleet.db(lambda c: events.hello(c, agent_id, version, protocol, replica, rolled_back))
    fleet.hub.sockets[agent_id] = socket
    welcome = {
        "type": "welcome",
        "server_version": fleet.config.version,
        "heartbeat": fleet.config.heartbeat,
    }
    await socket.send_json(welcome)
    try:
        await _listen(fleet, socket, agent_id)
    finally:
        if fleet.hub.sockets.get(agent_id) is socket:
            del fleet.hub.sockets[agent_id]
            seen = fleet.hub.seen.pop(agent_id, None)
            await fleet.db(lambda c: events.gone(c, agent_id, seen))


async def _listen(fleet: Fleet, socket: WebSocket, agent_id: str) -> None:
    while True:
        message = await socket.receive_json()
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "heartbeat":
            fleet.hub.seen[agent_id] = tokens.now().isoformat()
        elif kind == "upgrade_failed":
            stage, reason = str(message.get("stage")), str(message.get("reason"))[:2000]
            version = str(message.get("version"))
            await fleet.db(functools.partial(_failed, agent_id, stage, version, reason))


def _failed(agent_id: str, stage: str, version: str, reason: str, conn: Connection) -> None:
    events.failure(conn, agent_id, stage, version, reason)


def _bad_hello(hello: Any, token: Token) -> str | None:
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        return "say hello first: {type, agent_id, version, protocol}"
    if not isinstance(hello.get("version"), str) or not isinstance(hello.get("protocol"), int):
        return "hello needs a version (text) and a protocol (integer)"
    if hello.get("agent_id") != token.agent_id:
        return f"this credential belongs to {token.agent_id}, not {hello.get('agent_id')!r}"
    return None


def _protocol_refusal(config: FleetConfig, protocol: int) -> str | None:
    if config.protocol is None:
        return None
    low, high = config.protocol
    if low <= protocol <= high:
        return None
    return (
        f"agent protocol {protocol} is not accepted by {config.product} {config.version}: "
        f"it accepts protocols {low} to {high}; install an agent build of a release that "
        "speaks one of them"
    )


async def _refuse(socket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await socket.send_json({"type": "refused", "reason": reason})
        await socket.close(code=code, reason=reason[:120])
