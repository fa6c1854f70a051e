"""The web UI under ``/ui``: Dashboard, Agents (policy panel, Run now, Upgrade), Audit; each page
shows a banner with its message while the site is in maintenance.

Server-rendered with Jinja2 (autoescaped: agent ids, versions, messages and audit data are shown
as text), no build step and no external assets. An operator signs in with an admin token, which
opens a session (``signin``): the cookie holds only the session's random id, HttpOnly,
SameSite=Strict, on the UI's path, and Secure over TLS. A session ends idle, at its lifetime,
on Sign out, or when its admin token is revoked. Every change is a form POST that carries the
session's CSRF token and comes from this server's origin (or says no origin), goes through the
same code as the admin API (and the same audit entries), then redirects back; a form that fails
those checks gets a 403 page and changes nothing. The sign-in form itself carries a token that
must match a cookie set with the form (a double submit), so that another site cannot sign a
browser in. The agents table refreshes itself every two seconds from a fragment of the same
template, which does not count as activity.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import anyio
import jinja2
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from stairway import audit, maintenance, task_runs
from stairway.errors import Forbidden, Unauthorized
from stairway.fleet import audit_window, builds, evaluator, notices, requests, signin, store, tokens
from stairway.fleet.auth import FleetDep, denied, fleet_of
from stairway.fleet.control import Fleet
from stairway.fleet.inputs import PolicyIn
from stairway.fleet.notices import Notice
from stairway.fleet.policy import drifted, rollout, wave
from stairway.fleet.signin import Session
from stairway.fleet.tokens import TokenKind
from stairway.schema import background

SESSION_COOKIE = "stairway_session"
LOGIN_COOKIE = "stairway_signin"  # the sign-in form's double-submit token
OLD_COOKIE = "stairway_admin"  # releases before sessions kept the admin token itself in it
log = requests.logger(__name__)
_loader = jinja2.FileSystemLoader(Path(__file__).parent / "templates")
# autoescape on for every template, whatever its name: everything shown comes from agents or
# the database
templates = Jinja2Templates(env=jinja2.Environment(loader=_loader, autoescape=True))
# JSON as text, escaped like any other (``tojson`` writes < as \u003c, which hides what was said)
templates.env.filters["json_text"] = lambda value: json.dumps(value, ensure_ascii=False)
templates.env.filters["when"] = lambda text: when(text)
router = APIRouter(prefix="/ui")


class SignIn(Exception):
    """No operator is signed in: the page sends the browser to the login form."""


class Refused(Exception):
    """A form failed the CSRF or origin check and did nothing: a 403 page that says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _session(request: Request, touch: bool) -> Session | None:
    fleet = fleet_of(request)
    presented, limits = request.cookies.get(SESSION_COOKIE), fleet.config.ui_sessions
    return await fleet.db(lambda c: signin.find(c, presented, limits, touch))


async def _signed_in(request: Request) -> Session:
    session = await _session(request, touch=True)
    if session is None:
        raise SignIn
    return session


async def _form_checked(
    request: Request, session: Annotated[Session, Depends(_signed_in)], csrf: str = Form("")
) -> Session:
    same_origin(request)
    if not session.csrf_matches(csrf):
        raise Refused("the form's CSRF token is missing or is not this session's")
    return session


Operator = Annotated[Session, Depends(_signed_in)]  # a page: a signed-in operator
Posted = Annotated[Session, Depends(_form_checked)]  # a form: signed in, CSRF and origin checked


def same_origin(request: Request) -> None:
    """Refuse a POST whose ``Origin`` header names another origin than this server's (as it is
    reached, or its public URL). A request without the header is left to the CSRF token."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = {_origin(str(request.base_url)), _origin(fleet_of(request).config.public_url)}
    if origin.rstrip("/") not in own:
        raise Refused(f"the form was sent from {origin}, not from this server")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


# each page's title, plain text: the <title> is filled from here, never from a template block,
# so no markup of a page can end up in it
TITLES = {"dashboard.html": "Dashboard", "agents.html": "Agents", "audit.html": "Audit"}
TITLES |= {"login.html": "Sign in", "refused.html": "Refused", "confirm.html": "Upgrade"}
TITLES |= {"bad_request.html": "Bad request"}


def page(
    request: Request, name: str, session: Session | None, status: int = 200, **values: Any
) -> HTMLResponse:
    """Render template ``name`` with ``values``, its title, the product and release, the UI's
    own URL and, for a signed-in operator, the session's CSRF token that every form carries."""
    fleet = fleet_of(request)
    values |= {"title": TITLES.get(name, "Stairway")}
    values |= {"version": fleet.config.version, "product": fleet.config.product}
    values |= {"ui": _root(request) + "/ui", "csrf": session.csrf if session else None}
    return templates.TemplateResponse(request, name, values, status_code=status)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, failed: bool = False) -> HTMLResponse:
    """``GET /ui/login``: the sign-in form, which says when the last try failed; anyone may ask.
    It sets the cookie whose value the form's hidden ``csrf`` field must repeat."""
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = page(request, "login.html", None, failed=failed, signin_csrf=nonce)
    _set_cookie(request, response, LOGIN_COOKIE, nonce, "/ui/login")
    return response


@router.post("/login")
async def login(
    request: Request, fleet: FleetDep, token: str = Form(""), csrf: str = Form("")
) -> Response:
    """``POST /ui/login``: sign in with an admin token, which opens a session; anyone may post
    the form served with its cookie. A wrong token is audited (``auth.denied``) and sent back
    to the form.
    """
    same_origin(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not signin.same(expected, csrf):
        raise Refused("the sign-in form was not the one this server gave this browser")
    try:
        checked = await fleet.db(lambda c: tokens.check(c, token, {TokenKind.ADMIN}))
    except (Unauthorized, Forbidden) as err:
        await denied(fleet, "/ui/login", err.message, request.client)
        return go(request, "/ui/login?failed=true")
    limits = fleet.config.ui_sessions
    opened = await fleet.db(lambda c: signin.open_session(c, checked, limits))
    log.info("signed in to the web UI with the admin token %s", checked.label)
    response = go(request, "/ui/")
    _set_cookie(request, response, SESSION_COOKIE, opened.session_id, "/ui")
    _clear_cookie(request, response, LOGIN_COOKIE, "/ui/login")
    response.delete_cookie(OLD_COOKIE)  # the raw admin token, if an older release set it
    return response


@router.post("/logout")
async def logout(request: Request, fleet: FleetDep, session: Posted) -> Response:
    """``POST /ui/logout``: sign out: the session ends here and on every replica; the form of a
    signed-in operator."""
    await fleet.db(lambda c: signin.end(c, session))
    response = go(request, "/ui/login")
    _clear_cookie(request, response, SESSION_COOKIE, "/ui")
    response.delete_cookie(OLD_COOKIE)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, path: str) -> None:
    response.set_cookie(
        name,
        value,
        path=_root(request) + path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _clear_cookie(request: Request, response: Response, name: str, path: str) -> None:
    secure = request.url.scheme == "https"
    path = _root(request) + path
    response.delete_cookie(name, path=path, httponly=True, samesite="strict", secure=secure)


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, fleet: FleetDep, session: Operator) -> Response:
    """``GET /ui/``: the dashboard: newer releases, agents by version and by state, drift,
    background migrations and post-upgrade tasks; a signed-in operator.
    """
    rows = _with_drift(fleet, await fleet.db(store.all_agents))
    jobs = await anyio.to_thread.run_sync(background.jobs, fleet.engine)
    tasks = await anyio.to_thread.run_sync(task_runs.runs, fleet.engine)
    announced = await anyio.to_thread.run_sync(fleet.config.announced)  # reads a file
    return page(
        request,
        "dashboard.html",
        session,
        maintenance=await fleet.db(maintenance.read),
        announced=announced,
        background=jobs,
        tasks=tasks,
        schema_level=fleet.config.schema_level,
        by_version=sorted(Counter(str(r["version"]) for r in rows).items()),
        by_state=sorted(Counter(str(r["state"]) for r in rows).items()),
        total=len(rows),
        drifted=sum(1 for r in rows if r["drifted"]),
    )


@router.get("/agents", response_class=HTMLResponse)
async def agents(
    request: Request,
    fleet: FleetDep,
    session: Operator,
    said: str = "",
    kind: str = "ok",
    then: str = "",
    seal: str = "",
) -> Response:
    """``GET /ui/agents``: the agents and the policy panel, with what the last form posted said
    (``said``, its ``kind`` and what to do ``then``) when ``seal`` shows this session's form
    said it; a signed-in operator.
    """
    policy = await fleet.db(store.read_policy)
    rows = _with_drift(fleet, await fleet.db(store.all_agents))
    notice = _unsealed(session, said, kind, then, seal)
    halt = notices.halted(policy.halted) if policy.halted else None
    flag = await fleet.db(maintenance.read)
    config = fleet.config
    current = rollout(
        policy, store.rows_from(rows), config.version, config.grammar
    )  # as they stand
    values: dict[str, Any] = {"policy": policy, "agents": rows, "notice": notice, "halt": halt}
    values |= {"held": current.rollout_size or 0, "wave": wave(current)}
    return page(request, "agents.html", session, maintenance=flag, **values)


def _unsealed(session: Session, said: str, kind: str, then: str, seal: str) -> Notice | None:
    """The notice a link carries, if this session's form sealed it; None otherwise."""
    if not said or kind not in notices.KINDS:
        return None
    notice = Notice(kind, said, then)  # kind is one of KINDS: checked above
    return notice if session.sealed(notice.sealed_text(), seal) else None


@router.get("/agents/table", response_class=HTMLResponse)
async def agents_table(request: Request, fleet: FleetDep) -> Response:
    """``GET /ui/agents/table``: the agents table alone, which the Agents page refreshes every two
    seconds; a signed-in operator, 401 otherwise (a fragment does not redirect). It does not
    count as activity: an Agents page left open still goes idle.
    """
    session = await _session(request, touch=False)
    if session is None:  # a fragment: no redirect to a whole page
        raise HTTPException(401, "unauthorized")
    rows = _with_drift(fleet, await fleet.db(store.all_agents))
    return page(request, "agents_table.html", session, agents=rows)


@router.post("/policy")
async def policy(
    request: Request,
    fleet: FleetDep,
    session: Posted,
    mode: str = Form(...),
    percent: int = Form(10),
    interval: float = Form(60.0),
    max_failures: int = Form(0),
    canary: bool = Form(False),
) -> Response:
    """``POST /ui/policy``: save the upgrade policy from the Agents page, as ``PUT /api/policy``
    does; the form of a signed-in operator. A value out of range is said on the page and
    nothing is saved.
    """
    values = {"mode": mode, "percent": percent, "interval": interval, "canary": canary}
    try:
        body = PolicyIn.model_validate(values | {"max_failures": max_failures})
    except ValidationError as err:
        return said(request, session, _not_saved(err))
    await fleet.set_policy(body, f"admin:{session.token.label}")
    return said(request, session, notices.ok("policy saved"))


FIELDS = {"mode": "Mode", "percent": "Percent per tick", "interval": "Every", "canary": "canary"}
FIELDS |= {"max_failures": "Max failures"}  # each policy field's label on the Agents page


def _not_saved(err: ValidationError) -> Notice:
    problem = err.errors()[0]
    name = str(problem["loc"][0])
    label = FIELDS.get(name, name)
    return notices.error(f"not saved: {name}: {problem['msg']}", f"change {label} and save again")


@router.post("/run")
async def run(request: Request, fleet: FleetDep, session: Posted) -> Response:
    """``POST /ui/run``: run one tick of the policy at once; the form of a signed-in operator."""
    note = await evaluator.run_now(fleet, f"admin:{session.token.label}")
    policy = await fleet.db(store.read_policy)
    if policy.halted:
        return said(request, session, notices.halted(policy.halted))
    if builds.find(fleet.config.builds, fleet.config.version) is None:
        return said(request, session, notices.no_build(fleet.config.version))
    return said(request, session, notices.ok(f"run now: {note}"))


@router.get("/agents/{agent_id}/upgrade", response_class=HTMLResponse)
async def confirm_upgrade(
    request: Request, agent_id: str, fleet: FleetDep, session: Operator
) -> Response:
    """``GET /ui/agents/{agent_id}/upgrade``: the step before an upgrade of one agent: what it
    runs, what it would be sent, and the form that sends it; a signed-in operator."""
    rows = _with_drift(
        fleet, [row for row in [await fleet.db(lambda c: store.agent(c, agent_id))] if row]
    )
    return page(
        request, "confirm.html", session, agent_id=agent_id, agent=rows[0] if rows else None
    )


@router.post("/agents/{agent_id}/upgrade")
async def upgrade(request: Request, agent_id: str, fleet: FleetDep, session: Posted) -> Response:
    """``POST /ui/agents/{agent_id}/upgrade``: send the server's build to one agent; the form of
    a signed-in operator.
    """
    return said(request, session, await fleet.upgrade_one(agent_id, f"admin:{session.token.label}"))


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request, fleet: FleetDep, session: Operator, before: str = ""
) -> Response:
    """``GET /ui/audit``: a page of the audit log, newest first, with links to the older and
    newer pages (``before``: the number just above the page), and where its hash chain breaks,
    if it does; a signed-in operator. A ``before`` that is not a position of the log is a 400
    page that says which are."""
    total = await fleet.db(audit.count)
    try:
        shown = audit_window.window(before, total)
    except audit_window.CursorRefused as err:
        return page(request, "bad_request.html", session, status=400, error=err, back="/audit")
    entries = await fleet.db(lambda c: audit.newest(c, shown.below, shown.size))
    broken = await fleet.db(audit.verify)
    flag = await fleet.db(maintenance.read)
    values: dict[str, Any] = {"entries": entries, "broken": broken, "window": shown}
    return page(request, "audit.html", session, maintenance=flag, **values)


async def sign_in(request: Request, _err: Exception) -> Response:
    """The handler of ``SignIn``: to the login form."""
    return go(request, "/ui/login")


async def refused(request: Request, err: Exception) -> Response:
    """The handler of ``Refused``: a 403 page that says why, with the way back."""
    assert isinstance(err, Refused)
    log.warning("refused a form posted to %s: %s", request.url.path, err.reason)
    return page(request, "refused.html", None, status=403, reason=err.reason)


def go(request: Request, path: str) -> RedirectResponse:
    """A redirect after a form, kept under the prefix the app is mounted at, if any."""
    return RedirectResponse(_root(request) + path, status_code=303)


def said(request: Request, session: Session, notice: Notice) -> RedirectResponse:
    """Back to the Agents page, which shows ``notice`` (an agent id in it may be any text) in
    the box of its kind, sealed for this session so that no link made elsewhere can put words
    on the page."""
    kind = "" if notice.kind == "ok" else notice.kind  # the page's default
    parts = {"said": notice.sentence, "kind": kind, "then": notice.action}
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in parts.items() if v)
    return go(request, f"/ui/agents?{query}&seal={session.seal(notice.sealed_text())}")


def when(text: str | None) -> str:
    """A stored ISO timestamp shown to the second in UTC, saying so (one without a zone was
    written in UTC); empty for none, and the text itself when it is not a timestamp."""
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))  # the prefix the app is mounted at, if any


def _with_drift(fleet: Fleet, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row, evaluable in zip(rows, store.rows_from(rows), strict=True):
        row["drifted"] = drifted(evaluable, fleet.config.version, fleet.config.grammar)
    return rows
