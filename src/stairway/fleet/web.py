"""The web UI under ``/ui``: Dashboard, Agents (policy panel, Run now, Upgrade), Audit.

Server-rendered with Jinja2, no build step and no external assets. An operator signs in with an
admin token, kept in an HttpOnly, SameSite=Strict cookie; every change is a form POST that goes
through the same code as the admin API (and the same audit entries), then redirects back. The
agents table refreshes itself every two seconds from a fragment of the same template.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from stairway import audit
from stairway.fleet import store, tokens
from stairway.fleet.inputs import PolicyIn
from stairway.fleet.policy import drifted
from stairway.fleet.tokens import Forbidden, Kind, Token, Unauthorized

if TYPE_CHECKING:
    from stairway.fleet.server import Fleet

COOKIE = "stairway_admin"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def routes(app: FastAPI, fleet: Fleet) -> None:
    async def operator(request: Request) -> Token | None:
        presented = request.cookies.get(COOKIE)
        if not presented:
            return None
        try:
            return await fleet.db(lambda c: tokens.check(c, presented, {Kind.ADMIN}))
        except (Unauthorized, Forbidden):
            return None

    def page(request: Request, name: str, **values: Any) -> HTMLResponse:
        values |= {"version": fleet.config.version, "product": fleet.config.product}
        values["ui"] = request.scope.get("root_path", "") + "/ui"  # mounted under a prefix
        return templates.TemplateResponse(request, name, values)

    @app.get("/ui/login", response_class=HTMLResponse)
    async def login_form(request: Request, failed: bool = False) -> HTMLResponse:
        return page(request, "login.html", failed=failed)

    @app.post("/ui/login")
    async def login(request: Request, token: str = Form(...)) -> Response:
        try:
            await fleet.db(lambda c: tokens.check(c, token, {Kind.ADMIN}))
        except (Unauthorized, Forbidden) as err:
            data = {"path": "/ui/login", "reason": str(err)}
            await fleet.db(lambda c: audit.append(c, "auth.denied", data, actor="anonymous"))
            return _go(request, "/ui/login?failed=true")
        response = _go(request, "/ui/")
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/ui/", response_class=HTMLResponse)
    async def dashboard(request: Request) -> Response:
        if await operator(request) is None:
            return _go(request, "/ui/login")
        from stairway.schema import background

        rows = await fleet.db(store.all_agents)
        jobs = await anyio.to_thread.run_sync(background.jobs, fleet.engine)
        return page(
            request,
            "dashboard.html",
            background=jobs,
            schema_level=fleet.config.schema_level,
            by_version=sorted(Counter(str(r["version"]) for r in rows).items()),
            by_state=sorted(Counter(str(r["state"]) for r in rows).items()),
            total=len(rows),
            drifted=sum(1 for r in _with_drift(fleet, rows) if r["drifted"]),
        )

    @app.get("/ui/agents", response_class=HTMLResponse)
    async def agents(request: Request, said: str = "") -> Response:
        if await operator(request) is None:
            return _go(request, "/ui/login")
        policy = await fleet.db(store.read_policy)
        rows = _with_drift(fleet, await fleet.db(store.all_agents))
        return page(request, "agents.html", policy=policy, agents=rows, said=said)

    @app.get("/ui/agents/table", response_class=HTMLResponse)
    async def agents_table(request: Request) -> Response:
        if await operator(request) is None:
            raise HTTPException(401, "unauthorized")
        rows = _with_drift(fleet, await fleet.db(store.all_agents))
        return page(request, "agents_table.html", agents=rows)

    @app.post("/ui/policy")
    async def policy(
        request: Request,
        mode: str = Form(...),
        percent: int = Form(10),
        interval: float = Form(60.0),
        max_failures: int = Form(0),
        canary: bool = Form(False),
    ) -> Response:
        token = await operator(request)
        if token is None:
            return _go(request, "/ui/login")
        values = {"mode": mode, "percent": percent, "interval": interval, "canary": canary}
        try:
            body = PolicyIn.model_validate(values | {"max_failures": max_failures})
        except ValidationError as err:
            problem = err.errors()[0]
            said = f"not saved: {problem['loc'][0]}: {problem['msg']}"
            return _go(request, f"/ui/agents?said={said}")
        await fleet.set_policy(body, f"admin:{token.label}")
        return _go(request, "/ui/agents?said=policy saved")

    @app.post("/ui/run")
    async def run(request: Request) -> Response:
        token = await operator(request)
        if token is None:
            return _go(request, "/ui/login")
        note = await fleet.run_now(f"admin:{token.label}")
        return _go(request, f"/ui/agents?said=run now: {note}")

    @app.post("/ui/agents/{agent_id}/upgrade")
    async def upgrade(request: Request, agent_id: str) -> Response:
        token = await operator(request)
        if token is None:
            return _go(request, "/ui/login")
        said = await fleet.upgrade(agent_id, f"admin:{token.label}")
        return _go(request, f"/ui/agents?said={said}")

    @app.get("/ui/audit", response_class=HTMLResponse)
    async def audit_page(request: Request) -> Response:
        if await operator(request) is None:
            return _go(request, "/ui/login")
        entries = await fleet.db(audit.entries)
        broken = await fleet.db(audit.verify)
        return page(request, "audit.html", entries=list(reversed(entries)), broken=broken)


def _go(request: Request, path: str) -> RedirectResponse:
    """A redirect after a form, kept under the prefix the app is mounted at, if any."""
    return RedirectResponse(request.scope.get("root_path", "") + path, status_code=303)


def _with_drift(fleet: Fleet, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row, evaluable in zip(rows, store.rows_from(rows), strict=True):
        row["drifted"] = drifted(evaluable, fleet.config.version)
    return rows
