"""The control plane as an operator runs it: Prometheus metrics from a live server, request ids
on responses and log records, close codes for messages the protocol does not allow, and agent
states that change only as the transition table says."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from fleet_harness import Fleet, answers, fleet_site, free_port, make_build, wait_until
from stairway import audit, context
from stairway.database import dispose_all, engine_for
from stairway.errors import TransitionRefused
from stairway.fleet import events, states, store
from stairway.fleet.messages import Close, Hello
from stairway.fleet.states import Event, State
from stairway.fleet.tables import ensure_tables
from stairway.operations.fleet import control_plane

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def fleet(tmp_path: Path, database_url: str) -> Iterator[Fleet]:
    with fleet_site(tmp_path, database_url) as running:
        yield running


def scrape(fleet: Fleet, token: str | None = None) -> Samples:
    """Every sample of ``/metrics``, by name and sorted labels."""
    headers = {"Authorization": f"Bearer {token or fleet.admin}"}
    request = urllib.request.Request(f"{fleet.url}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        body = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def agents_on(samples: Samples, version: str) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "stairway_fleet_agents" and ("version", version) in labels
    )


def test_metrics_move_when_an_agent_is_upgraded(fleet: Fleet) -> None:
    fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
    fleet.start_server()
    fleet.start_agent("relay-m", make_build(fleet.root, "1.0.0"))
    wait_until(lambda: fleet.connected() == {"relay-m"}, 30, "the agent")
    with pytest.raises(urllib.error.HTTPError) as caught:
        scrape(fleet, token=fleet.enroll)
    caught.value.close()
    assert caught.value.code == 403, "metrics take an admin token"
    before = scrape(fleet)
    online = (("state", "online"), ("version", "1.0.0"))
    assert before[("stairway_fleet_agents", online)] == 1
    assert before[("stairway_fleet_upgrades_sent_total", ())] == 0
    assert before[("stairway_fleet_upgrades_succeeded_total", ())] == 0
    fleet.api("PUT", "/api/policy", {"mode": "auto", "interval": 0.2})
    wait_until(lambda: agents_on(scrape(fleet), "2.0.0") == 1, 60, "the agent on 2.0.0")
    after = scrape(fleet)
    assert after[("stairway_fleet_upgrades_sent_total", ())] == 1
    assert after[("stairway_fleet_upgrades_succeeded_total", ())] == 1
    assert agents_on(after, "1.0.0") == 0
    ticks = ("stairway_fleet_evaluator_ticks_total", ())
    assert after[ticks] > before[ticks]
    assert after[("stairway_fleet_evaluator_tick_seconds_count", ())] > 0
    audit = ("stairway_audit_entries", ())
    assert after[audit] == len(fleet.api("GET", "/api/audit")) > before[audit]


# --- request ids and logs --------------------------------------------------------------------


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def in_process(fleet: Fleet) -> Iterator[str]:
    """The control plane on uvicorn in a thread of this process, so its log records reach a
    handler here."""
    port = free_port()
    app = control_plane(fleet.site, f"http://127.0.0.1:{port}")
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{url}/health"), 30, "the in-process server")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        dispose_all()


def get(url: str, token: str, request_id: str | None = None) -> tuple[int, Any, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if request_id:
        headers["X-Request-ID"] = request_id
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
            return response.status, json.loads(response.read()), response.headers["X-Request-ID"]
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read()), err.headers["X-Request-ID"]


def test_an_error_in_a_request_is_logged_with_its_traceback_and_request_id(fleet: Fleet) -> None:
    with context.open_context(fleet.site, None).engine.begin() as conn:
        ensure_tables(conn)
        store.enroll(conn, "relay-x", None)
        conn.execute(text("UPDATE stairway_agents SET state = 'no such state'"))
    dispose_all()
    kept = Kept()
    logging.getLogger("stairway").addHandler(kept)
    try:
        with in_process(fleet) as url:
            status, body, echoed = get(f"{url}/api/agents", fleet.admin, "probe-42.a")
            _, _, made = get(f"{url}/api/agents", fleet.admin)
            fine, _, other = get(f"{url}/api/policy", fleet.admin, "bad id with spaces")
    finally:
        logging.getLogger("stairway").removeHandler(kept)
    assert status == 500 and echoed == "probe-42.a"
    assert body == {"detail": "internal error", "request_id": "probe-42.a"}
    assert fine == 200 and other != "bad id with spaces" and len(other) == 32
    failed = [r for r in kept.records if r.levelno == logging.ERROR and r.exc_info]
    assert [r.request_id for r in failed] == ["probe-42.a", made]  # type: ignore[attr-defined]
    assert all(isinstance(r.exc_info[1], ValueError) for r in failed if r.exc_info)
    assert "no such state" in str(failed[0].exc_info[1] if failed[0].exc_info else "")


# --- the protocol's close codes ----------------------------------------------------------------


def enrolled(fleet: Fleet, agent_id: str) -> str:
    said = fleet.api("POST", "/api/enroll", {"agent_id": agent_id}, token=fleet.enroll)
    return str(said["credential"])


def session(fleet: Fleet, credential: str) -> ClientConnection:
    headers = {"Authorization": f"Bearer {credential}"}
    url = f"ws://127.0.0.1:{fleet.port}/agent/v1"
    return connect(url, additional_headers=headers, open_timeout=10)


def closed_with(socket: ClientConnection) -> tuple[int, list[Any]]:
    """Read until the server closes; its close code and what it said before."""
    said = []
    try:
        while True:
            said.append(json.loads(socket.recv(timeout=10)))
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code, said


def hello(agent_id: str) -> str:
    return Hello(agent_id=agent_id, version="1.0.0", protocol=1).wire()


@contextmanager
def welcomed(fleet: Fleet, credential: str, agent_id: str) -> Iterator[ClientConnection]:
    with session(fleet, credential) as socket:
        socket.send(hello(agent_id))
        assert json.loads(socket.recv(timeout=10))["type"] == "welcome"
        yield socket


def test_unknown_malformed_and_out_of_order_messages_close_with_their_codes(
    fleet: Fleet,
) -> None:
    fleet.start_server()
    credential = enrolled(fleet, "raw-1")
    with welcomed(fleet, credential, "raw-1") as socket:
        socket.send('{"type": "reboot"}')
        assert closed_with(socket) == (Close.UNKNOWN_TYPE, [])
    with welcomed(fleet, credential, "raw-1") as socket:
        socket.send(hello("raw-1"))
        assert closed_with(socket) == (Close.OUT_OF_ORDER, [])
    with session(fleet, credential) as socket:
        socket.send('{"type": "heartbeat"}')
        code, said = closed_with(socket)
        assert code == Close.OUT_OF_ORDER and said[0]["type"] == "refused"
        assert "say hello first" in said[0]["reason"]
    with session(fleet, credential) as socket:
        socket.send('{"type": "hello", "agent_id": "raw-1", "version": "1", "protocol": "1"}')
        code, said = closed_with(socket)
        assert code == Close.MALFORMED and "protocol" in said[0]["reason"]
    with welcomed(fleet, credential, "raw-1") as socket:
        socket.send('{"type": "heartbeat"}')  # a session that keeps to the protocol stays
        with pytest.raises(TimeoutError):
            socket.recv(timeout=1)


def test_a_failure_report_for_no_upgrade_is_out_of_order_and_changes_nothing(
    fleet: Fleet,
) -> None:
    fleet.start_server()
    credential = enrolled(fleet, "raw-2")
    with welcomed(fleet, credential, "raw-2") as socket:
        wait_until(lambda: fleet.connected() == {"raw-2"}, 30, "the agent online")
        report = {"type": "upgrade_failed", "version": "2.0.0", "stage": "verify", "reason": "x"}
        socket.send(json.dumps(report))
        assert closed_with(socket) == (Close.OUT_OF_ORDER, [])
    row = fleet.agent_rows()["raw-2"]
    assert (row["state"], row["failed_version"], row["message"]) == ("offline", None, "")
    actions = [entry["action"] for entry in fleet.api("GET", "/api/audit")]
    assert "agent.upgrade_failed" not in actions


# --- the transition table ---------------------------------------------------------------------


def test_the_transition_table_refuses_what_cannot_happen() -> None:
    with pytest.raises(TransitionRefused) as refused:
        states.after("a1", State.ONLINE, Event.BUILD_REFUSED)
    assert (refused.value.agent_id, refused.value.state) == ("a1", "online")
    assert refused.value.event == Event.BUILD_REFUSED.value and refused.value.hint
    for state, event in [
        (State.OFFLINE, Event.UPGRADE_SENT),
        (State.REFUSED, Event.UPGRADE_SENT),
        (State.ONLINE, Event.SILENT),
        (State.FAILED, Event.UNREACHABLE),
    ]:
        assert not states.allowed(state, event)
        with pytest.raises(TransitionRefused):
            states.after("a1", state, event)
    assert states.after("a1", State.UPGRADING, Event.ARRIVED) == State.ONLINE
    assert states.after("a1", State.UPGRADING, Event.GONE) == State.UPGRADING
    assert states.after("a1", State.FAILED, Event.UPGRADE_SENT) == State.UPGRADING
    assert all(set(table) <= set(State) for table in states.TRANSITIONS.values())
    assert set(states.TRANSITIONS) == set(Event), "every event has its row"


def test_the_recorder_applies_only_what_the_table_allows(tmp_path: Path, database_url: str) -> None:
    engine = context.open_context(fleet_site_free(tmp_path, database_url), None).engine
    with engine.begin() as conn:
        ensure_tables(conn)
        for agent_id in ("on", "off"):
            store.enroll(conn, agent_id, None)
        events.hello(conn, Hello(agent_id="on", version="1.0.0", protocol=1), "r1")
    with engine.begin() as conn, pytest.raises(TransitionRefused):
        events.failure(conn, "on", "verify", "2.0.0", "refused")
    with engine.begin() as conn:
        assert events.upgrade_sent(conn, ["on", "off"], "2.0.0", "test", "r1") == ["on"]
        rows = {row["agent_id"]: row for row in store.all_agents(conn)}
    assert (rows["on"]["state"], rows["on"]["failed_version"]) == ("upgrading", None)
    assert (rows["off"]["state"], rows["off"]["target"]) == ("offline", None)
    dispose_all()


def test_a_wave_is_sent_and_audited_in_the_order_the_evaluator_chose(database_url: str) -> None:
    chosen = ["relay-3", "relay-1", "relay-2"]  # not the order the rows were written in
    with engine_for(database_url).begin() as conn:
        ensure_tables(conn)
        for agent_id in sorted(chosen):
            store.enroll(conn, agent_id, None)
            events.hello(conn, Hello(agent_id=agent_id, version="1.0.0", protocol=1), "r1")
        assert events.upgrade_sent(conn, chosen, "2.0.0", "policy", "r1") == chosen
        sent = [e.data["agent"] for e in audit.entries(conn) if e.action == "agent.upgrade_run"]
    assert sent == chosen
    dispose_all()


def fleet_site_free(root: Path, database: str) -> Path:
    """A site of the people catalog at 2.0.0, with no server."""
    with fleet_site(root, database) as fleet:
        return fleet.site


def test_serve_with_json_logs_writes_only_json_lines_on_stderr_uvicorn_s_included(
    tmp_path: Path,
) -> None:
    """An operator shipping the server's logs as JSON gets every line as JSON: uvicorn's own
    records go through the same handler, and an answered request carries its request id."""
    with fleet_site(tmp_path, f"sqlite:///{tmp_path / 'site.db'}") as fleet:
        port = free_port()
        command = [sys.executable, "-m", "stairway", "-v", "--log-format", "json", "serve"]
        server = subprocess.Popen(
            [*command, "--port", str(port), "--site", str(fleet.site)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until(lambda: answers(f"http://127.0.0.1:{port}/health"), 30, "the server")
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/agents", headers={"X-Request-ID": "probe-42"}
            )
            with pytest.raises(urllib.error.HTTPError):  # no token: refused, and logged
                urllib.request.urlopen(request, timeout=10)
        finally:
            server.terminate()
            _, err = server.communicate(timeout=30)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert lines, "-v logs the server's start"
    assert any(line["logger"].startswith("uvicorn") for line in lines), "uvicorn's lines too"
    assert any(line.get("request_id") == "probe-42" for line in lines), lines
