"""Who is asking: bearer tokens checked against ``stairway_tokens``, as FastAPI dependencies.

A wrong or missing token gets 401 (403 for a valid token of the wrong kind) and a body that
says nothing more; the refusal is tallied for its source (``stairway.fleet.refusals``), which
writes one ``auth.denied`` audit entry per source and minute, and answers 429 to a source past
its limit before its token is looked up.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from stairway.errors import Forbidden, Unauthorized
from stairway.fleet import requests, tokens
from stairway.fleet.control import Fleet
from stairway.fleet.tokens import Token, TokenKind

log = requests.logger(__name__)


def fleet_of(connection: HTTPConnection) -> Fleet:
    """The app's ``Fleet``; the app this request reached, also when it is mounted in another."""
    fleet: Fleet = connection.app.state.fleet
    return fleet


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None without one."""
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


async def authenticate(request: Request, allowed: set[TokenKind]) -> Token:
    """The caller's token if it is one of the ``allowed`` kinds.

    Raises:
        HTTPException: 401 for a missing or wrong token, 403 for a token of another kind; either
            way the refusal is audited first.
    """
    fleet = fleet_of(request)
    if fleet.refusals.over(source(request.client)):
        await denied(fleet, request.url.path, "too many refused requests", request.client)
        wait = {"Retry-After": "60"}
        raise HTTPException(429, "too many refused requests", headers=wait)
    presented = bearer(request.headers.get("authorization"))
    try:
        return await fleet.db(lambda c: tokens.check(c, presented, allowed))
    except Unauthorized as err:
        await denied(fleet, request.url.path, err.message, request.client)
        raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"}) from None
    except Forbidden as err:
        await denied(fleet, request.url.path, err.message, request.client)
        raise HTTPException(403, "forbidden") from None


async def denied(fleet: Fleet, path: str, reason: str, client: Any) -> None:
    """Tally a refused request to ``path`` for the address it came from, and why; the audit
    log hears of it in that source's entry for the minute."""
    where = source(client)
    limited = reason == "too many refused requests"
    fleet.refusals.refused(where, path, reason, limited)
    if not limited:  # a flood past its limit is counted, not logged line by line
        log.info("refused %s from %s: %s", path[:200], where, reason, extra={"path": path[:200]})


def source(client: Any) -> str:
    """The address a request came from, by which refusals are counted."""
    return f"{client.host}" if client else "unknown"


async def _admin(request: Request) -> Token:
    return await authenticate(request, {TokenKind.ADMIN})


async def _enroller(request: Request) -> Token:
    return await authenticate(request, {TokenKind.ENROLL})


async def _agent_or_admin(request: Request) -> Token:
    return await authenticate(request, {TokenKind.AGENT, TokenKind.ADMIN})


# FastAPI reads these annotations by name from the module: they must live at module level.
Admin = Annotated[Token, Depends(_admin)]
Enroller = Annotated[Token, Depends(_enroller)]
AgentOrAdmin = Annotated[Token, Depends(_agent_or_admin)]
FleetDep = Annotated[Fleet, Depends(fleet_of)]
