"""The web UI under ``/ui``: Dashboard, Agents (policy panel, Run now, Upgrade), Audit.

Server-rendered with Jinja2, no build step and no external assets. An operator signs in with an
admin token, kept in an HttpOnly, SameSite=Strict cookie; every change is a form POST that goes
through the same code as the admin API (and the same audit entries), then redirects back. The
agents table refreshes itself every two seconds from a fragment of the same template.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from stairway import audit
from stairway.errors import Forbidden, Unauthorized
from stairway.fleet import evaluator, store, tokens
from stairway.fleet.auth import FleetDep, fleet_of
from stairway.fleet.control import Fleet
from stairway.fleet.inputs import PolicyIn
from stairway.fleet.policy import drifted
from stairway.fleet.tokens import Token, TokenKind
from stairway.schema import background

COOKIE = "stairway_admin"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(prefix="/ui")


class SignIn(Exception):
    """No operator is signed in: the page sends the browser to the login form."""


async def _operator(request: Request) -> Token | None:
    presented = request.cookies.get(COOKIE)
    if not presented:
        return None
    try:
        return await fleet_of(request).db(lambda c: tokens.check(c, presented, {TokenKind.ADMIN}))
    except (Unauthorized, Forbidden):
        return None


async def _signed_in(request: Request) -> Token:
    token = await _operator(request)
    if token is None:
        raise SignIn
    return token


Operator = Annotated[Token, Depends(_signed_in)]


def page(request: Request, name: str, **values: Any) -> HTMLResponse:
    """Render template ``name`` with ``values``, the product and release, and the UI's own URL."""
    fleet = fleet_of(request)
    values |= {"version": fleet.config.version, "product": fleet.config.product}
    values["ui"] = request.scope.get("root_path", "") + "/ui"  # mounted under a prefix
    return templates.TemplateResponse(request, name, values)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, failed: bool = False) -> HTMLResponse:
    """``GET /ui/login``: the sign-in form, which says when the last try failed; anyone may ask."""
    return page(request, "login.html", failed=failed)


@router.post("/login")
async def login(request: Request, fleet: FleetDep, token: str = Form(...)) -> Response:
    """``POST /ui/login``: sign in with an admin token, kept in a cookie; anyone may post.

    A wrong token is audited (``auth.denied``) and sent back to the form.
    """
    try:
        await fleet.db(lambda c: tokens.check(c, token, {TokenKind.ADMIN}))
    except (Unauthorized, Forbidden) as err:
        data = {"path": "/ui/login", "reason": err.message}
        await fleet.db(lambda c: audit.append(c, "auth.denied", data, actor="anonymous"))
        return go(request, "/ui/login?failed=true")
    response = go(request, "/ui/")
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    return response


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, fleet: FleetDep, _token: Operator) -> Response:
    """``GET /ui/``: the dashboard: agents by version and by state, drift, background migrations;
    a signed-in operator.
    """
    rows = _with_drift(fleet, await fleet.db(store.all_agents))
    jobs = await anyio.to_thread.run_sync(background.jobs, fleet.engine)
    return page(
        request,
        "dashboard.html",
        background=jobs,
        schema_level=fleet.config.schema_level,
        by_version=sorted(Counter(str(r["version"]) for r in rows).items()),
        by_state=sorted(Counter(str(r["state"]) for r in rows).items()),
        total=len(rows),
        drifted=sum(1 for r in rows if r["drifted"]),
    )


@router.get("/agents", response_class=HTMLResponse)
async def agents(request: Request, fleet: FleetDep, _token: Operator, said: str = "") -> Response:
    """``GET /ui/agents``: the agents and the policy panel, with ``said`` from the last form posted;
    a signed-in operator.
    """
    policy = await fleet.db(store.read_policy)
    rows = _with_drift(fleet, await fleet.db(store.all_agents))
    return page(request, "agents.html", policy=policy, agents=rows, said=said)


@router.get("/agents/table", response_class=HTMLResponse)
async def agents_table(request: Request, fleet: FleetDep) -> Response:
    """``GET /ui/agents/table``: the agents table alone, which the Agents page refreshes every two
    seconds; a signed-in operator, 401 otherwise (a fragment does not redirect).
    """
    if await _operator(request) is None:  # a fragment: no redirect to a whole page
        raise HTTPException(401, "unauthorized")
    rows = _with_drift(fleet, await fleet.db(store.all_agents))
    return page(request, "agents_table.html", agents=rows)


@router.post("/policy")
async def policy(
    request: Request,
    fleet: FleetDep,
    token: Operator,
    mode: str = Form(...),
    percent: int = Form(10),
    interval: float = Form(60.0),
    max_failures: int = Form(0),
    canary: bool = Form(False),
) -> Response:
    """``POST /ui/policy``: save the upgrade policy from the Agents page, as ``PUT /api/policy``
    does; a signed-in operator. A value out of range is said on the page and nothing is saved.
    """
    values = {"mode": mode, "percent": percent, "interval": interval, "canary": canary}
    try:
        body = PolicyIn.model_validate(values | {"max_failures": max_failures})
    except ValidationError as err:
        problem = err.errors()[0]
        return go(request, f"/ui/agents?said=not saved: {problem['loc'][0]}: {problem['msg']}")
    await fleet.set_policy(body, f"admin:{token.label}")
    return go(request, "/ui/agents?said=policy saved")


@router.post("/run")
async def run(request: Request, fleet: FleetDep, token: Operator) -> Response:
    """``POST /ui/run``: run one tick of the policy at once; a signed-in operator."""
    note = await evaluator.run_now(fleet, f"admin:{token.label}")
    return go(request, f"/ui/agents?said=run now: {note}")


@router.post("/agents/{agent_id}/upgrade")
async def upgrade(request: Request, agent_id: str, fleet: FleetDep, token: Operator) -> Response:
    """``POST /ui/agents/{agent_id}/upgrade``: send the server's build to one agent; a signed-in
    operator.
    """
    said = await fleet.upgrade(agent_id, f"admin:{token.label}")
    return go(request, f"/ui/agents?said={said}")


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request, fleet: FleetDep, _token: Operator) -> Response:
    """``GET /ui/audit``: the audit log, newest first, and where its hash chain breaks, if it does;
    a signed-in operator.
    """
    entries = await fleet.db(audit.entries)
    broken = await fleet.db(audit.verify)
    return page(request, "audit.html", entries=list(reversed(entries)), broken=broken)


async def sign_in(request: Request, _err: Exception) -> Response:
    """The handler of ``SignIn``: to the login form."""
    return go(request, "/ui/login")


def go(request: Request, path: str) -> RedirectResponse:
    """A redirect after a form, kept under the prefix the app is mounted at, if any."""
    return RedirectResponse(request.scope.get("root_path", "") + path, status_code=303)


def _with_drift(fleet: Fleet, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row, evaluable in zip(rows, store.rows_from(rows), strict=True):
        row["drifted"] = drifted(evaluable, fleet.config.version)
    return rows
