"""A hostile client against a real ``stairway serve`` on loopback, on SQLite and PostgreSQL:
racing enrollments, an agent id taken over, revoked sessions that keep talking, oversized
bodies and messages, and a flood of unauthenticated requests. Every loop is bounded."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from fleet_harness import Fleet, fleet_site, make_build, wait_until
from stairway import audit, context
from stairway.database import dispose_all
from stairway.fleet import refusals, store
from stairway.fleet.messages import TEXT_LIMIT, Close, Hello, UpgradeFailed
from stairway.fleet.states import State
from stairway.fleet.tables import tokens_table


@pytest.fixture
def fleet(tmp_path: Path, database_url: str) -> Iterator[Fleet]:
    with fleet_site(tmp_path, database_url) as running:
        yield running


# What is decided before the database is asked (sizes, the flood) runs on SQLite alone.
before_the_database = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def post(fleet: Fleet, path: str, body: Any, token: str, port: int | None = None) -> Any:
    """``fleet.api`` that answers ``(status, body)`` for a refusal too."""
    try:
        return 200, fleet.api("POST", path, body, token=token, port=port)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read() or b"{}")


def enrolled(fleet: Fleet, agent_id: str) -> str:
    said = post(fleet, "/api/enroll", {"agent_id": agent_id}, fleet.enroll)
    assert said[0] == 200, said
    return str(said[1]["credential"])


def token_id(credential: str) -> str:
    return credential.split(".")[0].split("_")[2]


def site_entries(fleet: Fleet) -> list[audit.Entry]:
    found = audit.read(context.open_context(fleet.site, None).engine)
    dispose_all()
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def session(port: int, credential: str) -> ClientConnection:
    headers = {"Authorization": f"Bearer {credential}"}
    return connect(f"ws://127.0.0.1:{port}/agent/v1", additional_headers=headers, open_timeout=10)


@contextmanager
def welcomed(port: int, credential: str, agent_id: str) -> Iterator[ClientConnection]:
    with session(port, credential) as socket:
        socket.send(hello(agent_id))
        assert json.loads(socket.recv(timeout=10))["type"] == "welcome"
        yield socket


def hello(agent_id: str) -> str:
    return Hello(agent_id=agent_id, version="1.0.0", protocol=1).wire()


def refused(port: int, credential: str, agent_id: str) -> int:
    """The close code a connection with ``credential`` gets."""
    with session(port, credential) as socket:
        with contextlib.suppress(ConnectionClosed):
            socket.send(hello(agent_id))
        return close_code(socket, 10)


def close_code(socket: ClientConnection, seconds: float) -> int:
    """The code the server closes with, waiting at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server closed the connection itself"
            return closed.rcvd.code
        except TimeoutError:
            raise AssertionError(f"still open after {seconds} s") from None


# --- enrollment ---------------------------------------------------------------------------------


def test_a_one_use_token_hit_by_fifty_concurrent_requests_enrolls_exactly_one_agent(
    fleet: Fleet,
) -> None:
    fleet.start_server()
    said = fleet.cli("tokens", "create", "--kind", "enroll", "--label", "once", "--uses", "1")
    once = said.splitlines()[-1].strip()
    start = threading.Barrier(50)

    def enroll(n: int) -> int:
        start.wait(timeout=30)
        status, _ = post(fleet, "/api/enroll", {"agent_id": f"racer-{n}"}, once)
        return int(status)

    with ThreadPoolExecutor(50) as pool:
        statuses = Counter(pool.map(enroll, range(50)))
    assert statuses == {200: 1, 401: 49}
    engine = context.open_context(fleet.site, None).engine
    with engine.connect() as conn:
        kinds = Counter(conn.execute(select(tokens_table.c.kind)).scalars())
        left = conn.execute(
            select(tokens_table.c.uses_left).where(tokens_table.c.label == "once")
        ).scalar_one()
        enrolled = [row["agent_id"] for row in store.all_agents(conn)]
    dispose_all()
    assert kinds["agent"] == 1 and left == 0 and len(enrolled) == 1


def test_an_enrollment_token_cannot_take_over_an_enrolled_agent(fleet: Fleet) -> None:
    fleet.start_server()
    first = post(fleet, "/api/enroll", {"agent_id": "relay-a"}, fleet.enroll)[1]["credential"]
    other = post(fleet, "/api/enroll", {"agent_id": "relay-b"}, fleet.enroll)[1]["credential"]
    with welcomed(fleet.port, first, "relay-a") as socket:
        status, body = post(fleet, "/api/enroll", {"agent_id": "relay-a"}, fleet.enroll)
        assert status == 409 and "already enrolled" in body["detail"]
        with pytest.raises(TimeoutError):
            socket.recv(timeout=1.5)  # the real agent is still connected, not closed
        assert fleet.agent_rows()["relay-a"]["connected"]
        taken = post(fleet, "/api/agents/relay-a/credential", {}, other)
        assert taken[0] == 403, "another agent's credential cannot re-enroll it"
        renewed = post(fleet, "/api/agents/relay-a/credential", {}, first)
        assert renewed[0] == 200
        assert close_code(socket, 5) == Close.UNAUTHORIZED, "the old credential's session ends"
    with welcomed(fleet.port, renewed[1]["credential"], "relay-a"):
        pass
    reissued = fleet.cli("tokens", "reissue", "relay-a", "--label", "ops", "--json")
    assert json.loads(reissued)["credential"].startswith("swt_agent_")
    assert refused(fleet.port, renewed[1]["credential"], "relay-a") == Close.UNAUTHORIZED
    reenrolled = [(e.actor, e.data["agent"]) for e in site_entries(fleet)]
    assert ("relay-a", "relay-a") in reenrolled and ("admin:ops", "relay-a") in reenrolled
    assert sum(1 for e in site_entries(fleet) if e.action == "agent.enroll") == 2


@before_the_database
def test_the_agent_cli_re_enrolls_with_its_own_credential_and_says_why_an_id_is_taken(
    fleet: Fleet,
) -> None:
    fleet.start_server()
    build = make_build(fleet.root, "1.0.0")
    home = fleet.start_agent("relay-c", build)
    wait_until(lambda: "relay-c" in fleet.connected(), 30, "relay-c to connect")
    with pytest.raises(AssertionError, match="already enrolled"):
        fleet.start_agent("relay-c", build)  # the enrollment token again
    own = json.loads((home / "agent.json").read_text())["credential"]
    fleet.enroll = own
    fleet.start_agent("relay-c", build)  # its own credential: re-enrolled
    wait_until(lambda: "relay-c" in fleet.connected(), 30, "relay-c to reconnect")
    assert json.loads((home / "agent.json").read_text())["credential"] != own


# --- revocation ---------------------------------------------------------------------------------


def test_a_revoked_credential_is_closed_within_a_second_on_any_replica(fleet: Fleet) -> None:
    fleet.start_server()
    port = fleet.port
    if "postgresql" in fleet.site.read_text():  # connected to another replica than the API's
        _, port = fleet.start_replica()
    credential = enrolled(fleet, "relay-r")
    with welcomed(port, credential, "relay-r") as socket:
        fleet.cli("tokens", "revoke", token_id(credential))
        revoked_at = time.monotonic()
        assert close_code(socket, 3) == Close.UNAUTHORIZED
        assert time.monotonic() - revoked_at < 1.0
    assert refused(port, credential, "relay-r") == Close.UNAUTHORIZED
    revokers = [
        lambda: post(fleet, "/api/agents/relay-r/credential", {}, fleet.admin, port=port),
        lambda: fleet.api("DELETE", "/api/agents/relay-r/credential", port=port),
        lambda: fleet.cli("tokens", "revoke", "--agent", "relay-r"),
    ]
    for revoke in revokers:  # a re-enrollment, the API's revoke, the command line's
        renewed = json.loads(fleet.cli("tokens", "reissue", "relay-r", "--json"))["credential"]
        with welcomed(fleet.port, renewed, "relay-r") as socket:  # on the API's replica
            revoke()
            assert close_code(socket, 3) == Close.UNAUTHORIZED
    actions = Counter(e.action for e in site_entries(fleet))
    assert actions["agent.revoke"] == 2 and actions["token.revoke"] == 1
    assert actions["agent.reenroll"] == 4


def test_what_a_revoked_session_says_before_it_is_closed_is_refused_not_recorded(
    fleet: Fleet,
) -> None:
    fleet.start_server()
    credential = enrolled(fleet, "relay-q")
    with welcomed(fleet.port, credential, "relay-q") as socket:
        engine = context.open_context(fleet.site, None).engine
        with engine.begin() as conn:  # an upgrade in flight, so a failure report would count
            store.change(conn, "relay-q", state=State.UPGRADING.value, target="2.0.0")
            # revoked, but not yet read by the server: the moment before it closes the socket
            conn.execute(
                update(tokens_table)
                .where(tokens_table.c.id == token_id(credential))
                .values(revoked=True)
            )
        dispose_all()
        failed = UpgradeFailed(version="2.0.0", stage="verify", reason="said after revoke")
        socket.send(failed.wire())
        assert close_code(socket, 5) == Close.UNAUTHORIZED
    assert "agent.upgrade_failed" not in [e.action for e in site_entries(fleet)]
    assert fleet.agent_rows()["relay-q"]["state"] == State.UPGRADING.value


# --- sizes --------------------------------------------------------------------------------------


@before_the_database
def test_oversized_bodies_are_refused_unread_and_the_server_stays_small(fleet: Fleet) -> None:
    fleet.start_server()
    assert fleet.server is not None
    before = rss_kib(fleet.server.pid)
    declared = http.client.HTTPConnection("127.0.0.1", fleet.port, timeout=30)
    declared.putrequest("POST", "/api/enroll")
    declared.putheader("Content-Length", str(200 * 1024 * 1024))
    declared.putheader("Content-Type", "application/json")
    declared.endheaders()
    sent = 0
    try:
        while sent < 200 * 1024 * 1024:
            declared.send(b"x" * (1024 * 1024))
            sent += 1024 * 1024
    except OSError:
        pass  # the server answered and closed: the rest is never read
    assert declared.getresponse().status == 413
    assert sent < 200 * 1024 * 1024, "the server stopped reading early"
    chunked = http.client.HTTPConnection("127.0.0.1", fleet.port, timeout=30)
    pieces = (b"y" * 65536 for _ in range(160))  # 10 MB, no length declared
    with contextlib.suppress(OSError):
        chunked.request("POST", "/api/enroll", body=pieces, encode_chunked=True)
    assert chunked.getresponse().status == 413
    assert rss_kib(fleet.server.pid) - before < 30 * 1024
    credential = enrolled(fleet, "relay-s")
    with welcomed(fleet.port, credential, "relay-s") as socket:
        reason = "x" * (12 * 1024 * 1024)
        socket.send(
            json.dumps(
                {"type": "upgrade_failed", "version": "2", "stage": "verify", "reason": reason}
            )
        )
        assert close_code(socket, 10) == Close.TOO_BIG
    assert rss_kib(fleet.server.pid) - before < 40 * 1024
    assert all(len(json.dumps(e.data)) < 10_000 for e in site_entries(fleet))


@before_the_database
def test_free_text_an_agent_sends_is_cut_to_a_stated_length(fleet: Fleet) -> None:
    fleet.start_server()
    credential = enrolled(fleet, "relay-t")
    with welcomed(fleet.port, credential, "relay-t") as socket:
        engine = context.open_context(fleet.site, None).engine
        with engine.begin() as conn:
            store.change(conn, "relay-t", state=State.UPGRADING.value, target="2.0.0")
        dispose_all()
        long = {"type": "upgrade_failed", "version": "2.0.0", "stage": "verify"}
        socket.send(json.dumps(long | {"reason": "r" * 50_000}))
        wait_until(lambda: fleet.agent_rows()["relay-t"]["state"] == "failed", 10, "the failure")
    entry = next(e for e in site_entries(fleet) if e.action == "agent.upgrade_failed")
    assert entry.data["reason"].endswith("[cut: 50000 characters in all]")
    assert len(entry.data["reason"]) == TEXT_LIMIT


# --- the flood ----------------------------------------------------------------------------------


@before_the_database
def test_an_unauthenticated_flood_is_answered_429_and_audited_in_aggregate(
    fleet: Fleet,
) -> None:
    fleet.start_server()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def hammer(requests: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", fleet.port, timeout=30)
        try:
            for n in range(requests):
                headers = {"Authorization": f"Bearer swt_admin_{n}.<script>{'z' * 2000}"}
                conn.request("GET", f"/api/agents?{'q' * 3000}", headers=headers)
                answer = conn.getresponse()
                answer.read()
                with lock:
                    statuses[answer.status] += 1
        finally:
            conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=hammer, args=(100,)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    minutes = 1 + int((time.monotonic() - started) // 60) + 1  # the minutes the flood touched
    assert sum(statuses.values()) == 1000
    # The limit is checked before a token is looked up: the lookups already in flight when it
    # is reached (one per connection at most) still end in 401, in each minute touched.
    assert refusals.LIMIT <= statuses[401] <= (refusals.LIMIT + len(threads)) * minutes
    assert statuses[429] == 1000 - statuses[401]
    with pytest.raises(urllib.error.HTTPError) as caught:  # whatever it presents, this minute
        fleet.api("GET", "/api/agents")
    caught.value.close()
    assert caught.value.code == 429 and caught.value.headers["Retry-After"] == "60"
    fleet.stop()
    denied = [e for e in site_entries(fleet) if e.action == "auth.denied"]
    assert 1 <= len(denied) <= minutes
    assert sum(e.data["count"] for e in denied) == 1001, "the flood and the operator's 429"
    assert sum(e.data["limited"] for e in denied) == statuses[429] + 1
    assert sum(len(json.dumps(e.data)) for e in denied) < 4000 * minutes
