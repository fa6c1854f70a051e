"""The agent listener, ``/agent/v1``: a websocket per agent, its session as explicit phases.

An agent connects with its credential as a bearer token and says hello first; the server
records it and welcomes it, then takes heartbeats, upgrade failure reports, the plug-in
snapshots it took before an upgrade and its answers to plug-in rollbacks. Each message is
parsed by ``stairway.fleet.messages``; one that is malformed, of an unknown type or out of order
for the session's phase (or for the agent's state, such as a failure report for no upgrade)
closes the connection with its ``Close`` code. A refusal before the welcome is also said in a
``refused`` message, which tells the agent not to try again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import Connection

from stairway.errors import Forbidden, MessageRefused, TransitionRefused, Unauthorized
from stairway.fleet import events, plugin_hosts, tokens
from stairway.fleet.auth import bearer, denied, fleet_of, source
from stairway.fleet.control import Fleet, FleetConfig
from stairway.fleet.messages import (
    HELLO_SHAPE,
    MESSAGE_LIMIT,
    PATH,
    Close,
    Heartbeat,
    Hello,
    Message,
    PluginRestored,
    PluginSnapshotted,
    Refused,
    UpgradeFailed,
    Welcome,
    parse,
)
from stairway.fleet.requests import logger
from stairway.fleet.states import Event
from stairway.fleet.tokens import Token, TokenKind

router = APIRouter()
log = logger(__name__)
HELLO_WAIT = 30.0  # seconds a connection may stay silent before its hello
T = TypeVar("T")


class Phase(StrEnum):
    """Where an agent's session is: waiting for its hello, or welcomed."""

    HELLO = "waiting for hello"
    WELCOMED = "welcomed"


@dataclass
class Session:
    """One agent's connection: its socket, the credential it presented and its phase."""

    fleet: Fleet
    socket: WebSocket
    token: Token
    phase: Phase = Phase.HELLO


@router.websocket(PATH)
async def agent_socket(socket: WebSocket) -> None:
    """The websocket of ``/agent/v1``: one connected agent's session, from its hello to its close.

    An agent credential is required. A refused message closes the connection with its ``Close``
    code; the refusals before the welcome are also told to the agent.
    """
    fleet = fleet_of(socket)
    await socket.accept()
    token = await _credential(fleet, socket)
    if token is None:
        return
    session = Session(fleet, socket, token)
    try:
        await _session(session)
    except WebSocketDisconnect:
        pass
    except MessageRefused as err:
        agent, phase = token.agent_id, session.phase
        log.warning("agent %s (%s): %s; closing with %d", agent, phase, err.message, err.close)
        await _refuse(socket, err.close, err.message, tell=phase == Phase.HELLO)
    except Exception:
        log.exception("agent %s: the session failed", token.agent_id)
        await _refuse(socket, Close.INTERNAL, "internal error", tell=False)


async def _credential(fleet: Fleet, socket: WebSocket) -> Token | None:
    if fleet.refusals.over(source(socket.client)):
        await denied(fleet, PATH, "too many refused requests", socket.client)
        await _refuse(socket, Close.TOO_MANY, "too many refused requests", tell=True)
        return None
    presented = bearer(socket.headers.get("authorization"))
    try:
        return await fleet.db(lambda c: tokens.check(c, presented, {TokenKind.AGENT}))
    except (Unauthorized, Forbidden) as err:
        close = Close.UNAUTHORIZED if isinstance(err, Unauthorized) else Close.FORBIDDEN
        await denied(fleet, PATH, err.message, socket.client)
        reason = "unauthorized" if close == Close.UNAUTHORIZED else "forbidden"
        await _refuse(socket, close, reason, tell=True)
        return None


async def _session(session: Session) -> None:
    fleet, socket = session.fleet, session.socket
    said = await _hello(socket, session.token)
    held = await _admitted(fleet, said)
    token, replica, server = session.token, fleet.config.replica, fleet.config.version
    grammar = fleet.config.grammar
    moved = await fleet.db(
        lambda c: _recorded(c, token, lambda: events.hello(c, said, replica, server, held, grammar))
    )
    if moved.upgraded:
        fleet.metrics.succeeded.inc()
        log.info("agent %s upgraded to %s", said.agent_id, said.version)
    if moved.rolled_back:
        fleet.metrics.failed.labels("rolled_back").inc()
        log.info("agent %s rolled back to %s", said.agent_id, said.version)
    if not fleet.hub.join(said.agent_id, token.id, socket):
        raise MessageRefused("credential revoked", close=Close.UNAUTHORIZED)
    welcome = Welcome(server_version=fleet.config.version, heartbeat=fleet.config.heartbeat)
    await socket.send_text(welcome.wire())
    session.phase = Phase.WELCOMED
    try:
        await _listen(session, said.agent_id)
    finally:
        await _gone(fleet, socket, said.agent_id)


async def _admitted(fleet: Fleet, said: Hello) -> str | None:
    """Refuse (and record why) an agent whose protocol or release this release does not
    accept; why it is held when its release is outside the window but held there."""
    agent_id, version, protocol = said.agent_id, said.version, said.protocol
    refusal = protocol_refusal(fleet.config, protocol)
    if refusal:
        await fleet.db(lambda c: events.refused(c, agent_id, version, protocol, refusal))
        raise MessageRefused(refusal, close=Close.PROTOCOL_REFUSED)
    verdict = fleet.config.judge(version)
    if verdict.refusal:
        why, event = verdict.refusal, Event.RELEASE_REFUSED
        await fleet.db(lambda c: events.refused(c, agent_id, version, protocol, why, event))
        raise MessageRefused(why, close=Close.RELEASE_REFUSED)
    return verdict.held


async def _hello(socket: WebSocket, token: Token) -> Hello:
    try:
        said = await asyncio.wait_for(_receive(socket), timeout=HELLO_WAIT)
    except TimeoutError:
        raise MessageRefused(f"say hello first: {HELLO_SHAPE}", close=Close.HELLO_TIMEOUT) from None
    if not isinstance(said, Hello):
        raise MessageRefused(f"say hello first: {HELLO_SHAPE}", close=Close.OUT_OF_ORDER)
    if said.agent_id != token.agent_id:
        refusal = f"this credential belongs to {token.agent_id}, not {said.agent_id!r}"
        raise MessageRefused(refusal, close=Close.BAD_HELLO)
    return said


async def _listen(session: Session, agent_id: str) -> None:
    fleet = session.fleet
    while True:
        message = await _receive(session.socket)
        if isinstance(message, Heartbeat):
            fleet.hub.seen[agent_id] = tokens.now().isoformat()
        elif isinstance(message, UpgradeFailed):
            await _failed(session, agent_id, message)
        elif isinstance(message, PluginSnapshotted):
            await _snapshotted(session, agent_id, message)
        elif isinstance(message, PluginRestored):
            await _restored(session, agent_id, message)
        else:
            said = f"{message.type} cannot come from an agent once it is welcomed"
            raise MessageRefused(said, close=Close.OUT_OF_ORDER)


async def _failed(session: Session, agent_id: str, report: UpgradeFailed) -> None:
    fleet, token = session.fleet, session.token
    stage, version, reason = report.stage, report.version, report.reason
    try:
        await fleet.db(
            lambda c: _recorded(
                c, token, lambda: events.failure(c, agent_id, stage, version, reason)
            )
        )
    except TransitionRefused as err:
        said = f"upgrade_failed for no upgrade in flight: {err.message}"
        raise MessageRefused(said, close=Close.OUT_OF_ORDER) from None
    fleet.metrics.failed.labels(stage).inc()
    log.info("agent %s could not take %s (%s): %s", agent_id, version, stage, reason)


async def _snapshotted(session: Session, agent_id: str, said: PluginSnapshotted) -> None:
    fleet, token = session.fleet, session.token
    await fleet.db(lambda c: _recorded(c, token, lambda: plugin_hosts.recorded(c, agent_id, said)))
    log.info(
        "agent %s: plug-in %s %s snapshotted (%s)",
        agent_id,
        said.plugin,
        said.version,
        said.snapshot,
    )


async def _restored(session: Session, agent_id: str, said: PluginRestored) -> None:
    fleet, token = session.fleet, session.token
    known = await fleet.db(
        lambda c: _recorded(c, token, lambda: plugin_hosts.answered(c, agent_id, said))
    )
    if not known:
        refusal = f"plugin_restored for request {said.request}, which is not in flight here"
        raise MessageRefused(refusal, close=Close.OUT_OF_ORDER)
    log.info("agent %s: plug-in rollback %d answered", agent_id, said.request)


def _recorded(conn: Connection, token: Token, record: Callable[[], T]) -> T:
    """``record`` what the session said, in the transaction that first checks its credential
    still stands: a revoked session's messages are refused, never recorded."""
    if not tokens.still_valid(conn, token):
        raise MessageRefused("credential revoked", close=Close.UNAUTHORIZED)
    return record()


async def _gone(fleet: Fleet, socket: WebSocket, agent_id: str) -> None:
    if fleet.hub.leave(agent_id, socket):  # not when a newer connection replaced it
        seen = fleet.hub.seen.pop(agent_id, None)
        await fleet.db(lambda c: events.gone(c, agent_id, seen))
        await fleet.db(lambda c: plugin_hosts.unsent(c, agent_id))


async def _receive(socket: WebSocket) -> Message:
    message = await socket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    raw = text if text is not None else message.get("bytes") or b""
    if len(raw) > MESSAGE_LIMIT:  # also when a host app's server lets larger frames through
        said = f"a message of {len(raw)} bytes: the limit is {MESSAGE_LIMIT}"
        raise MessageRefused(said, close=Close.TOO_BIG)
    return parse(raw)


def protocol_refusal(config: FleetConfig, protocol: int) -> str | None:
    """Why an agent speaking ``protocol`` is refused by this release; None when it is not."""
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


async def _refuse(socket: WebSocket, code: int, reason: str, tell: bool) -> None:
    """Close with ``code``; before the welcome, say why in a ``refused`` message first."""
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        if tell:
            await socket.send_text(Refused(reason=reason).wire())
        await socket.close(code=code, reason=reason[:120])
