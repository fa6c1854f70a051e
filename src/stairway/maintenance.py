"""Maintenance mode: a flag in the site database that a product reads through ``guard()``.

While it is on, a product should admit administrators only. It is stored in ``stairway_meta``
(owned by the recorder), so every instance of the product sees the same flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import Connection, Engine

from stairway.schema import migrator, recorder

KEY = "maintenance"


@dataclass(frozen=True)
class Maintenance:
    """Maintenance mode as switched on: why, and since when (ISO 8601, UTC)."""

    reason: str
    since: str

    def describe(self) -> str:
        """The flag on one line, as the command line and the web UI show it."""
        return f"maintenance is on since {self.since}: {self.reason}"


def switch_on(engine: Engine, reason: str) -> None:
    """Switch maintenance mode on, with ``reason``, for every instance of the product."""
    prepare(engine)
    with engine.begin() as conn:
        turn_on(conn, reason)


def switch_off(engine: Engine) -> None:
    """Switch maintenance mode off."""
    with engine.begin() as conn:
        turn_off(conn)


def prepare(engine: Engine) -> None:
    """Make the flag's table ready before a transaction that turns maintenance on: on a new
    database it is created under the migration lock, so a first migration running beside it
    is waited for, not raced (docs/upgrade.md)."""
    migrator.ensure_bookkeeping(engine)


def turn_on(conn: Connection, reason: str) -> Maintenance:
    """Maintenance on, with ``reason`` (the message the product shows), in ``conn``'s
    transaction; returns the flag as recorded. Call :func:`prepare` first, outside the
    transaction: creating the tables here would race a first migration."""
    flag = Maintenance(reason, datetime.now(UTC).isoformat(timespec="seconds"))
    recorder.ensure_tables(conn)  # brings tables of an older format to this one's
    recorder.set_meta(conn, KEY, orjson.dumps({"reason": reason, "since": flag.since}).decode())
    return flag


def turn_off(conn: Connection) -> None:
    """Maintenance off, in ``conn``'s transaction."""
    recorder.delete_meta(conn, KEY)


def read(conn: Connection) -> Maintenance | None:
    """Maintenance mode as recorded, or None when it is off."""
    raw = recorder.get_meta(conn, KEY)
    return None if raw is None else parse(raw)


def parse(raw: str) -> Maintenance:
    """The stored flag's JSON as a value."""
    value = orjson.loads(raw)
    return Maintenance(str(value.get("reason", "")), str(value.get("since", "")))
