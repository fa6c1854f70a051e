"""The upgrade policy and its evaluator: which agents to upgrade on this tick, and why not.

Modes: ``manual`` (only the operator's per-agent Upgrade), ``auto`` (every drifted agent at
once) and ``staged`` (each tick, ``percent`` of the agents in the rollout: those drifted when it
began, and those that enrolled drifted since, so a rollout ends in a known number of ticks and
one that began before any agent enrolled still moves; a wave starts only when the one before it
has settled). With ``canary`` the agents of the canary group go first, alone, and the rest wait
until every canary runs the target. Waves are health-gated: when more than ``max_failures``
percent of the agents tried in this rollout failed or went silent, the rollout halts, with the
reason shown, until the operator changes the policy. A version that failed on an agent is
pinned there and not sent again. The evaluator is a pure function of the rows it is given.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from stairway.fleet.states import State
from stairway.version_grammars import GrammarName
from stairway.versions import Version


class Mode(StrEnum):
    """Who starts upgrades: the operator one by one, or the evaluator all at once or in waves."""

    MANUAL = "manual"
    AUTO = "auto"
    STAGED = "staged"


@dataclass(frozen=True)
class Policy:
    """The upgrade policy, with the rollout under way: its target, its size and why it halted."""

    mode: Mode = Mode.MANUAL
    percent: int = 10
    interval: float = 60.0
    canary: bool = False
    max_failures: int = 0  # percent of the agents tried in a rollout that may fail
    rollout_target: str | None = None
    rollout_size: int | None = None
    halted: str | None = None


@dataclass(frozen=True)
class AgentRow:
    """What the evaluator knows of one agent: its version, state, group and upgrade in progress."""

    agent_id: str
    version: str | None
    state: State
    connected: bool
    group: str | None = None
    target: str | None = None
    attempt_started: datetime | None = None
    failed_version: str | None = None
    replica: str | None = None  # the replica it is connected to


@dataclass
class Decision:
    """What a tick decided: the policy to keep, the agents to upgrade and those gone silent."""

    policy: Policy
    upgrade: list[str] = field(default_factory=list)  # agent ids to send the upgrade to
    silent: list[str] = field(default_factory=list)  # attempts past their deadline
    note: str = ""  # what the tick did, for the UI


def drifted(agent: AgentRow, target: str, grammar: GrammarName = "pep440") -> bool:
    """Older than the server's release, read in the catalog's ``grammar``; an agent ahead of
    it is never upgraded down."""
    return agent.version is not None and _older(agent.version, target, grammar)


def evaluate(
    policy: Policy,
    agents: list[AgentRow],
    target: str,
    now: datetime,
    deadline: timedelta,
    grammar: GrammarName = "pep440",
) -> Decision:
    """What the tick at ``now`` does for ``agents`` on their way to ``target``, their versions
    read in the catalog's ``grammar``.

    An agent upgrading for longer than ``deadline`` has gone silent. A manual or halted policy
    upgrades nobody; a staged one waits for its wave to settle; a canary group goes first.
    """
    silent = [
        a.agent_id
        for a in agents
        if a.state == State.UPGRADING and a.attempt_started and now - a.attempt_started > deadline
    ]
    agents = [replace(a, state=State.NO_SIGNAL) if a.agent_id in silent else a for a in agents]
    policy = rollout(policy, agents, target, grammar)
    decision = Decision(policy, silent=silent)
    if policy.mode == Mode.MANUAL:
        decision.note = "manual: agents are upgraded one by one from the Agents page"
        return decision
    halt = policy.halted or _failures(policy, agents, target)
    if halt:
        decision.policy = replace(policy, halted=halt)
        decision.note = f"halted: {halt}"
        return decision
    if policy.mode == Mode.STAGED and any(a.state == State.UPGRADING for a in agents):
        decision.note = "waiting for the current wave to settle"
        return decision
    ready = [a for a in agents if _candidate(a, target, grammar)]
    waiting = False
    if policy.canary:
        ready, waiting = _canary_first(agents, ready, target, grammar)
    size = wave(policy) if policy.mode == Mode.STAGED else len(ready)
    decision.upgrade = [a.agent_id for a in sorted(ready, key=lambda a: a.agent_id)[:size]]
    sent = f"{len(decision.upgrade)} agent(s) sent the upgrade"
    decision.note = f"canary agents first: {sent}" if waiting else sent
    return decision


def rollout(
    policy: Policy, agents: list[AgentRow], target: str, grammar: GrammarName = "pep440"
) -> Policy:
    """The rollout to ``target`` as ``agents`` stand: a new target starts a new one. Its size
    is the agents it holds, drifted or tried on the target; it grows as drifted agents enroll
    and never shrinks as they upgrade, so that the waves keep their size."""
    held = sum(1 for a in agents if drifted(a, target, grammar) or a.target == target)
    if policy.rollout_target != target:
        return replace(policy, rollout_target=target, rollout_size=held, halted=None)
    return replace(policy, rollout_size=max(policy.rollout_size or 0, held))


def wave(policy: Policy) -> int:
    """How many agents a staged wave sends the upgrade to: ``percent`` of the rollout's size,
    at least one while the rollout holds any."""
    return math.ceil((policy.rollout_size or 0) * policy.percent / 100)


def _candidate(agent: AgentRow, target: str, grammar: GrammarName) -> bool:
    return (
        agent.connected
        and drifted(agent, target, grammar)
        and agent.state in (State.ONLINE, State.HELD)  # a held one only into the window
        and agent.failed_version != target
    )


def _failures(policy: Policy, agents: list[AgentRow], target: str) -> str | None:
    tried = [a for a in agents if a.target == target]
    bad = [a for a in tried if a.state in (State.FAILED, State.NO_SIGNAL)]
    if not bad:
        return None
    if policy.canary and any(a.group == "canary" for a in bad):
        return f"canary agent {bad[0].agent_id} did not come back on {target}"
    if len(bad) * 100 > len(tried) * policy.max_failures:
        names = ", ".join(a.agent_id for a in bad[:5])
        return (
            f"{len(bad)} of {len(tried)} agents tried failed or went silent on {target} "
            f"(more than {policy.max_failures}%): {names}"
        )
    return None


def _canary_first(
    agents: list[AgentRow], ready: list[AgentRow], target: str, grammar: GrammarName
) -> tuple[list[AgentRow], bool]:
    canaries = [a for a in agents if a.group == "canary"]
    unfinished = [a for a in canaries if a.version is None or _older(a.version, target, grammar)]
    if not unfinished:
        return ready, False
    return [a for a in ready if a.group == "canary"], True


@functools.lru_cache(maxsize=4096)  # a fleet holds few versions and thousands of agents
def _older(version: str, target: str, grammar: GrammarName) -> bool:
    try:
        return Version(version, grammar) < Version(target, grammar)
    except ValueError:
        return False  # an unreadable version is shown, never acted on
