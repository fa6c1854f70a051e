"""Request ids: one per HTTP request or websocket connection, on its response and its logs.

``RequestIds`` takes the client's ``X-Request-ID`` (when it is short, printable text) or makes
one, returns it in the response's ``X-Request-ID`` header, and holds it in a context variable
while the request is handled; ``RequestIdFilter`` copies it onto each log record as
``record.request_id`` (None outside a request). The control plane's loggers carry the filter;
a handler may carry it too, to mark records of other libraries. An error no route handled is
logged here with its traceback and the id, and answered 500 with the id and nothing more.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # safe to echo into a header and a log
current: ContextVar[str | None] = ContextVar("stairway_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Puts the request id of the request being handled, if any, on each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Set ``record.request_id``; every record passes."""
        record.request_id = current.get()
        return True


REQUEST_ID = RequestIdFilter()


def logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the request id filter on it."""
    found = logging.getLogger(name)
    if REQUEST_ID not in found.filters:
        found.addFilter(REQUEST_ID)
    return found


log = logger(__name__)


def request_id(given: str | None) -> str:
    """The client's id when it is acceptable, otherwise a new one."""
    if given and _ACCEPTED.match(given):
        return given
    return uuid.uuid4().hex


class RequestIds:
    """ASGI middleware: the request id around every request and websocket connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle a request or websocket with its id; other scopes (lifespan) pass through."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        ident = request_id(headers.get(HEADER.lower().encode(), b"").decode("latin-1"))
        token = current.set(ident)
        try:
            await self._handle(scope, receive, send, ident)
        finally:
            current.reset(token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, ident: str) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
                extra = [(HEADER.lower().encode(), ident.encode())]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("%s %s failed", scope.get("method", "WEBSOCKET"), scope["path"])
            if scope["type"] == "http" and not started:
                await _internal_error(send, ident)


async def _internal_error(send: Send, ident: str) -> None:
    body = orjson.dumps({"detail": "internal error", "request_id": ident})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (HEADER.lower().encode(), ident.encode()),
    ]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
