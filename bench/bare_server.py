"""The fleet benchmark's baseline: the least a server must do for the same agents.

A FastAPI websocket endpoint on uvicorn that welcomes every hello (no credential check, no
database, no policy) and reads heartbeats; ``POST /upgrade-all`` sends every connected agent the
same signed offer at once; ``/artifacts/NAME`` serves the build. ``python -m bench.bare_server
PORT BUILDS VERSION``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse

from stairway.fleet.builds import find


def app(builds: Path, version: str, port: int) -> FastAPI:
    bare = FastAPI()
    sockets: dict[str, WebSocket] = {}

    @bare.websocket("/agent/v1")
    async def agent(socket: WebSocket) -> None:
        await socket.accept()
        hello = await socket.receive_json()
        agent_id = str(hello["agent_id"])
        sockets[agent_id] = socket
        await socket.send_json({"type": "welcome", "server_version": version, "heartbeat": 5.0})
        try:
            while True:
                await socket.receive_json()
        except WebSocketDisconnect:
            if sockets.get(agent_id) is socket:
                del sockets[agent_id]

    @bare.post("/upgrade-all")
    async def upgrade_all() -> dict[str, int]:
        build = find(builds, version)
        assert build is not None
        offer = build.offer(f"http://127.0.0.1:{port}").wire()
        sent = 0
        for socket in list(sockets.values()):
            await socket.send_text(offer)
            sent += 1
        return {"sent": sent}

    @bare.get("/artifacts/{name}")
    async def artifact(name: str) -> FileResponse:
        return FileResponse(builds / name)

    return bare


if __name__ == "__main__":
    port, builds, version = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    uvicorn.run(app(builds, version, port), host="127.0.0.1", port=port, log_level="warning")
