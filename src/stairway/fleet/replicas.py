"""Several ``stairway serve`` replicas over one PostgreSQL database.

Exactly one replica evaluates the policy: the one holding a session-level advisory lock. The
others try again every second, so when the holder dies (its session ends and PostgreSQL frees
the lock) another takes over within seconds. A replica reaches an agent connected to another
through ``NOTIFY stairway_fleet`` with the target replica, the agent and the message; every
replica listens and delivers what is addressed to it. On SQLite there is one replica and
neither is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import psycopg
from sqlalchemy import Engine

from stairway.errors import MessageRefused
from stairway.fleet.messages import WireMessage, parse
from stairway.fleet.revocations import CHANNEL, WAKE

EVALUATOR_LOCK = 0x5374_6169_7277_6179  # "Stairway": one evaluator per database
RETRY = 1.0
Deliver = Callable[[str, WireMessage], Awaitable[bool]]
log = logging.getLogger(__name__)


def conninfo(engine: Engine) -> str | None:
    """A plain libpq URL for the engine's database; None when it is not PostgreSQL."""
    if engine.dialect.name != "postgresql":
        return None
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Replicas:
    """This replica among the others on one database: the evaluator lock and the notifications."""

    def __init__(self, url: str, replica: str) -> None:
        self.url, self.replica = url, replica
        self.leader = False
        self._lock: psycopg.AsyncConnection[Any] | None = None
        self._notify: psycopg.AsyncConnection[Any] | None = None

    async def lead(self) -> None:
        """Wait until this replica holds the evaluator lock (at once on a single replica)."""
        while not self.leader:
            try:
                if self._lock is None or self._lock.closed:
                    self._lock = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                found = await self._lock.execute(
                    "SELECT pg_try_advisory_lock(%s)", (EVALUATOR_LOCK,)
                )
                row = await found.fetchone()
                self.leader = bool(row and row[0])
            except psycopg.OperationalError as err:
                log.warning("replica %s: evaluator lock: %s", self.replica, err)
                self._lock = None
            if not self.leader:
                await asyncio.sleep(RETRY)

    async def still_leading(self) -> bool:
        """False once the lock's session is gone (the lock with it)."""
        if self._lock is None or self._lock.closed:
            self.leader = False
            return False
        try:
            await self._lock.execute("SELECT 1")
        except psycopg.OperationalError:
            self.leader, self._lock = False, None
        return self.leader

    async def publish(self, replica: str, agent_id: str, message: WireMessage) -> None:
        """Ask ``replica`` to send ``message`` to ``agent_id``, which is connected to it."""
        payload = orjson.dumps({"replica": replica, "agent": agent_id, "message": message.fields()})
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload.decode()))

    async def listen(self, deliver: Deliver, revoked: Callable[[], None]) -> None:
        """Deliver what other replicas address to agents connected here, and call ``revoked``
        when a credential was revoked anywhere; reconnects."""
        while True:
            try:
                self._notify = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                await self._notify.execute(f"LISTEN {CHANNEL}")
                async for note in self._notify.notifies():
                    if note.payload == WAKE:
                        revoked()
                    else:
                        await self._deliver(note.payload, deliver)
            except psycopg.OperationalError as err:
                log.warning("replica %s: listening: %s; again in %s s", self.replica, err, RETRY)
                await asyncio.sleep(RETRY)

    async def _deliver(self, payload: str, deliver: Deliver) -> None:
        try:
            note = orjson.loads(payload)
            if note["replica"] == self.replica:
                await deliver(str(note["agent"]), parse(orjson.dumps(note["message"])))
        except (orjson.JSONDecodeError, KeyError, TypeError, MessageRefused) as err:
            log.warning("replica %s: a notification it cannot deliver: %s", self.replica, err)

    async def close(self) -> None:
        """Close the lock's and the listener's connections, which frees the evaluator lock."""
        for conn in (self._lock, self._notify):
            if conn is not None and not conn.closed:
                await conn.close()
