"""The evaluator: one tick applies the policy to the agents' rows and sends the upgrades it
chose; the loop ticks every ``interval`` on the one replica that leads."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import Connection

from stairway import audit
from stairway.fleet import builds, events, store, tokens
from stairway.fleet.control import Fleet
from stairway.fleet.policy import evaluate
from stairway.fleet.requests import logger

log = logger(__name__)
Chosen = list[tuple[str, str | None]]  # agents to send the upgrade to, and their replicas


async def tick(fleet: Fleet) -> str:
    """One evaluation of the policy; the note saying what it did."""
    started = time.perf_counter()
    try:
        return await _tick(fleet)
    finally:
        fleet.metrics.ticks.inc()
        fleet.metrics.tick_seconds.observe(time.perf_counter() - started)


async def _tick(fleet: Fleet) -> str:
    build = builds.find(fleet.config.builds, fleet.config.version)
    chosen, note = await fleet.db(lambda conn: _decide(fleet, conn, build is not None))
    if build is not None and chosen:
        await fleet.deliver(build, chosen)
    fleet.last_note = note
    log.debug("tick: %s", note)
    return note


def _decide(fleet: Fleet, conn: Connection, published: bool) -> tuple[Chosen, str]:
    """The evaluator's decision, written in the tick's transaction."""
    target, replica = fleet.config.version, fleet.config.replica
    store.one_tick_at_a_time(conn)
    policy = store.read_policy(conn)
    rows = store.rows_for_evaluator(conn)
    deadline = timedelta(seconds=fleet.config.deadline)
    decision = evaluate(policy, rows, target, tokens.now(), deadline, fleet.config.grammar)
    events.silent(conn, decision.silent, target)
    if decision.policy.halted and not policy.halted:
        audit.append(conn, "agent.upgrade_halted", {"reason": decision.policy.halted})
    store.write_policy(conn, decision.policy)
    if not published:
        return [], f"no agent build is published for {target}"
    where = {row.agent_id: row.replica for row in rows}
    sent = events.upgrade_sent(conn, decision.upgrade, target, "policy", replica)
    return [(a, where.get(a)) for a in sent], decision.note


async def run_now(fleet: Fleet, actor: str) -> str:
    """The operator's Run now: one tick at once, audited."""
    await fleet.db(lambda c: audit.append(c, "agent.upgrade_run", {"run": "now"}, actor=actor))
    return await tick(fleet)


async def run(fleet: Fleet) -> None:
    """A tick every ``interval`` on the one replica holding the evaluator lock. The policy
    is read again every second, so a change made on any replica applies at once; a change
    made here restarts the wait (the operator's Run now acts at once)."""
    await leading(fleet)
    last = time.monotonic()
    while True:
        due = last + await _interval(fleet)
        if await _woken(fleet, max(0.0, min(due - time.monotonic(), 1.0))):
            last = time.monotonic()
        elif time.monotonic() >= due and await leading(fleet):
            await _survive(fleet)
            last = time.monotonic()


async def _interval(fleet: Fleet) -> float:
    """The policy's interval; a second while the policy cannot be read (the loop goes on)."""
    try:
        return (await fleet.db(store.read_policy)).interval
    except Exception:
        log.exception("the evaluator cannot read the policy; trying again in a second")
        return 1.0


async def _woken(fleet: Fleet, wait: float) -> bool:
    """Whether the policy was changed here within ``wait`` seconds."""
    try:
        await asyncio.wait_for(fleet.wake.wait(), timeout=wait)
    except TimeoutError:
        return False
    fleet.wake.clear()
    return True


async def _survive(fleet: Fleet) -> None:
    try:
        await tick(fleet)
    except Exception:  # the evaluator outlives one bad tick
        log.exception("the evaluator's tick failed; the next one comes in its interval")


async def leading(fleet: Fleet) -> bool:
    """Whether this replica evaluates; waits for the lock when another one holds it."""
    if fleet.replicas is None:
        return True
    if not await fleet.replicas.still_leading():
        await fleet.replicas.lead()
    return True
