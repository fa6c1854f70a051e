"""The upgrade policy's evaluator, tick by tick: counts per wave, canaries first, halts, pins."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from stairway.fleet.policy import AgentRow, Mode, Policy, State, evaluate, wave

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DEADLINE = timedelta(seconds=120)
TARGET = "2.0.0"


def fleet_of(count: int, version: str = "1.0.0") -> list[AgentRow]:
    return [AgentRow(f"a{n:04d}", version, State.ONLINE, True) for n in range(count)]


def settle(
    agents: list[AgentRow], chosen: list[str], fails: set[str] = frozenset()
) -> list[AgentRow]:
    """What the agents do with the upgrade: come back on the target, or fail."""
    result = []
    for agent in agents:
        if agent.agent_id in chosen and agent.agent_id in fails:
            agent = replace(agent, state=State.FAILED, target=TARGET, failed_version=TARGET)
        elif agent.agent_id in chosen:
            agent = replace(agent, version=TARGET, target=TARGET)
        result.append(agent)
    return result


@given(count=st.integers(1, 400), percent=st.integers(1, 100))
def test_staged_upgrades_the_same_share_each_tick_and_ends_in_a_known_number(
    count: int, percent: int
) -> None:
    agents = fleet_of(count)
    policy = Policy(mode=Mode.STAGED, percent=percent)
    wave = math.ceil(count * percent / 100)
    ticks = 0
    while any(a.version != TARGET for a in agents):
        decision = evaluate(policy, agents, TARGET, NOW, DEADLINE)
        policy = decision.policy
        left = sum(1 for a in agents if a.version != TARGET)
        assert len(decision.upgrade) == min(wave, left)
        assert len(set(decision.upgrade)) == len(decision.upgrade)
        agents = settle(agents, decision.upgrade)
        ticks += 1
    assert ticks == math.ceil(count / wave)
    assert policy.rollout_size == count, "the wave size stays that of the rollout's start"


def test_manual_sends_nothing_and_auto_sends_every_drifted_connected_agent() -> None:
    agents = [
        *fleet_of(3),
        AgentRow("gone", "1.0.0", State.OFFLINE, False),
        AgentRow("ahead", "3.0.0", State.ONLINE, True),
        AgentRow("current", TARGET, State.ONLINE, True),
        AgentRow("pinned", "1.0.0", State.ONLINE, True, failed_version=TARGET),
    ]
    assert evaluate(Policy(), agents, TARGET, NOW, DEADLINE).upgrade == []
    sent = evaluate(Policy(mode=Mode.AUTO, max_failures=100), agents, TARGET, NOW, DEADLINE)
    assert sent.upgrade == ["a0000", "a0001", "a0002"], "never down, never a pinned version"


def test_a_wave_waits_for_the_one_before_it_and_silence_past_the_deadline_is_its_own_state() -> (
    None
):
    agents = fleet_of(4)
    policy = Policy(mode=Mode.STAGED, percent=50, max_failures=50)
    first = evaluate(policy, agents, TARGET, NOW, DEADLINE)
    flying = [
        replace(a, state=State.UPGRADING, target=TARGET, attempt_started=NOW)
        if a.agent_id in first.upgrade
        else a
        for a in agents
    ]
    waiting = evaluate(first.policy, flying, TARGET, NOW + timedelta(seconds=5), DEADLINE)
    assert waiting.upgrade == [] and "settle" in waiting.note
    late = evaluate(first.policy, flying, TARGET, NOW + timedelta(seconds=121), DEADLINE)
    assert late.silent == first.upgrade
    assert late.policy.halted and "went silent" in late.policy.halted


def test_failures_up_to_the_threshold_do_not_halt() -> None:
    agents = fleet_of(10)
    policy = Policy(mode=Mode.STAGED, percent=20, max_failures=50)
    decision = evaluate(policy, agents, TARGET, NOW, DEADLINE)
    agents = settle(agents, decision.upgrade, fails={decision.upgrade[0]})
    decision = evaluate(decision.policy, agents, TARGET, NOW, DEADLINE)
    assert decision.policy.halted is None and len(decision.upgrade) == 2, "1 of 2 is 50%"


def test_one_failure_in_two_beyond_a_lower_threshold_halts() -> None:
    agents = fleet_of(10)
    policy = Policy(mode=Mode.STAGED, percent=20, max_failures=10)
    decision = evaluate(policy, agents, TARGET, NOW, DEADLINE)
    agents = settle(agents, decision.upgrade, fails={decision.upgrade[0]})
    halted = evaluate(decision.policy, agents, TARGET, NOW, DEADLINE)
    assert halted.upgrade == [] and halted.policy.halted
    assert "1 of 2 agents tried failed" in halted.policy.halted
    again = evaluate(halted.policy, agents, TARGET, NOW, DEADLINE)
    assert again.upgrade == [], "a halted rollout stays halted"


def test_canaries_go_first_alone_and_a_failed_canary_halts() -> None:
    agents = [
        *fleet_of(6),
        *[AgentRow(f"c{n}", "1.0.0", State.ONLINE, True, group="canary") for n in (1, 2)],
    ]
    policy = Policy(mode=Mode.AUTO, canary=True, max_failures=100)
    first = evaluate(policy, agents, TARGET, NOW, DEADLINE)
    assert first.upgrade == ["c1", "c2"]
    done = settle(agents, first.upgrade)
    rest = evaluate(first.policy, done, TARGET, NOW, DEADLINE)
    assert rest.upgrade == [f"a{n:04d}" for n in range(6)]
    failed = settle(agents, first.upgrade, fails={"c2"})
    halted = evaluate(first.policy, failed, TARGET, NOW, DEADLINE)
    assert halted.upgrade == [] and "canary agent c2" in str(halted.policy.halted)


def test_a_staged_rollout_begun_before_any_agent_enrolled_grows_as_they_enroll() -> None:
    policy = Policy(mode=Mode.STAGED, percent=20, canary=True)
    empty = evaluate(policy, [], TARGET, NOW, DEADLINE)
    assert empty.upgrade == [] and empty.policy.rollout_size == 0
    enrolled = [
        *fleet_of(3),
        *[AgentRow(f"c{n}", "1.0.0", State.ONLINE, True, group="canary") for n in (1, 2)],
    ]
    canaries = evaluate(empty.policy, enrolled, TARGET, NOW, DEADLINE)
    assert canaries.policy.rollout_size == 5 and wave(canaries.policy) == 1
    assert canaries.upgrade == ["c1"]
    assert canaries.note == "canary agents first: 1 agent(s) sent the upgrade"


def test_agents_enrolling_mid_rollout_join_it_and_upgraded_ones_stay_counted() -> None:
    policy = Policy(mode=Mode.STAGED, percent=50)
    first = evaluate(policy, fleet_of(4), TARGET, NOW, DEADLINE)
    agents = settle(fleet_of(4), first.upgrade)
    later = [*agents, AgentRow("late-1", "1.0.0", State.ONLINE, True)]
    second = evaluate(first.policy, later, TARGET, NOW, DEADLINE)
    assert second.policy.rollout_size == 5 and len(second.upgrade) == 3


def test_a_maven_rollout_reads_the_agents_versions_in_the_catalogs_grammar() -> None:
    agents = [
        AgentRow("snapshot", "4.4-SNAPSHOT", State.ONLINE, True),  # before 4.4 in Maven
        AgentRow("same", "4.4.0", State.ONLINE, True),  # 4.4.0 is 4.4: trailing zeros drop
        AgentRow("service-pack", "4.4-sp-1", State.ONLINE, True),  # after 4.4
        AgentRow("unreadable", "4.4-", State.ONLINE, True),  # shown, never acted on
    ]
    sent = evaluate(Policy(mode=Mode.AUTO, max_failures=100), agents, "4.4", NOW, DEADLINE, "maven")
    assert sent.upgrade == ["snapshot"] and sent.policy.rollout_size == 1
