"""identity-sync's relay agent: runs beside a directory on a customer's host and carries its
changes to the identity-sync server. It embeds Stairway's agent runtime, so the control plane
sees it, upgrades it and rolls it back like any agent; its own readiness check (the spool it
relays from can be written) decides whether a new build is healthy.

``build(version, protocol, out)`` writes a relay build: a zipapp whose ``__main__`` runs this
module with its version and agent protocol baked in (1.x speaks protocol 2, 2.x protocol 3).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import zipapp
from pathlib import Path

from stairway.fleet.agent import EXIT_REFUSED, Agent, AgentConfig

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
    agent = Agent(home, version, protocol, AgentConfig.load(home))
    agent.healthy = lambda: spool_writable(home)
    print(f"identity-sync relay {version} (agent protocol {protocol}), pid {os.getpid()}")
    return asyncio.run(agent.run())


def build(version: str, protocol: int, out: Path) -> Path:
    """Write a relay build to ``out``: a zipapp with ``version`` and ``protocol`` baked in."""
    with tempfile.TemporaryDirectory() as source:
        (Path(source) / "__main__.py").write_text(
            MAIN.format(version=version, protocol=protocol), "utf-8"
        )
        zipapp.create_archive(source, out)
    return out
