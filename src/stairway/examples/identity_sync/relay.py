"""identity-sync's relay agent: runs beside a directory on a customer's host and carries its
changes to the identity-sync server. It embeds Stairway's agent runtime, so the control plane
sees it, upgrades it and rolls it back like any agent; its own readiness check (the spool it
relays from can be written) decides whether a new build is healthy.

When its ``agent.json`` names ``listen`` (or systemd passes it a socket), the relay also serves
its intake there (``intake.py``: the directory posts changes, ``GET /build`` says which build
serves). Before it re-executes into a new build it stops accepting and answers the requests in
flight; the listening socket stays open across the exec, so no connection is refused. On
SIGTERM (the supervisor stopping it, or rolling a bad build back) it does the same and exits.

``build(version, protocol, out)`` writes a relay build: a zipapp whose ``__main__`` runs this
module with its version and agent protocol baked in (1.x speaks protocol 2, 2.x protocol 3).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
import zipapp
from pathlib import Path

from stairway.errors import FleetError
from stairway.examples.identity_sync.intake import Intake
from stairway.fleet import listening
from stairway.fleet.agent import EXIT_REFUSED, Agent, AgentConfig

SOCKET_NAME = "relay"  # the socket's FileDescriptorName= when systemd passes several

MAIN = """import sys
from stairway.examples.identity_sync.relay import main
sys.exit(main({version!r}, {protocol}, sys.argv[1:]))
"""


def spool_writable(home: Path) -> bool:
    """The relay's readiness: its spool directory exists and takes a file.

    Raises:
        OSError: It does not; the error names the directory and why, and the agent reports it
            when it rolls the build back.
    """
    spool = home / "spool"
    spool.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=spool):
        return True


def main(version: str, protocol: int, argv: list[str]) -> int:
    """Run the relay agent with its home from ``--home DIR``; returns its exit code."""
    if len(argv) != 2 or argv[0] != "--home":
        print("usage: relay.pyz --home DIR", file=sys.stderr)
        return EXIT_REFUSED
    home = Path(argv[1])
    config = AgentConfig.load(home)
    try:
        listener = listening.listen(config.listen, SOCKET_NAME)
    except FleetError as err:
        print(f"error: {err.message}\nhint: {err.hint}", file=sys.stderr)
        return EXIT_REFUSED
    agent = Agent(home, version, protocol, config)
    agent.healthy = lambda: spool_writable(home)
    print(f"identity-sync relay {version} (agent protocol {protocol}), pid {os.getpid()}")
    return asyncio.run(_relay(agent, listener))


async def _relay(agent: Agent, listener: socket.socket | None) -> int:
    """Run the agent, and the intake on ``listener`` when there is one, until the agent ends
    or SIGTERM: then stop the intake (its requests answered) and exit 128 + SIGTERM."""
    if listener is None:
        return await agent.run()
    intake = Intake(agent.version, agent.home / "spool")
    intake.start(listener)
    agent.stop_serving = intake.stop
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    running = asyncio.create_task(agent.run())
    waiting = asyncio.create_task(stopped.wait())
    await asyncio.wait([running, waiting], return_when=asyncio.FIRST_COMPLETED)
    for task in (running, waiting):
        task.cancel()
    await asyncio.gather(running, waiting, return_exceptions=True)
    await intake.stop()
    if not running.cancelled():
        return running.result()  # the agent ended by itself (refused)
    return 128 + signal.SIGTERM


def build(version: str, protocol: int, out: Path) -> Path:
    """Write a relay build to ``out``: a zipapp with ``version`` and ``protocol`` baked in."""
    with tempfile.TemporaryDirectory() as source:
        (Path(source) / "__main__.py").write_text(
            MAIN.format(version=version, protocol=protocol), "utf-8"
        )
        zipapp.create_archive(source, out)
    return out
