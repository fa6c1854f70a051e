"""A relay that serves connections is upgraded, and rolled back, without refusing one: its
listening socket outlives its builds (``stairway.fleet.listening``)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cli_runner import stairway
from fleet_harness import Fleet, fleet_site, free_port, wait_until
from stairway.errors import FleetError
from stairway.examples.identity_sync import relay
from stairway.examples.identity_sync.intake import Intake
from stairway.fleet import listening
from stairway.fleet.agent import point_current, read_state, write_state

CLIENTS = 3  # threads asking each relay which build serves it
TIMEOUT = 5.0  # seconds per request: a hand-over takes a Python start, about one


@dataclass
class Clients:
    """Threads asking ``GET /build`` on one port in a loop, one connection per request,
    counting each outcome: the build that answered, or what went wrong."""

    port: int
    seen: list[str] = field(default_factory=list)  # builds in the order they answered
    failures: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Clients:
        for _ in range(CLIENTS):
            thread = threading.Thread(target=self._ask, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT * 2)

    def _ask(self) -> None:
        url = f"http://127.0.0.1:{self.port}/build"
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
                    version = str(json.loads(answer.read())["version"])
                with self._lock:
                    if not self.seen or self.seen[-1] != version:
                        self.seen.append(version)
            except (urllib.error.URLError, OSError, ValueError) as err:
                cause = getattr(err, "reason", err)
                with self._lock:
                    self.failures[type(cause).__name__] += 1

    def answered(self) -> bool:
        return bool(self.seen)


def _start_relay(fleet: Fleet, agent_id: str, build: Path, port: int, deadline: str) -> Path:
    listen = ("--listen", f"127.0.0.1:{port}", "--deadline", deadline)
    return fleet.start_agent(agent_id, build, product="identity-sync", options=listen)


def _upgrade(fleet: Fleet, agent_id: str) -> None:
    wait_until(lambda: _state(fleet, agent_id)[1] == "online", 20, f"{agent_id} online")
    fleet.api("POST", f"/api/agents/{agent_id}/upgrade")


def _serves(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/build", timeout=TIMEOUT):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _state(fleet: Fleet, agent_id: str) -> tuple[str, str]:
    row = fleet.agent_rows().get(agent_id, {})
    return row.get("version", ""), row.get("state", "")


@pytest.mark.heavy  # a control plane, two relays and a rollback deadline: a minute under load
def test_relays_are_upgraded_and_rolled_back_without_refusing_a_connection(
    tmp_path: Path, sqlite_database: str
) -> None:
    catalog = Path(relay.__file__).parent / "upgrades"
    with fleet_site(tmp_path, sqlite_database, source=catalog) as fleet:
        old = relay.build("1.0.4", 2, tmp_path / "relay-1.0.4.pyz")
        fleet.publish(relay.build("2.0.0", 3, tmp_path / "relay-2.0.0.pyz"), "2.0.0")
        fleet.start_server()
        up, back = free_port(), free_port()
        _start_relay(fleet, "relay-up", old, up, deadline="20")
        home = _start_relay(fleet, "relay-back", old, back, deadline="10")
        (home / "spool").write_text("a file where the spool goes: 2.0.0 is never ready")
        wait_until(lambda: _serves(up) and _serves(back), 20, "the relays to serve")
        with Clients(up) as upgraded, Clients(back) as rolled_back:
            for agent_id in ("relay-up", "relay-back"):
                _upgrade(fleet, agent_id)
            wait_until(lambda: _state(fleet, "relay-up") == ("2.0.0", "online"), 30, "2.0.0")
            wait_until(lambda: _state(fleet, "relay-back") == ("1.0.4", "failed"), 30, "rollback")
            wait_until(lambda: rolled_back.seen[-1:] == ["1.0.4"], 10, "1.0.4 serving again")
        assert upgraded.failures == Counter() and rolled_back.failures == Counter()
        assert upgraded.seen == ["1.0.4", "2.0.0"]
        assert rolled_back.seen == ["1.0.4", "2.0.0", "1.0.4"]
        assert "readiness check failed" in fleet.agent_rows()["relay-back"]["message"]


def test_a_rollback_hands_the_socket_back_to_the_previous_build(tmp_path: Path) -> None:
    """The supervisor holds the socket: the build on trial it stops leaves the connections that
    arrive meanwhile to the previous build it starts."""
    home, port = tmp_path / "home", free_port()
    (home / "builds").mkdir(parents=True)
    old = relay.build("1.0.4", 2, home / "builds" / "agent-1.0.4.pyz")
    new = relay.build("2.0.0", 3, home / "builds" / "agent-2.0.0.pyz")
    config = {"server": "ws://127.0.0.1:1", "agent_id": "relay-t", "credential": "x", "key": "k"}
    config |= {"product": "identity-sync", "listen": f"127.0.0.1:{port}"}
    (home / "agent.json").write_text(json.dumps(config))
    point_current(home, new)  # an upgrade the server never confirms: rolled back at the deadline
    trial = {"from": "1.0.4", "to": "2.0.0", "previous": str(old), "deadline": time.time() + 60}
    write_state(home, {"trial": trial})
    command = [sys.executable, "-m", "stairway", "agent", "run", "--home", str(home)]
    supervisor = subprocess.Popen(command)
    try:
        wait_until(lambda: _serves(port), 20, "the build on trial to serve")
        with Clients(port) as clients:
            wait_until(lambda: clients.seen == ["2.0.0"], 10, "the clients")
            write_state(home, {"trial": trial | {"deadline": time.time()}})  # it is due now
            wait_until(lambda: clients.seen[-1:] == ["1.0.4"], 20, "the previous build")
    finally:
        supervisor.terminate()
        supervisor.wait(TIMEOUT * 3)
    assert clients.failures == Counter()
    assert clients.seen == ["2.0.0", "1.0.4"]
    assert "within the deadline" in read_state(home)["rolled_back"]["reason"]


WRAPPER = """import os, sys
os.dup2(int(sys.argv[1]), 3)  # where systemd puts its first socket
os.environ.update(LISTEN_FDS="1", LISTEN_FDNAMES="relay", LISTEN_PID=str(os.getpid()))
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])  # the same pid: LISTEN_PID holds
"""


def test_the_relay_serves_on_the_socket_systemd_passes_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = {"server": "ws://127.0.0.1:1", "agent_id": "relay-sd", "credential": "x"}
    (home / "agent.json").write_text(json.dumps(config | {"key": "k", "product": "p"}))
    build = relay.build("1.0.4", 2, tmp_path / "relay.pyz")
    with socket.create_server(("127.0.0.1", 0)) as passed:  # bound here: no one else listens
        port = passed.getsockname()[1]
        command = [sys.executable, "-c", WRAPPER, str(passed.fileno()), str(build), "--home"]
        child = subprocess.Popen([*command, str(home)], pass_fds=(passed.fileno(),))
        try:
            url = f"http://127.0.0.1:{port}/build"
            with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:  # queued until it serves
                assert json.loads(answer.read()) == {"version": "1.0.4"}
        finally:
            child.terminate()
            assert child.wait(TIMEOUT) == 128 + 15, "it stopped serving and exited on SIGTERM"


@given(st.integers(1, 1 << 22), st.integers(1, 1 << 22), st.integers(1, 8))
def test_systemd_sockets_are_taken_only_by_the_process_they_were_passed_to(
    pid: int, other: int, count: int
) -> None:
    assume(pid != other)
    environ = {"LISTEN_PID": str(pid), "LISTEN_FDS": str(count)}
    assert listening.systemd_fd(environ, pid) == listening.FIRST_FD
    assert listening.systemd_fd(environ, other) is None
    assert listening.systemd_fd(environ | {"LISTEN_FDS": "0"}, pid) is None


@given(st.lists(st.text("abcdefgh", min_size=1, max_size=5), min_size=1, max_size=6, unique=True))
def test_a_named_systemd_socket_is_found_by_its_name(names: list[str]) -> None:
    environ = {"LISTEN_PID": "7", "LISTEN_FDS": str(len(names)), "LISTEN_FDNAMES": ":".join(names)}
    for index, name in enumerate(names):
        assert listening.systemd_fd(environ, 7, name) == listening.FIRST_FD + index
    with pytest.raises(FleetError, match="FileDescriptorName=missing"):
        listening.systemd_fd(environ, 7, "missing")


def test_an_inherited_descriptor_must_be_a_listening_socket(tmp_path: Path) -> None:
    with (tmp_path / "file").open("w") as file, socket.socket() as idle:
        for fd in (file.fileno(), idle.fileno()):
            os.environ[listening.INHERITED] = str(fd)
            try:
                with pytest.raises(FleetError, match=f"descriptor {fd}"):
                    listening.take()
            finally:
                os.environ.pop(listening.INHERITED)


@given(st.text(max_size=30))
def test_a_listen_address_is_a_host_and_a_port(text: str) -> None:
    host, colon, port = text.rpartition(":")
    valid = bool(colon and host and port.isdigit() and int(port) <= 65535)
    if valid:
        assert listening.Address.parse(text).port == int(port)
    else:
        with pytest.raises(FleetError, match="not a host and a port"):
            listening.Address.parse(text)


@pytest.mark.parametrize("address", ["127.0.0.1:0", "[::1]:0"])
def test_a_build_with_nothing_passed_binds_its_address_and_names_it_for_the_next(
    address: str,
) -> None:
    kept = dict(os.environ)
    try:
        bound = listening.listen(address)
        assert bound is not None and bound.get_inheritable()
        assert os.environ[listening.INHERITED] == str(bound.fileno())
        os.environ.pop(listening.INHERITED)  # a second build that was passed nothing
        taken = f"{address[:-1]}{bound.getsockname()[1]}"
        with bound, pytest.raises(FleetError, match=re.escape(f"cannot listen on {taken}")):
            listening.listen(taken)
    finally:
        os.environ.clear()
        os.environ.update(kept)


@pytest.mark.parametrize(
    ("option", "said"), [(("--listen", "8710"), "HOST:PORT"), (("--deadline", "0"), "--deadline")]
)
def test_enroll_refuses_a_bad_listen_address_or_deadline_before_writing(
    tmp_path: Path, option: tuple[str, str], said: str
) -> None:
    command = ["agent", "enroll", "--server", "ws://127.0.0.1:1", "--token", "t", "--id", "a"]
    command += ["--home", str(tmp_path / "home"), "--key", "k", "--product", "p", "--build", "b"]
    code, _, err = stairway(*command, *option)
    assert code == 2 and "Traceback" not in err
    assert "error:" in err and "hint:" in err and said in err
    assert not (tmp_path / "home").exists()


def test_the_intake_stops_without_closing_the_socket() -> None:
    """A stopped intake leaves connections in the backlog for whatever accepts next."""

    async def scenario(listener: socket.socket, port: int) -> bytes:
        intake = Intake("1.0.4", Path("/nonexistent"))
        intake.start(listener)
        await intake.stop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # queued, not refused
        writer.write(b"GET /build HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        again = Intake("2.0.0", Path("/nonexistent"))
        again.start(listener)
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        await again.stop()
        writer.close()
        return answer

    with socket.create_server(("127.0.0.1", 0)) as listener:
        answer = asyncio.run(scenario(listener, listener.getsockname()[1]))
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"version":"2.0.0"}')


async def _ask(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return answer


def test_the_intake_spools_a_posted_change_and_refuses_what_it_cannot_take(
    tmp_path: Path,
) -> None:
    async def scenario(listener: socket.socket, port: int) -> list[bytes]:
        intake = Intake("2.0.0", tmp_path / "spool")
        intake.start(listener)
        answers = [
            await _ask(port, b"POST /changes HTTP/1.1\r\nContent-Length: 5\r\n\r\nuid=7"),
            await _ask(port, b"POST /changes HTTP/1.1\r\n\r\n"),
            await _ask(port, b"POST /changes HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n"),
            await _ask(port, b"GET /elsewhere HTTP/1.1\r\n\r\n"),
        ]
        await intake.stop()
        return answers

    with socket.create_server(("127.0.0.1", 0)) as listener:
        answers = asyncio.run(scenario(listener, listener.getsockname()[1]))
    assert [answer.split(b" ", 2)[1] for answer in answers] == [b"202", b"400", b"413", b"404"]
    spooled = json.loads(answers[0].split(b"\r\n\r\n", 1)[1])["spooled"]
    assert (tmp_path / "spool" / spooled).read_bytes() == b"uid=7"
