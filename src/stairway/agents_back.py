"""After an upgrade starts the product: did the agents connected before it come back?

The agents connected to the site's control plane are named when the upgrade begins (in its
journal). Once the new release is started, the ``agents-back`` step waits up to the site's
``[fleet] deadline`` for each of them to be connected again and heard from since the step
began (a row left ``connected`` by a control plane that died does not count). Those that did
not return are left for the operator, by name, with the counts before and after; the upgrade
is not rolled back for them (an agent's host may simply be down).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from stairway.context import Context
from stairway.fleet import store
from stairway.fleet.tables import agents_table
from stairway.fleet.tokens import now
from stairway.handwork import HandItem

POLL = 1.0  # seconds between looks at the agents' rows
Row = tuple[str, bool, str | None]  # agent id, connected, last seen (ISO 8601)


@dataclass(frozen=True)
class Return:
    """Which of the agents connected before the upgrade are back, and which are not."""

    before: tuple[str, ...]
    back: tuple[str, ...]
    missing: tuple[str, ...]
    connected: int  # every agent connected now, new ones included

    def describe(self) -> str:
        """The count in one line, naming the agents that did not return."""
        said = f"{len(self.back)} of {len(self.before)} agents back ({self.connected} connected)"
        return said + (f"; not back: {', '.join(self.missing)}" if self.missing else "")


def returned(before: Sequence[str], rows: Iterable[Row], since: datetime) -> Return:
    """The agents of ``before`` connected and heard from at or after ``since``. Pure."""
    live = {agent for agent, on, seen in rows if on and seen and _at(seen) >= since}
    back = tuple(agent for agent in before if agent in live)
    missing = tuple(agent for agent in before if agent not in live)
    return Return(tuple(before), back, missing, len(live))


def connected_before(ctx: Context) -> list[str]:
    """The agents connected to the site's control plane now, by id; none without a fleet."""
    with ctx.engine.connect() as conn:
        return sorted(agent for agent, _ in store.connected_versions(conn))


def wait_back(
    engine: Engine,
    before: Sequence[str],
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> Return:
    """Wait up to ``deadline`` seconds for every agent of ``before`` to come back."""
    since, end = now(), clock() + deadline
    while True:
        found = returned(before, _rows(engine), since)
        if not found.missing or clock() >= end:
            return found
        time.sleep(min(POLL, max(0.0, end - clock())))


def run(ctx: Context, before: Sequence[str]) -> dict[str, Any]:
    """The ``agents-back`` step: what the journal records of it, the missing agents as items
    for the operator's hand."""
    deadline = ctx.site.fleet.deadline
    found = wait_back(ctx.engine, before, deadline)
    hand = [_item(agent, deadline).as_json() for agent in found.missing]
    return {
        "before": len(found.before),
        "back": len(found.back),
        "connected": found.connected,
        "missing": list(found.missing),
        "said": found.describe(),
        "hand": hand,
    }


def _item(agent: str, deadline: float) -> HandItem:
    return HandItem(
        f"agent {agent}",
        f"it was connected before the upgrade and did not come back within {deadline:g} s",
        "check its host and start it (`stairway agent run --home AGENT_HOME`); it shows as "
        "online on the Agents page once it is back",
    )


def _rows(engine: Engine) -> list[Row]:
    c = agents_table.c
    with engine.connect() as conn:
        found = conn.execute(select(c.agent_id, c.connected, c.last_seen))
        return [(str(a), bool(on), seen) for a, on, seen in found]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)
