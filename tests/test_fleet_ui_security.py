"""The web UI's defences, against a real ``stairway serve`` on SQLite and on PostgreSQL.

The cookie holds a session id, never the admin token (HttpOnly, SameSite=Strict, Path=/ui, and
Secure over TLS); sign-out, a revoked token, idleness and the session's lifetime end a session;
every form needs the session's CSRF token and this server's origin; ``/docs`` and
``/openapi.json`` are there only with ``--docs``, and then only to admin tokens. In Debian's
chromium, agent ids, versions, failure reasons and audit data that carry markup are shown as
text and run nothing.
"""

from __future__ import annotations

import json
import re
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from websockets.sync.client import connect

from conftest import new_pg_database
from fleet_harness import Fleet, answers, fleet_site, free_port, wait_until
from stairway import audit
from stairway.database import dispose_all, engine_for
from stairway.fleet.messages import Close
from stairway.fleet.tables import agents_table, ui_sessions_table
from test_fleet_hostile import close_code
from test_fleet_ui import CHROMIUM, _require_chromium
from tls_certs import make_authority

SESSION, SIGNIN = "stairway_session", "stairway_signin"
STRANGER = "<img src=x onerror=alert(1)>"  # an agent id no enrollment accepts
HELLO_VERSION = "<script>alert(2)</script>"
AUDITED = "<img src=x onerror=alert(3)>"
GROUP = "<script>alert(4)</script>"
REASON = "<img src=x onerror=alert(5)> did not come up"


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer to look at, not to follow


@dataclass
class Answer:
    status: int
    headers: Message
    body: str

    def cookie(self, name: str) -> Any:
        """The morsel of the Set-Cookie header for ``name``; None when it sets none."""
        for header in self.headers.get_all("set-cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            if name in jar:
                return jar[name]
        return None

    @property
    def location(self) -> str:
        return str(self.headers.get("location", ""))


@dataclass
class Server:
    url: str
    tls: ssl.SSLContext | None = None

    def call(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        data = None if form is None else urllib.parse.urlencode(form).encode()
        sent = dict(headers or {})
        if cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if data is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.url + path, data, sent, method=method)
        opener = urllib.request.build_opener(_Stay, urllib.request.HTTPSHandler(context=self.tls))
        try:
            with opener.open(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as err:
            return Answer(err.code, err.headers, err.read().decode())


@dataclass
class Operator:
    """A browser signed in: its session cookie and its forms' CSRF token."""

    server: Server
    session: str
    csrf: str
    signed_in: Answer = field(repr=False)

    def get(self, path: str) -> Answer:
        return self.server.call("GET", path, cookies={SESSION: self.session})

    def post(self, path: str, form: dict[str, str], **headers: str) -> Answer:
        return self.server.call("POST", path, form, {SESSION: self.session}, headers)


def sign_in(server: Server, token: str) -> Operator:
    form = server.call("GET", "/ui/login")
    nonce = form.cookie(SIGNIN).value
    assert f'value="{nonce}"' in form.body, "the form repeats its cookie"
    fields = {"token": token, "csrf": nonce}
    answer = server.call("POST", "/ui/login", fields, cookies={SIGNIN: nonce})
    assert (answer.status, answer.location) == (303, "/ui/"), answer.body
    session = answer.cookie(SESSION).value
    page = server.call("GET", "/ui/agents", cookies={SESSION: session})
    assert page.status == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.body)
    assert found
    return Operator(server, session, found.group(1), answer)


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'app.db'}"
        dispose_all()
        return
    with new_pg_database() as url:
        yield url


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[Fleet]:
    with fleet_site(tmp_path_factory.mktemp("site"), database) as fleet:
        fleet.start_server()
        yield fleet


@pytest.fixture(scope="module")
def server(fleet: Fleet) -> Server:
    return Server(fleet.url)


def serve(fleet: Fleet, *options: str, tls: ssl.SSLContext | None = None) -> Server:
    """Another ``stairway serve`` over the fleet's site database (stopped with the fleet)."""
    port = free_port()
    command = [sys.executable, "-m", "stairway", "serve", "--port", str(port), *options]
    fleet.agents.append(subprocess.Popen([*command, "--site", str(fleet.site)]))
    server = Server(f"{'https' if tls else 'http'}://127.0.0.1:{port}", tls)
    wait_until(lambda: answers(f"{server.url}/health", tls), 30, "the server to start")
    return server


def read_policy(fleet: Fleet) -> str:
    return str(fleet.api("GET", "/api/policy")["mode"])


def test_the_cookie_is_a_session_id_and_never_the_admin_token(
    fleet: Fleet, server: Server, database: str
) -> None:
    operator = sign_in(server, fleet.admin)
    cookie = operator.signed_in.cookie(SESSION)
    assert fleet.admin not in str(operator.signed_in.headers)
    assert (cookie["httponly"], cookie["samesite"], cookie["path"]) == (True, "strict", "/ui")
    assert not cookie["secure"], "plain HTTP: a Secure cookie would not come back"
    assert operator.signed_in.cookie(SIGNIN)["max-age"] == "0", "the sign-in nonce is spent"
    with engine_for(database).connect() as conn:
        stored = [tuple(row) for row in conn.execute(select(ui_sessions_table))]
    assert stored and not any(operator.session in str(row) for row in stored), "only its hash"


def test_the_session_cookie_is_secure_over_tls(fleet: Fleet, tmp_path: Path) -> None:
    authority = make_authority(tmp_path / "pki")
    keys = ("--tls-cert", str(authority.server.cert), "--tls-key", str(authority.server.key))
    server = serve(fleet, *keys, tls=ssl.create_default_context(cafile=str(authority.ca)))
    operator = sign_in(server, fleet.admin)
    assert operator.signed_in.cookie(SESSION)["secure"] is True
    assert operator.get("/ui/").status == 200


def test_a_form_without_the_sessions_csrf_token_or_from_elsewhere_changes_nothing(
    fleet: Fleet, server: Server
) -> None:
    operator = sign_in(server, fleet.admin)
    auto = {"mode": "auto", "percent": "10", "interval": "3600", "max_failures": "0"}
    other = sign_in(server, fleet.admin)
    for form, headers in [
        (auto, {}),
        (auto | {"csrf": "forged"}, {}),
        (auto | {"csrf": other.csrf}, {}),  # another session's
        (auto | {"csrf": "é"}, {}),  # not ASCII: still a plain refusal
        (auto | {"csrf": operator.csrf}, {"Origin": "https://evil.example"}),
        (auto | {"csrf": operator.csrf}, {"Origin": "null"}),
    ]:
        refused = operator.post("/ui/policy", form, **headers)
        assert refused.status == 403, (form, headers, refused.body)
        assert "Nothing was changed" in refused.body
    for path in ("/ui/run", "/ui/agents/relay/upgrade", "/ui/logout"):
        assert operator.post(path, {"csrf": "forged"}).status == 403, path
    assert read_policy(fleet) == "manual"
    assert operator.get("/ui/").status == 200, "a refused sign-out signed nobody out"
    same_origin = {"Origin": server.url}
    saved = operator.post("/ui/policy", auto | {"csrf": operator.csrf}, **same_origin)
    assert saved.status == 303
    assert saved.location.startswith("/ui/agents?said=policy%20saved&seal=")
    assert read_policy(fleet) == "auto"
    assert "policy saved" in operator.get(saved.location).body
    forged = "/ui/agents?said=call%20555-0100%20to%20verify%20your%20token"
    for link in (forged, forged + "&seal=" + "0" * 32):
        assert "555-0100" not in operator.get(link).body, "a link made elsewhere says nothing"
    tampered = saved.location.replace("said=policy", "said=no%20policy")
    assert "no policy saved" not in operator.get(tampered).body
    other = sign_in(server, fleet.admin)
    assert "policy saved" not in other.get(saved.location).body, "sealed for one session only"
    fleet.api("PUT", "/api/policy", {"mode": "manual"})


def test_the_sign_in_form_needs_its_own_cookie_and_a_wrong_token_is_audited(
    fleet: Fleet, server: Server, database: str
) -> None:
    form = {"token": fleet.admin, "csrf": "chosen-by-another-site"}
    assert server.call("POST", "/ui/login", form).status == 403
    forged = server.call("POST", "/ui/login", form, cookies={SIGNIN: "something-else"})
    assert forged.status == 403 and forged.cookie(SESSION) is None
    nonce = {"csrf": "n0nce"}
    own = serve(fleet)  # stopped below: a stopping server writes its tally of refusals
    wrong = own.call("POST", "/ui/login", nonce | {"token": "swt_admin_x.y"}, {SIGNIN: "n0nce"})
    assert (wrong.status, wrong.location) == (303, "/ui/login?failed=true")
    assert wrong.cookie(SESSION) is None
    stopping = fleet.agents[-1]
    stopping.send_signal(signal.SIGTERM)
    stopping.wait(timeout=30)
    with engine_for(database).connect() as conn:
        last = audit.entries(conn)[-1]
    assert (last.action, last.data["paths"]) == ("auth.denied", ["/ui/login"])
    assert last.data["reasons"] == {"unknown token": 1}


def test_sign_out_ends_the_session(fleet: Fleet, server: Server) -> None:
    operator = sign_in(server, fleet.admin)
    out = operator.post("/ui/logout", {"csrf": operator.csrf})
    assert (out.status, out.location) == (303, "/ui/login")
    assert out.cookie(SESSION)["max-age"] == "0" and out.cookie(SESSION)["path"] == "/ui"
    assert operator.get("/ui/agents").location == "/ui/login"
    assert operator.get("/ui/agents/table").status == 401
    assert operator.post("/ui/run", {"csrf": operator.csrf}).location == "/ui/login"


def test_a_revoked_admin_tokens_session_is_dead_at_once(fleet: Fleet, server: Server) -> None:
    token = fleet.token("admin")
    operator = sign_in(server, token)
    assert operator.get("/ui/").status == 200
    fleet.cli("tokens", "revoke", token.split("_")[2].split(".")[0])
    assert operator.get("/ui/").location == "/ui/login"
    assert operator.post("/ui/run", {"csrf": operator.csrf}).location == "/ui/login"


@pytest.mark.parametrize("column", ["expires", "last_seen"])
def test_a_session_past_its_lifetime_or_idle_too_long_goes_to_sign_in(
    fleet: Fleet, server: Server, database: str, column: str
) -> None:
    operator = sign_in(server, fleet.admin)
    table = ui_sessions_table
    with engine_for(database).begin() as conn:
        ours = select(table.c.id_hash).order_by(table.c.created.desc()).limit(1).scalar_subquery()
        conn.execute(update(table).where(table.c.id_hash == ours).values({column: "2001-01-01"}))
    assert operator.get("/ui/").location == "/ui/login"
    assert operator.get("/ui/agents/table").status == 401
    with engine_for(database).connect() as conn:
        stale = select(table).where(getattr(table.c, column) < "2002")
        assert conn.execute(stale).first() is None, "the dead session was deleted"


def test_a_session_opened_on_one_replica_works_on_another(fleet: Fleet, server: Server) -> None:
    operator = sign_in(server, fleet.admin)
    other = Operator(serve(fleet), operator.session, operator.csrf, operator.signed_in)
    assert other.get("/ui/").status == 200
    assert other.post("/ui/logout", {"csrf": operator.csrf}).status == 303
    assert operator.get("/ui/").location == "/ui/login"


def test_the_api_docs_are_off_by_default_and_need_an_admin_token_with_docs(
    fleet: Fleet, server: Server
) -> None:
    bearer = {"Authorization": f"Bearer {fleet.admin}"}
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert server.call("GET", path).status == 404, path
        assert server.call("GET", path, headers=bearer).status == 404, path
    documented = serve(fleet, "--docs")
    enroll = {"Authorization": f"Bearer {fleet.enroll}"}
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert documented.call("GET", path).status == 401, path
        assert documented.call("GET", path, headers=enroll).status == 403, path
        assert documented.call("GET", path, headers=bearer).status == 200, path
    schema = json.loads(documented.call("GET", "/openapi.json", headers=bearer).body)
    assert "/api/policy" in schema["paths"] and "/docs" not in schema["paths"]


def _hello_with_markup(fleet: Fleet) -> None:
    """Two agents enrolled through the API in a group full of markup: one whose hello says it
    runs a version that is a script (refused as no version of the product, its release kept
    for the pages), one that rolled back for a reason that is markup."""
    ws = fleet.url.replace("http", "ws", 1) + "/agent/v1"
    rolled_back = {"from": "9.9.9", "to": "9.9.9", "reason": REASON}
    said = {
        "shouty": ({"version": HELLO_VERSION}, Close.RELEASE_REFUSED),
        "rolled": ({"version": "2.0.0", "rolled_back": rolled_back}, None),
    }
    for agent, (hello, closed_with) in said.items():
        enrolled = fleet.api(
            "POST", "/api/enroll", {"agent_id": agent, "group": GROUP}, token=fleet.enroll
        )
        credential = {"Authorization": f"Bearer {enrolled['credential']}"}
        with connect(ws, additional_headers=credential) as socket:
            socket.send(json.dumps({"type": "hello", "agent_id": agent, "protocol": 1} | hello))
            if closed_with is None:
                assert json.loads(socket.recv(timeout=10))["type"] == "welcome"
            else:
                assert close_code(socket, 10) == closed_with


def _forged_rows(database: str) -> None:
    """What an old or forged database may hold: an agent id no enrollment accepts, and an
    audit entry whose data is markup."""
    row = {"agent_id": STRANGER, "state": "offline", "connected": False, "message": AUDITED}
    with engine_for(database).begin() as conn:
        conn.execute(insert(agents_table).values(row | {"version": "1.0", "enrolled": "2024"}))
        audit.append(conn, "agent.note", {"agent": STRANGER, "note": AUDITED})


def test_markup_from_agents_and_the_audit_log_is_shown_as_text_and_runs_nothing(
    fleet: Fleet, server: Server, database: str
) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    _hello_with_markup(fleet)
    _forged_rows(database)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
        )
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{fleet.url}/ui/login")
        page.fill("input[name=token]", fleet.admin)
        page.click("button[type=submit]")
        expect(page.locator("#server-version")).to_have_text("2.0.0")
        expect(page.locator("main")).to_contain_text(HELLO_VERSION)  # agents by version
        page.goto(f"{fleet.url}/ui/agents")
        table = page.locator("#agents-table")
        for text in (STRANGER, HELLO_VERSION, GROUP, REASON, AUDITED):
            expect(table).to_contain_text(text)
        page.wait_for_timeout(2500)  # the table has been refreshed once
        expect(table).to_contain_text(STRANGER)
        page.goto(f"{fleet.url}/ui/audit")
        for text in (AUDITED, REASON):
            expect(page.locator("main")).to_contain_text(text)
        assert page.locator("main img, main script").count() == 0
        page.click("#sign-out")
        expect(page.locator("input[name=token]")).to_be_visible()
        browser.close()
    assert dialogs == []
