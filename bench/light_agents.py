"""Light agents: many coroutines speaking the agent protocol, for the fleet benchmark.

``python -m bench.light_agents SPEC.json`` runs the agents listed in the spec in one process and
writes what they saw to the spec's ``out`` file every second. Each agent connects with its
credential, says hello, answers the welcome with heartbeats, and, on an upgrade message, does
what a real agent does short of re-executing: checks the manifest's signature, downloads the
build, checks its size and SHA-256, then reconnects saying hello with the new version.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from stairway.fleet.builds import check_offer


class Tally:
    def __init__(self) -> None:
        self.welcomed: dict[str, float] = {}  # agent -> when it was last welcomed
        self.versions: dict[str, str] = {}
        self.heartbeats = 0
        self.offered: dict[str, float] = {}  # agent -> when its upgrade offer came
        self.downloaded: dict[str, float] = {}  # agent -> when its build was checked
        self.errors: list[str] = []


async def agent(spec: dict[str, Any], agent_id: str, credential: str, tally: Tally) -> None:
    version = spec["version"]
    while True:
        try:
            offer = await _session(spec, agent_id, credential, version, tally)
        except Exception as err:  # a benchmark client records any failure and retries
            tally.errors.append(f"{agent_id}: {type(err).__name__}: {err}")
            await asyncio.sleep(1.0)
            continue
        if offer is None:
            return
        tally.offered[agent_id] = time.time()
        version = await asyncio.to_thread(_take, spec, credential, offer)
        tally.downloaded[agent_id] = time.time()


async def _session(
    spec: dict[str, Any], agent_id: str, credential: str, version: str, tally: Tally
) -> dict[str, Any] | None:
    headers = {"Authorization": f"Bearer {credential}"}
    async with connect(spec["url"], additional_headers=headers, open_timeout=60) as socket:
        hello = {"type": "hello", "agent_id": agent_id, "version": version, "protocol": 1}
        await socket.send(orjson.dumps(hello).decode())
        welcome = orjson.loads(await socket.recv())
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"refused: {welcome}")
        tally.welcomed[agent_id] = time.time()
        tally.versions[agent_id] = version
        beat = asyncio.create_task(_beat(socket, float(welcome["heartbeat"]), tally))
        try:
            async for raw in socket:
                message = orjson.loads(raw)
                if message.get("type") == "upgrade":
                    return dict(message)
        finally:
            beat.cancel()
    return None


async def _beat(socket: ClientConnection, every: float, tally: Tally) -> None:
    while True:
        await asyncio.sleep(every)
        await socket.send('{"type":"heartbeat"}')
        tally.heartbeats += 1


def _take(spec: dict[str, Any], credential: str, offer: dict[str, Any]) -> str:
    manifest = check_offer(Path(spec["key"]), offer, spec["product"])
    request = urllib.request.Request(
        str(offer["url"]), headers={"Authorization": f"Bearer {credential}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
    if len(body) != manifest.size or hashlib.sha256(body).hexdigest() != manifest.sha256:
        raise RuntimeError("the build does not match its manifest")
    return manifest.version


async def main(spec_path: Path) -> None:
    spec = orjson.loads(spec_path.read_bytes())
    tally = Tally()
    tasks = []
    for agent_id, credential in spec["agents"]:
        tasks.append(asyncio.create_task(agent(spec, agent_id, credential, tally)))
        if len(tasks) % 100 == 0:
            await asyncio.sleep(0.05)  # a ramp, not a storm on the listen backlog
    out = Path(spec["out"])
    while True:
        summary = {
            "welcomed": len(tally.welcomed),
            "versions": tally.versions,
            "welcomed_at": tally.welcomed,
            "offered_at": tally.offered,
            "downloaded_at": tally.downloaded,
            "heartbeats": tally.heartbeats,
            "errors": tally.errors[-20:],
            "error_count": len(tally.errors),
        }
        out.write_bytes(orjson.dumps(summary))
        await asyncio.sleep(1.0)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
