"""The relay's intake: where the directory hands the relay its changes, over HTTP on a socket
that outlives the relay's builds.

``GET /build`` answers which relay build serves (``{"version": ...}``); ``POST /changes``
spools the body for the relay to carry (202). One request per connection (``Connection:
close``). ``stop`` stops accepting without closing the listening socket and returns once the
requests in flight are answered, so the next build (an upgrade's exec, or the build the
supervisor starts after a rollback) takes the connections that waited in the backlog meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson

HEAD_LIMIT = 16 * 1024  # bytes of request line and headers
BODY_LIMIT = 1 << 20  # bytes of one spooled change
READ_TIMEOUT = 10.0  # seconds a client has to send its request
STOP_LIMIT = 8.0  # seconds to finish the requests in flight; the supervisor kills after 10
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 413: "Too Large"}


@dataclass
class Intake:
    """The relay's HTTP intake on a listening socket it does not own.

    Attributes:
        version: The relay build that serves.
        spool: The directory changes are spooled to.
    """

    version: str
    spool: Path
    _listener: socket.socket | None = None
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self, listener: socket.socket) -> None:
        """Accept connections on ``listener`` from now on."""
        listener.setblocking(False)
        self._listener = listener
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept)

    async def stop(self) -> None:
        """Stop accepting (the socket stays open: the kernel keeps queueing connections) and
        return once the requests in flight are answered or ``STOP_LIMIT`` has passed."""
        if self._listener is not None:
            # synchronous: no accept can be under way, so no connection is taken and dropped
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener = None
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=STOP_LIMIT)

    def _accept(self) -> None:
        """One connection from the queue, served at once (the selector calls again while more
        wait). Not ``loop.sock_accept``: cancelling it can drop a connection it just took."""
        assert self._listener is not None
        try:
            connection, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another took it, or the client gave up while it queued
        task = asyncio.create_task(self._serve(connection))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _serve(self, connection: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=connection, limit=HEAD_LIMIT)
        try:
            status, body = await asyncio.wait_for(self._answer(reader), READ_TIMEOUT)
            head = f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass  # a client that is gone, too slow, or sent no whole request gets no answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, path, *_ = [*head.split(" ", 2), "", ""]
        if (method, path) == ("GET", "/build"):
            return 200, orjson.dumps({"version": self.version})
        if (method, path) != ("POST", "/changes"):
            return 404, orjson.dumps({"detail": "GET /build or POST /changes"})
        size = _content_length(head)
        if size is None:
            return 400, orjson.dumps({"detail": "say the change's Content-Length"})
        if size > BODY_LIMIT:
            return 413, orjson.dumps({"detail": "a change is at most 1 MiB"})
        spooled = _spool(self.spool, await reader.readexactly(size))
        return 202, orjson.dumps({"spooled": spooled})


def _content_length(head: str) -> int | None:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            return int(value.strip())
    return None


def _spool(spool: Path, change: bytes) -> str:
    spool.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=spool, prefix="change-", delete=False) as out:
        out.write(change)
    return Path(out.name).name
