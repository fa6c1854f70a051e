"""Request bodies are bounded before anyone is authenticated.

``BodyLimit`` answers 413 to a request that declares a body over the limit without reading
any of it, and to one that sends more than it declared (or streams without declaring) as soon
as the limit is passed: a caller without a token cannot make the server hold a large body in
memory. Websocket messages have their own limit (``stairway.fleet.messages.MESSAGE_LIMIT``).
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_LIMIT = 64 * 1024  # bytes; ``stairway serve --max-body`` changes it


class BodyLimit:
    """ASGI middleware: 413 for an HTTP request body over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int = BODY_LIMIT) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with its body counted; other scopes pass through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        received, over, answered = 0, False, False

        async def counting() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                over = True  # the app sees a client gone; the answer is ours
                return {"type": "http.disconnect"}
            return message

        async def sending(message: Message) -> None:
            nonlocal answered
            if not over:
                await send(message)
            elif not answered and message["type"] == "http.response.start":
                answered = True
                await self._too_large(send)

        try:
            await self.app(scope, counting, sending)
        except Exception:
            if not over:
                raise  # the app's own failure; a body cut short is answered below
        if over and not answered:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        body = orjson.dumps({"detail": f"request body too large: the limit is {self.limit} bytes"})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
