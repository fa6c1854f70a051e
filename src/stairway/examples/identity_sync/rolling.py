"""What lets identity-sync be upgraded instance by instance without a failed request.

- Sessions live in Redis (``IDENTITY_SYNC_REDIS``) through ``stairway.sessions``: 2.0.0 writes
  format 1, 2.1.0 format 2 (with the user's roles). A 2.1.0 instance migrates a 2.0.0 session
  when it reads it; a 2.0.0 instance that meets a 2.1.0 session answers 503, which the load
  balancer takes as "try another instance", and leaves the session alone.
- ``POST /drain`` stops taking new requests (they get 503, and the load balancer sends them to
  another instance) and returns once the requests in flight have finished; ``/health`` then
  says 503 too.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis
from fastapi import Cookie, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel

from stairway.sessions import SessionStore, SessionTooNew
from stairway.versions import Version

COOKIE = "identity_sync_session"
DRAIN_LIMIT = 30.0  # seconds to wait for the requests in flight


def add_roles(data: dict[str, Any]) -> dict[str, Any]:
    """Session format 1 -> 2: 2.1.0 keeps the user's roles in the session."""
    return {**data, "roles": ["user"]}


def session_store(release: str) -> SessionStore | None:
    """The Redis session store in this release's format, or None without Redis."""
    url = os.environ.get("IDENTITY_SYNC_REDIS")
    if not url:
        return None
    version = 2 if Version(release) >= Version("2.1.0") else 1
    prefix = os.environ.get("IDENTITY_SYNC_SESSION_PREFIX", "identity-sync")
    return SessionStore(redis.Redis.from_url(url), prefix, version, {1: add_roles})


@dataclass
class Traffic:
    """An instance's requests in flight, and whether it is draining."""

    in_flight: int = 0
    draining: bool = False


class Login(BaseModel):
    """The body of ``POST /login``."""

    user: str


def install(app: FastAPI, release: str) -> Traffic:
    """Add draining, ``/login`` and ``/me`` to ``app``; returns the instance's traffic."""
    traffic = Traffic()
    store = session_store(release)

    @app.middleware("http")
    async def count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if traffic.draining and request.url.path not in ("/drain", "/health"):
            return Response("draining", status_code=503, headers={"Retry-After": "0"})
        traffic.in_flight += 1
        try:
            return await call_next(request)
        finally:
            traffic.in_flight -= 1

    @app.api_route("/drain", methods=["GET", "POST"])  # GET: a Kubernetes preStop hook
    async def drain() -> dict[str, object]:
        traffic.draining = True
        waited = 0.0
        while traffic.in_flight > 1 and waited < DRAIN_LIMIT:  # this request is one of them
            await asyncio.sleep(0.02)
            waited += 0.02
        return {"drained": traffic.in_flight <= 1, "release": release}

    @app.post("/login")
    def login(body: Login, response: Response) -> dict[str, object]:
        sessions = _needed(store)
        data: dict[str, Any] = {"user": body.user}
        if sessions.version >= 2:
            data["roles"] = ["user"]
        session_id = sessions.create(data)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="lax")
        return {"user": body.user, "release": release}

    @app.get("/me")
    def me(session: str | None = Cookie(default=None, alias=COOKIE)) -> dict[str, object]:
        sessions = _needed(store)
        if not session:
            raise HTTPException(401, "log in first")
        try:
            data = sessions.read(session)
        except SessionTooNew:
            # a newer instance owns this session now: let the load balancer try another one
            raise HTTPException(503, "session of a newer release", {"Retry-After": "0"}) from None
        if data is None:
            raise HTTPException(401, "the session expired: log in again")
        return {"user": data.get("user"), "release": release, "format": sessions.version}

    return traffic


def _needed(store: SessionStore | None) -> SessionStore:
    if store is None:
        raise HTTPException(503, "sessions need Redis: set IDENTITY_SYNC_REDIS")
    return store
