"""``fleet``: many light agents against one ``stairway serve`` process on loopback (PostgreSQL).

Light agents are coroutines in two client processes (``bench.light_agents``) speaking the real
protocol: credential, hello, heartbeats, and on an upgrade the signature check, the download
and the SHA-256 check of a 1 MB build, then a reconnect on the new version. Measured:

- held: agents connected and heartbeating for 15 s (goal: 5,000 on two cores), and the server's
  memory per connected agent against a bare websocket server holding the same agents;
- upgrade: 1,000 agents in auto mode from 1.0.0 to 2.0.0, from the policy change to the last
  agent welcomed on 2.0.0 (goal: under 60 s), against the bare server sending every agent the
  same offer at once (no credentials, database, policy or audit: the least the work can cost).
  The ratio's bar (at most 3) is Stairway's own; the two absolute goals are the fleet's.

The upgrade runs ``MIN_REPEATS`` times on each server, alternating who goes first; before each
of Stairway's runs the policy is set back to manual, so the agents start on 1.0.0 unoffered.
Holding is measured once on each server (its figure is a count and a memory, not a time).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import MIN_REPEATS, Result, Sizes, TempDatabase, alternate, temp_database
from stairway import context, operations
from stairway.database import dispose_all
from stairway.fleet import builds, store, tokens
from stairway.fleet.policy import Policy
from stairway.fleet.tables import ensure_tables
from stairway.releases import generate_key

NAME = "fleet"
HELD_GOAL = 5_000
UPGRADE_GOAL_S = 60.0
RATIO_GOAL = 3.0
CLIENTS = 2
HOLD_S = 15.0
MANIFEST = """[product]
name = "bench"

[[release]]
version = "1.0.0"
schema = 1
agent_protocol = [1, 1]

[[release]]
version = "2.0.0"
schema = 1
agent_protocol = [1, 1]
"""


def run(sizes: Sizes) -> Result:
    quick = sizes.objects < 1_000_000
    held_count, upgrade_count = (300, 100) if quick else (HELD_GOAL, 1_000)
    with temp_database("fleet") as db, tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        site, key = _site(root, db)
        credentials = _enroll(site, held_count)
        held, memory = _held(root, site, key, credentials)
        bare_held, bare_memory = _held(root, site, key, credentials, bare=True)
        agents = credentials[:upgrade_count]
        runs = alternate(
            lambda: _upgrade(root, site, key, agents),
            lambda: _upgrade(root, site, key, agents, bare=True),
            MIN_REPEATS,
        )
        dispose_all()
    upgrade_s = max(runs.subject)
    return Result(
        name=NAME,
        subject=f"stairway serve: {upgrade_count:,} agents upgraded in auto mode",
        baseline=f"a bare websocket server sending the same {upgrade_count:,} agents the offer",
        runs=runs,
        goal=RATIO_GOAL,
        timings={"upgrade_s": list(runs.subject), "bare_upgrade_s": list(runs.baseline)},
        details={
            "agents_held": held,
            "bare_agents_held": bare_held,
            "server_kib_per_agent": memory,
            "bare_kib_per_agent": bare_memory,
        },
        notes=[
            f"held {held:,} agents with heartbeats (bare server: {bare_held:,}); memory "
            f"{memory:.1f} KiB per agent, {memory / max(bare_memory, 0.1):.2f} of the bare "
            f"server's {bare_memory:.1f} KiB",
        ],
        absolute={
            "agents held": (float(held), ">=", float(held_count)),
            f"seconds to upgrade {upgrade_count:,} agents (slowest run)": (
                upgrade_s,
                "<=",
                UPGRADE_GOAL_S,
            ),
        },
    )


def _site(root: Path, db: TempDatabase) -> tuple[Path, Path]:
    catalog = root / "catalog"
    (catalog / "schema").mkdir(parents=True)
    (catalog / "stairway.toml").write_text(MANIFEST, "utf-8")
    (catalog / "schema" / "0001_objects.sql").write_text(
        "-- phase: offline\nCREATE TABLE notes (id INTEGER PRIMARY KEY);\n", "utf-8"
    )
    site = root / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "{db.url}"\ncatalog = "{catalog}"\n\n'
        f'[fleet]\nbuilds = "{root / "builds"}"\nheartbeat = 5\ndeadline = 300\n',
        "utf-8",
    )
    operations.init(context.open_context(site, None), "2.0.0")
    private, public = generate_key(root / "keys")
    build = root / "agent-2.0.0.pyz"
    build.write_bytes(os.urandom(1 << 20))
    builds.publish(root / "builds", private, build, "bench", "2.0.0")
    return site, public


def _enroll(site: Path, count: int) -> list[tuple[str, str]]:
    """Agents and their credentials, written straight to the site database."""
    ctx = context.open_context(site, None)
    found = []
    with ctx.engine.begin() as conn:
        ensure_tables(conn)
        for n in range(count):
            agent_id = f"light-{n:05d}"
            store.enroll(conn, agent_id, None)
            found.append((agent_id, tokens.issue(conn, tokens.TokenKind.AGENT, agent_id, agent_id)))
    dispose_all()
    return found


def _held(
    root: Path, site: Path, key: Path, credentials: list[tuple[str, str]], bare: bool = False
) -> tuple[int, float]:
    with _server(root, site, bare) as (port, pid):
        before = _rss_kib(pid)
        with _clients(root, port, key, credentials, "1.0.0") as tallies:
            _wait(lambda: _sum(tallies, "welcomed") >= len(credentials), 300)
            time.sleep(HOLD_S)
            held = _sum(tallies, "welcomed")
            after = _rss_kib(pid)
    return held, (after - before) / max(held, 1)


def _upgrade(
    root: Path, site: Path, key: Path, credentials: list[tuple[str, str]], bare: bool = False
) -> float:
    if not bare:
        _manual(site)
    with (
        _server(root, site, bare) as (port, _pid),
        _clients(root, port, key, credentials, "1.0.0") as tallies,
    ):
        _wait(lambda: _sum(tallies, "welcomed") >= len(credentials), 300)
        started = time.perf_counter()
        if bare:
            _call(port, "POST", "/upgrade-all", None, None)
        else:
            admin = _admin_token(site)
            body = {"mode": "auto", "interval": 0.5}
            _call(port, "PUT", "/api/policy", body, admin)
        _wait(lambda: _on_target(tallies) >= len(credentials), 600)
        return time.perf_counter() - started


def _manual(site: Path) -> None:
    """The policy back to its default (manual, no rollout), as before the first run."""
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        ensure_tables(conn)
        store.write_policy(conn, Policy())
    dispose_all()


def _admin_token(site: Path) -> str:
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        token = tokens.issue(conn, tokens.TokenKind.ADMIN, "bench")
    dispose_all()
    return token


@contextmanager
def _server(root: Path, site: Path, bare: bool) -> Iterator[tuple[int, int]]:
    port = _free_port()
    if bare:
        command = [sys.executable, "-m", "bench.bare_server", str(port), str(root / "builds")]
        command.append("2.0.0")
    else:
        command = [sys.executable, "-m", "stairway", "serve", "--port", str(port)]
        command += ["--site", str(site)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        _wait(lambda: _answers(port), 60)
        yield port, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def _clients(
    root: Path, port: int, key: Path, credentials: list[tuple[str, str]], version: str
) -> Iterator[list[Path]]:
    outs, processes = [], []
    for n in range(CLIENTS):
        spec = root / f"clients-{n}.json"
        out = root / f"clients-{n}.out.json"
        out.unlink(missing_ok=True)
        spec.write_text(
            json.dumps(
                {
                    "url": f"ws://127.0.0.1:{port}/agent/v1",
                    "agents": credentials[n::CLIENTS],
                    "version": version,
                    "key": str(key),
                    "product": "bench",
                    "out": str(out),
                }
            )
        )
        outs.append(out)
        processes.append(subprocess.Popen([sys.executable, "-m", "bench.light_agents", str(spec)]))
    try:
        yield outs
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _tally(path: Path) -> dict[str, Any]:
    try:
        value: dict[str, Any] = json.loads(path.read_bytes())
        return value
    except (FileNotFoundError, ValueError):
        return {}


def _sum(outs: list[Path], key: str) -> int:
    return sum(int(_tally(out).get(key, 0)) for out in outs)


def _on_target(outs: list[Path]) -> int:
    return sum(
        sum(1 for v in _tally(out).get("versions", {}).values() if v == "2.0.0") for out in outs
    )


def _rss_kib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1])
    return 0.0


def _call(port: int, method: str, path: str, body: Any, token: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _answers(port: int) -> bool:
    """Whether the server answers HTTP at all: the bare server has no ``/health``, and any
    status, a 404 included, says it is up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(check: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"the fleet benchmark timed out after {seconds:.0f} s")
