"""``stairway serve``: the control plane's FastAPI app, put together from its parts.

Agents connect to ``/agent/v1`` (``endpoint``) with their credential as a bearer token and say
hello first; the admin API under ``/api``, ``/metrics`` and ``/artifacts/<build>`` (``api``)
take tokens (``auth``); the web UI lives under ``/ui`` (``web``); the evaluator (``evaluator``)
and the heartbeat writes run in the app's lifespan. Every request gets a request id
(``requests``). The app can run alone or be mounted in a product's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from stairway import audit_anchor
from stairway.audit_witness import Anchor
from stairway.fleet import api, apidocs, endpoint, evaluator, store, web
from stairway.fleet.control import Fleet, FleetConfig
from stairway.fleet.limits import BODY_LIMIT, BodyLimit
from stairway.fleet.messages import PATH
from stairway.fleet.requests import RequestIds, logger
from stairway.fleet.tables import ensure_tables

__all__ = ["PROTOCOL_PATH", "FleetConfig", "create_app", "running"]
PROTOCOL_PATH = PATH
POLL = 5.0  # seconds between looks at the audit log's head
log = logger(__name__)


def create_app(
    engine: Engine, config: FleetConfig, max_body: int = BODY_LIMIT, docs: bool = False
) -> FastAPI:
    """The control plane's FastAPI app: agent listener, admin API, artifacts and web UI.

    Its lifespan creates the fleet's tables, records that no agent is connected to this
    replica, and runs the policy evaluator, the heartbeat writes and (on PostgreSQL) the
    replicas' listener. A product mounting the app enters that lifespan from its own
    (``running``).

    Args:
        engine: The engine of the site database, which holds tokens, agents, the policy and
            the audit log; on PostgreSQL several replicas share it.
        config: What it serves.
        max_body: The largest request body accepted, in bytes; larger ones get 413 unread.
        docs: Serve ``/docs``, ``/redoc`` and ``/openapi.json``, to admin tokens only; without
            it they are not there.
    """
    fleet = Fleet(engine, config)
    app = FastAPI(
        title="Stairway control plane",
        lifespan=_lifespan(fleet),
        docs_url=None,  # served by apidocs, behind an admin token, with docs=True
        redoc_url=None,
        openapi_url=None,
    )
    app.state.fleet = fleet
    app.include_router(api.router)
    app.include_router(endpoint.router)
    app.include_router(web.router)
    if docs:
        app.include_router(apidocs.router)
    app.add_exception_handler(HTTPException, _plain)
    app.add_exception_handler(web.SignIn, web.sign_in)
    app.add_exception_handler(web.Refused, web.refused)
    app.add_middleware(BodyLimit, limit=max_body)
    app.add_middleware(RequestIds)
    return app


def _lifespan(fleet: Fleet) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await fleet.db(ensure_tables)
        await fleet.db(lambda c: store.disconnect_replica(c, fleet.config.replica))
        work = [
            evaluator.run(fleet),
            fleet.flush_seen(),
            fleet.watch_revocations(),
            fleet.audit_refusals(),
            fleet.send_plugin_rollbacks(),
        ]
        if fleet.replicas:
            work.append(fleet.replicas.listen(fleet.hub.send, fleet.revoked_wake.set))
        if fleet.config.anchor:
            work.append(_anchoring(fleet.engine, fleet.config.anchor))
        tasks = [asyncio.create_task(job) for job in work]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):  # a database gone at shutdown: nothing to do
                await fleet.flush_refusals(everything=True)
            if fleet.replicas:
                await fleet.replicas.close()
            if fleet.config.anchor:  # what was logged since the last checkpoint
                await _checkpoint(fleet.engine, fleet.config.anchor)

    return lifespan


async def _anchoring(engine: Engine, anchor: Anchor) -> None:
    """Sign the audit log's committed head after every ``EVERY`` entries, and at least every
    minute while entries are written; the head is polled, which costs one indexed query."""
    signed, at = await _checkpoint(engine, anchor), time.monotonic()
    while True:
        await asyncio.sleep(POLL)
        head = await anyio.to_thread.run_sync(audit_anchor.committed_head, engine)
        moved = head.id - signed if head else 0
        if audit_anchor.due(abs(moved), time.monotonic() - at):
            signed, at = await _checkpoint(engine, anchor), time.monotonic()


async def _checkpoint(engine: Engine, anchor: Anchor) -> int:
    """A checkpoint, on a worker thread; the head's id it saw. A failure is logged: the
    control plane keeps serving, and ``stairway audit verify`` names what is wrong."""

    def run() -> int:
        audit_anchor.checkpoint(engine, anchor)
        head = audit_anchor.committed_head(engine)
        return head.id if head else 0

    try:
        return await anyio.to_thread.run_sync(run)
    except Exception:  # a database or disk failure must not stop the control plane
        log.warning("no audit checkpoint was written", exc_info=True)
        return 0


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The control plane's background work (the evaluator, heartbeat writes, replicas). A product
    that mounts the app enters this in its own lifespan: Starlette runs no mounted app's."""
    async with app.router.lifespan_context(app):
        yield


async def _plain(_request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, HTTPException)
    return JSONResponse({"detail": err.detail}, err.status_code, headers=err.headers)
