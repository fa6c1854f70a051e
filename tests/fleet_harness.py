"""A real control plane and real agents on loopback: subprocesses, zipapp builds, HTTP calls."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipapp
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import prestarted
from example_sites import PRESTARTED
from stairway import context, operations, releases
from stairway.database import dispose_all

CATALOG = Path(__file__).parent / "catalogs" / "people"
AGENT_MAIN = """import sys
from stairway.fleet.agent import main
sys.exit(main({version!r}, {protocol}))
"""
BROKEN_MAIN = "raise SystemExit('this build is broken')\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_build(where: Path, version: str, protocol: int = 1, broken: bool = False) -> Path:
    source = where / f"src-{version}{'-broken' if broken else ''}"
    source.mkdir(parents=True)
    text = BROKEN_MAIN if broken else AGENT_MAIN.format(version=version, protocol=protocol)
    (source / "__main__.py").write_text(text, "utf-8")
    target = where / f"agent-{version}{'-broken' if broken else ''}.pyz"
    zipapp.create_archive(source, target)
    return target


@dataclass
class Fleet:
    root: Path
    site: Path
    key: Path  # release.key
    public: Path  # release.pub
    port: int = 0
    server: subprocess.Popen[bytes] | None = None
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)
    admin: str = ""
    enroll: str = ""
    tls: ssl.SSLContext | None = None  # the test's own client context when the server is TLS

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        command = [*args, "--site", str(self.site)]
        if PRESTARTED:  # forked from a process that imported the CLI once: seconds saved a call
            done = prestarted.run(command, dict(os.environ), timeout=300)
        else:
            done = subprocess.run(
                [sys.executable, "-m", "stairway", *command], capture_output=True, text=True
            )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def token(self, kind: str) -> str:
        said = self.cli("tokens", "create", "--kind", kind, "--label", f"test-{kind}", "--json")
        return str(json.loads(said)["token"])

    def publish(self, build: Path, version: str) -> None:
        self.cli("agent", "publish", str(build), "--version", version, "--key", str(self.key))

    def start_server(self, public_url: str | None = None, options: tuple[str, ...] = ()) -> None:
        self.port = self.port or free_port()
        command = [sys.executable, "-m", "stairway", "serve", "--port", str(self.port), *options]
        if public_url:
            command += ["--public-url", public_url]
        self.server = subprocess.Popen([*command, "--site", str(self.site)])
        health = f"{self.url}/health"
        wait_until(lambda: answers(health, self.tls), 30, "the control plane to start")

    def start_replica(self) -> tuple[subprocess.Popen[bytes], int]:
        """Another ``stairway serve`` over the same site database."""
        port = free_port()
        command = [sys.executable, "-m", "stairway", "serve", "--port", str(port)]
        replica = subprocess.Popen([*command, "--site", str(self.site)])
        self.agents.append(replica)  # stopped with the rest
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{url}/health"), 30, "the replica to start")
        return replica, port

    def start_agent(
        self,
        agent_id: str,
        build: Path,
        port: int | None = None,
        product: str = "people",
        options: tuple[str, ...] = (),
        server: str | None = None,
    ) -> Path:
        home = self.enroll_agent(agent_id, build, port, product, options, server)
        self.run_agent(home)
        return home

    def enroll_agent(
        self,
        agent_id: str,
        build: Path,
        port: int | None = None,
        product: str = "people",
        options: tuple[str, ...] = (),
        server: str | None = None,
    ) -> Path:
        """``stairway agent enroll`` into a home of its own, which it returns."""
        home = self.root / "agents" / agent_id
        command = [
            "agent",
            "enroll",
            "--server",
            server or f"{'wss' if self.tls else 'ws'}://127.0.0.1:{port or self.port}",
            "--token",
            self.enroll,
            "--id",
            agent_id,
            "--home",
            str(home),
            "--key",
            str(self.public),
            "--product",
            product,
            "--build",
            str(build),
            *options,
        ]
        if PRESTARTED:  # forked from a process that imported the CLI once
            enrolled = prestarted.run(command, dict(os.environ), timeout=300)
        else:
            enrolled = subprocess.run(
                [sys.executable, "-m", "stairway", *command], capture_output=True, text=True
            )
        assert enrolled.returncode == 0, enrolled.stderr
        return home

    def run_agent(self, home: Path) -> None:
        """``stairway agent run`` of an enrolled agent, as a process of its own."""
        command = [sys.executable, "-m", "stairway", "agent", "run", "--home", str(home)]
        self.agents.append(subprocess.Popen(command))

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        port: int | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token or self.admin:
            headers["Authorization"] = f"Bearer {token or self.admin}"
        base = f"http://127.0.0.1:{port}" if port else self.url
        request = urllib.request.Request(base + path, data, headers, method=method)
        with urllib.request.urlopen(request, timeout=30, context=self.tls) as response:
            return json.loads(response.read())

    def agent_rows(self) -> dict[str, dict[str, Any]]:
        return {row["agent_id"]: row for row in self.api("GET", "/api/agents")}

    def connected(self) -> set[str]:
        return {name for name, row in self.agent_rows().items() if row["connected"]}

    def stop(self) -> None:
        for process in [*self.agents, *([self.server] if self.server else [])]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.agents, *([self.server] if self.server else [])]:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def answers(url: str, tls: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=tls):
            return True
    except (urllib.error.URLError, OSError):
        return False


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def fleet_site(
    root: Path, database: str, fleet_options: str = "", source: Path = CATALOG
) -> Iterator[Fleet]:
    """A site at 2.0.0 of ``source``; the people catalog's 2.0.0 is made to accept agent
    protocols 1 and 2."""
    catalog = root / "catalog"
    shutil.copytree(source, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = catalog / "stairway.toml"
    manifest.write_text(
        manifest.read_text().replace(
            'version = "2.0.0"\nschema = 1\n',
            'version = "2.0.0"\nschema = 1\nagent_protocol = [1, 2]\n',
        )
    )
    key, public = releases.generate_key(root / "keys")
    site = root / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "{database}"\ncatalog = "{catalog}"\n\n'
        f'[fleet]\nbuilds = "{root / "builds"}"\nheartbeat = 1\n{fleet_options}\n',
        "utf-8",
    )
    operations.init(context.open_context(site, None), "2.0.0")
    dispose_all()
    fleet = Fleet(root, site, key, public)
    fleet.admin = fleet.token("admin")
    fleet.enroll = fleet.token("enroll")
    try:
        yield fleet
    finally:
        fleet.stop()
        os.environ.pop("STAIRWAY_FAULT", None)
