"""Maintenance mode: a flag in the site database that a product reads through ``guard()``.

While it is on, a product should admit administrators only. It is stored in ``stairway_meta``
(owned by the recorder), so every instance of the product sees the same flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import Connection, Engine

from stairway.schema import recorder

KEY = "maintenance"


@dataclass(frozen=True)
class Maintenance:
    """Maintenance mode as switched on: why, and since when (ISO 8601, UTC)."""

    reason: str
    since: str


def switch_on(engine: Engine, reason: str) -> None:
    """Switch maintenance mode on, with ``reason``, for every instance of the product."""
    value = {"reason": reason, "since": datetime.now(UTC).isoformat(timespec="seconds")}
    with engine.begin() as conn:
        recorder.ensure_tables(conn)
        recorder.set_meta(conn, KEY, orjson.dumps(value).decode())


def switch_off(engine: Engine) -> None:
    """Switch maintenance mode off."""
    with engine.begin() as conn:
        recorder.delete_meta(conn, KEY)


def read(conn: Connection) -> Maintenance | None:
    """Maintenance mode as recorded, or None when it is off."""
    raw = recorder.get_meta(conn, KEY)
    return None if raw is None else parse(raw)


def parse(raw: str) -> Maintenance:
    """The stored flag's JSON as a value."""
    value = orjson.loads(raw)
    return Maintenance(str(value.get("reason", "")), str(value.get("since", "")))
