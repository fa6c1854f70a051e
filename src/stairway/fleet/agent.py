"""The agent runtime: connect, say hello, keep a heartbeat, and take upgrades by itself.

A product's agent build calls ``main(version, protocol)`` (or embeds ``Agent``). The agent's
home holds ``agent.json`` (server, id, credential, trusted key, product), ``builds/`` and the
``current`` link to the running build, and ``state.json``. On every connect it says hello
``{agent_id, version, protocol}``; it reconnects with exponential backoff and jitter. On an
upgrade message it checks the signature of the build's manifest with the key it trusts,
downloads the build, checks its size and SHA-256, writes it atomically (temporary file, fsync,
rename), keeps the previous build, records a trial with a deadline, points ``current`` at the
new build and re-executes itself. The new build ends the trial when the server welcomes it; if
it does not within the deadline, the supervisor (``stairway agent run``) goes back to the
previous build and the agent's next hello says why. Before it goes, it snapshots the plug-in
directories it holds that the offer says the new release moves, and tells the server; it puts
one back when the server asks (``stairway.fleet.agent_plugins``), journaled so that a restore
a kill interrupted is finished or undone when the agent starts again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

from stairway.errors import MessageRefused, PluginError, ReleaseError
from stairway.files import sync_directory, write_atomic
from stairway.fleet import agent_plugins, restore_intent
from stairway.fleet.agent_plugins import SnapshotRefused
from stairway.fleet.builds import build_name, check_offer
from stairway.fleet.messages import (
    PATH,
    Close,
    Heartbeat,
    Hello,
    Message,
    PluginRestored,
    PluginRollback,
    PluginSnapshotted,
    Refused,
    RolledBack,
    Upgrade,
    UpgradeFailed,
    Welcome,
    parse,
)
from stairway.fleet.tls import AgentTLS, client_context
from stairway.releases import sha256_of

log = logging.getLogger(__name__)
EXIT_REFUSED = 2  # the server refused this agent: retrying would not help
DEADLINE = 60.0  # seconds a new build has to be welcomed before it is rolled back


@dataclass(frozen=True)
class AgentConfig:
    """The agent's ``agent.json``, written by ``stairway agent enroll``.

    Attributes:
        server: The control plane's address, ``ws://host:port`` or ``wss://host:port`` (with
            the mount prefix of a product that mounts it).
        agent_id: The agent's id at the control plane.
        credential: The agent's own credential, sent as a bearer token.
        key: The product's release public key (``release.pub``) that signs its builds.
        product: The product whose builds the agent accepts.
        deadline: Seconds a new build has to be welcomed by the server before the supervisor
            rolls it back.
        ca: The CA the server's certificate must chain to (``wss://``); None: the system CAs.
        cert: This agent's certificate, for mutual TLS.
        cert_key: The private key of ``cert``.
        listen: ``host:port`` where the product's agent serves connections, when it does; the
            supervisor binds it (unless systemd passed a socket) and hands the socket to every
            build it starts, so a rollback keeps it open.
        data_dir: The product's data directory on this host, where its plug-ins live (each
            at the directory its ``[[plugin]]`` names); None: the agent holds no plug-ins.
    """

    server: str  # ws://host:port or wss://host:port
    agent_id: str
    credential: str
    key: Path  # the product's release.pub
    product: str
    deadline: float = DEADLINE
    ca: Path | None = None  # the CA the server's certificate must chain to (wss://)
    cert: Path | None = None  # this agent's certificate, for mutual TLS
    cert_key: Path | None = None
    listen: str | None = None  # host:port the product's agent serves on
    data_dir: Path | None = None  # where the product's plug-ins live on this host

    @classmethod
    def load(cls, home: Path) -> AgentConfig:
        """Read ``agent.json`` from the agent's home; its file names are relative to the home.

        Args:
            home: The agent's home directory.

        Raises:
            OSError: The file cannot be read.
            orjson.JSONDecodeError: The file is not JSON.
            TypeError: The file lacks a required key or holds an unknown one.
        """
        data = orjson.loads((home / "agent.json").read_bytes())
        for name in ("key", "ca", "cert", "cert_key", "data_dir"):
            if data.get(name):
                data[name] = home / data[name]  # an absolute name stays as it is
        return cls(**data)

    @property
    def tls(self) -> AgentTLS:
        """The TLS files the agent's connections use."""
        return AgentTLS(self.ca, self.cert, self.cert_key)


@dataclass
class Backoff:
    """Exponential backoff with full jitter, reset by a successful connect.

    Attributes:
        base: Seconds of the first wait's ceiling, doubled on every attempt.
        cap: The highest ceiling, in seconds.
        attempt: Attempts since the last successful connect.
    """

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt: uniform between 0 and the ceiling."""
        self.attempt += 1
        return random.uniform(0, min(self.cap, self.base * 2**self.attempt))


@dataclass
class Agent:
    """One agent process: connects, says hello, keeps a heartbeat and takes upgrades.

    Attributes:
        home: The agent's home directory (``agent.json``, ``builds/``, ``current``,
            ``state.json``).
        version: The version of the running build.
        protocol: The agent protocol the running build speaks.
        config: The agent's configuration, read from its home.
        healthy: The product's own readiness check; a trial of a new build ends well only
            when it answers True once the server welcomed the build. When it answers False or
            raises, what it said is recorded with the trial, so that a rollback names it.
        stop_serving: What a product that serves connections does before the agent
            re-executes into a new build: stop accepting and finish the requests in flight.
            Its listening socket stays open across the exec (``stairway.fleet.listening``),
            so connections wait in the backlog instead of being refused.
        backoff: The waits between reconnects.
        refused: Why the server refused the agent; None while it has not.
    """

    home: Path
    version: str
    protocol: int
    config: AgentConfig
    healthy: Callable[[], bool] = lambda: True  # the product's own readiness check
    stop_serving: Callable[[], Awaitable[None]] = lambda: _nothing()
    backoff: Backoff = field(default_factory=Backoff)
    refused: str | None = None

    async def run(self) -> int:
        """Serve until refused (exit 2); connection problems are retried, never fatal.

        On an upgrade offer it verifies and downloads the build, starts a trial and
        re-executes itself as the new build: this call then never returns. A build that fails
        its check is reported to the server and the agent keeps running.

        Returns:
            2 once the server refused the agent: retrying would not help.
        """
        self._settle_restores()
        while self.refused is None:
            try:
                await self._connection()
            except (OSError, websockets.WebSocketException, TimeoutError) as err:
                log.warning("agent %s: %s; retrying", self.config.agent_id, err)
            if self.refused is None:
                await asyncio.sleep(self.backoff.next())
        log.error("agent %s refused: %s", self.config.agent_id, self.refused)
        return EXIT_REFUSED

    def _settle_restores(self) -> None:
        """A plug-in restore a kill interrupted is finished or undone before anything else."""
        try:
            restore_intent.settle(self.home)
        except OSError as err:  # tried again before the next restore or upgrade snapshot
            log.error("agent %s: cannot settle a plug-in restore: %s", self.config.agent_id, err)

    async def _connection(self) -> None:
        headers = {"Authorization": f"Bearer {self.config.credential}"}
        url = self.config.server.rstrip("/") + PATH
        tls = client_context(url, self.config.tls)
        async with connect(url, additional_headers=headers, open_timeout=10, ssl=tls) as socket:
            try:
                await self._session(socket)
            except MessageRefused as err:
                log.warning("agent %s: %s; closing with %d", self.config.agent_id, err, err.close)
                await socket.close(code=err.close, reason=err.message[:120])

    async def _session(self, socket: ClientConnection) -> None:
        """Hello, then the server's welcome or refusal, then its upgrade offers."""
        await socket.send(self._hello().wire())
        answer = parse(await asyncio.wait_for(socket.recv(), timeout=30))
        if isinstance(answer, Refused):
            self.refused = answer.reason
            return
        if not isinstance(answer, Welcome):
            raise _out_of_order(answer, "the welcome")
        self._welcomed()
        beat = asyncio.create_task(_heartbeats(socket, answer.heartbeat))
        try:
            async for raw in socket:
                message = parse(raw)
                if isinstance(message, Upgrade):
                    await self._upgrade(socket, message)
                elif isinstance(message, PluginRollback):
                    await socket.send((await asyncio.to_thread(self._restore, message)).wire())
                else:
                    raise _out_of_order(message, "an upgrade or a plug-in rollback")
        finally:
            beat.cancel()

    def _hello(self) -> Hello:
        rolled_back = read_state(self.home).get("rolled_back")
        return Hello(
            agent_id=self.config.agent_id,
            version=self.version,
            protocol=self.protocol,
            rolled_back=RolledBack.model_validate(rolled_back) if rolled_back else None,
        )

    def _welcomed(self) -> None:
        """The server took our hello: a trial of this build ends well when its readiness check
        passes (what the check said is recorded with the trial when it does not); a rollback
        is told."""
        self.backoff.attempt = 0
        state = read_state(self.home)
        trial: dict[str, Any] = state.get("trial") or {}
        if trial.get("to") == self.version:
            failed = readiness(self.healthy)
            if failed is not None:
                log.warning("agent %s: %s", self.config.agent_id, failed)
                write_state(self.home, {"trial": trial | {"welcomed": True, "readiness": failed}})
                return
            write_state(self.home, {})
        elif state.get("rolled_back"):
            write_state(self.home, {})

    async def _upgrade(self, socket: ClientConnection, offer: Upgrade) -> None:
        version = str(offer.manifest.get("version"))
        log.info("agent %s: offered %s", self.config.agent_id, version)
        try:
            build = await asyncio.to_thread(self._fetch, offer)
            taken = await asyncio.to_thread(self._snapshot, offer)
        except _Failure as failure:
            log.warning("agent %s: %s (%s)", self.config.agent_id, failure.reason, failure.stage)
            report = UpgradeFailed(version=version, stage=failure.stage, reason=failure.reason)
            await socket.send(report.wire())
            return
        for snapshot in taken:  # told before the socket closes: the server records them first
            await socket.send(snapshot.wire())
        self._start_trial(build, version)
        await socket.close()
        await self.stop_serving()
        reexecute(build, self.home)

    def _fetch(self, offer: Upgrade) -> Path:
        try:
            manifest = check_offer(self.config.key, offer, self.config.product)
        except ReleaseError as err:
            raise _Failure("verify", err.message) from None
        builds = self.home / "builds"
        builds.mkdir(exist_ok=True)
        target = builds / build_name(manifest.version)
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=builds)
        temporary = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                url = offer.url
                _download(url, self.config.credential, out, client_context(url, self.config.tls))
                out.flush()
                os.fsync(out.fileno())
            if temporary.stat().st_size != manifest.size or sha256_of(temporary) != manifest.sha256:
                raise _Failure("verify", f"{target.name} does not match its signed SHA-256")
            os.replace(temporary, target)
            sync_directory(builds)
        finally:
            temporary.unlink(missing_ok=True)
        return target

    def _snapshot(self, offer: Upgrade) -> list[PluginSnapshotted]:
        """The plug-in directories the offer moves, snapshotted; a reason to refuse it when
        one cannot be."""
        try:
            taken = agent_plugins.snapshot_all(self.home, self.config.data_dir, offer.plugins or [])
        except SnapshotRefused as refused:
            raise _Failure("snapshot", refused.reason) from None
        return [
            PluginSnapshotted(plugin=s.plugin, version=s.version, snapshot=s.id, files=len(s.files))
            for s in taken
        ]

    def _restore(self, asked: PluginRollback) -> PluginRestored:
        """Put a plug-in back as the server asks; what happened, as the answer to send."""
        try:
            done = agent_plugins.restore(self.home, self.config.data_dir, asked)
        except (PluginError, OSError) as err:
            reason = err.message if isinstance(err, PluginError) else str(err)
            log.warning(
                "agent %s: plug-in %s not put back: %s", self.config.agent_id, asked.plugin, reason
            )
            return PluginRestored(request=asked.request, reason=reason)
        log.info(
            "agent %s: plug-in %s put back from %s", self.config.agent_id, asked.plugin, done.id
        )
        return PluginRestored(request=asked.request, snapshot=done.id)

    def _start_trial(self, build: Path, version: str) -> None:
        current = self.home / "current"
        previous = os.readlink(current) if current.is_symlink() else None
        trial = {
            "from": self.version,
            "to": version,
            "previous": previous,
            "deadline": time.time() + self.config.deadline,
        }
        write_state(self.home, {"trial": trial})
        point_current(self.home, build)


def readiness(check: Callable[[], bool]) -> str | None:
    """Run the product's readiness check: None when it passes, else what it said: that it
    answered False, or the error it raised."""
    try:
        ready = check()
    except Exception as err:  # the product's own code: whatever it raises is its answer
        return f"the readiness check failed: {type(err).__name__}: {err}"
    return None if ready else "the readiness check answered that the build is not ready"


async def _nothing() -> None:
    """The agent serves no connections of its own: nothing to stop before an exec."""


@dataclass
class _Failure(Exception):
    stage: Literal["download", "verify", "snapshot"]  # unreachable (pending), or refused
    reason: str


def _out_of_order(message: Message, expected: str) -> MessageRefused:
    said = f"the server sent {message.type} where {expected} comes"
    return MessageRefused(said, close=Close.OUT_OF_ORDER)


def _download(url: str, credential: str, out: Any, tls: ssl.SSLContext | None) -> None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {credential}"})
    try:
        with urllib.request.urlopen(request, timeout=30, context=tls) as response:
            while block := response.read(1 << 20):
                out.write(block)
    except (urllib.error.URLError, OSError) as err:
        raise _Failure(
            "download",
            f"cannot download {url}: {err}. Upgrade by hand: copy the build, its release "
            "manifest and signature from the server's builds directory to this host and run "
            "`stairway agent install DIR --version VERSION --home HOME`",
        ) from None


async def _heartbeats(socket: ClientConnection, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await socket.send(Heartbeat().wire())


# --- the home directory ----------------------------------------------------------------------


def read_state(home: Path) -> dict[str, Any]:
    """What the agent remembers across restarts (a trial of a build, a rollback to report); empty
    when nothing is recorded.
    """
    path = home / "state.json"
    if not path.is_file():
        return {}
    value = orjson.loads(path.read_bytes())
    return value if isinstance(value, dict) else {}


def write_state(home: Path, state: dict[str, Any]) -> None:
    """Replace what the agent remembers across restarts with ``state``, atomically."""
    write_atomic(home / "state.json", orjson.dumps(state))


def point_current(home: Path, build: Path) -> None:
    """Swap the ``current`` link in one rename."""
    link = home / "current.new"
    link.unlink(missing_ok=True)
    link.symlink_to(build)
    os.replace(link, home / "current")
    sync_directory(home)


def reexecute(build: Path, home: Path) -> None:
    """Become the new build: same process, so the supervisor keeps watching it."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, str(build), "--home", str(home)])


def main(version: str, protocol: int, argv: list[str] | None = None) -> int:
    """The entry point of an agent build: ``python agent-V.pyz --home DIR``.

    Args:
        version: The build's version.
        protocol: The agent protocol the build speaks.
        argv: The command-line arguments; ``sys.argv[1:]`` when None.

    Returns:
        The process's exit code: 2 when the arguments are wrong or the server refused the
            agent.
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2 or args[0] != "--home":
        log.error("usage: agent.pyz --home DIR")
        return EXIT_REFUSED
    home = Path(args[1])
    agent = Agent(home, version, protocol, AgentConfig.load(home))
    return asyncio.run(agent.run())
