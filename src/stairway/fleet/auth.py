"""Who is asking: bearer tokens checked against ``stairway_tokens``, as FastAPI dependencies.

A wrong or missing token gets 401 (403 for a valid token of the wrong kind), an ``auth.denied``
audit entry, and a body that says nothing more.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from stairway import audit
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
    """Audit a refused request to ``path`` (``auth.denied``): why, and the address it came from."""
    where = f"{client.host}" if client else "unknown"
    data = {"path": path, "reason": reason, "from": where}
    log.info("refused %s from %s: %s", path, where, reason, extra={"path": path})
    await fleet.db(lambda c: audit.append(c, "auth.denied", data, actor="anonymous"))


async def _admin(request: Request) -> Token:
    return await authenticate(request, {TokenKind.ADMIN})


async def _enroller(request: Request) -> Token:
    return await authenticate(request, {TokenKind.ENROLL})


async def _downloader(request: Request) -> Token:
    return await authenticate(request, {TokenKind.AGENT, TokenKind.ADMIN})


# FastAPI reads these annotations by name from the module: they must live at module level.
Admin = Annotated[Token, Depends(_admin)]
Enroller = Annotated[Token, Depends(_enroller)]
Downloader = Annotated[Token, Depends(_downloader)]
FleetDep = Annotated[Fleet, Depends(fleet_of)]
