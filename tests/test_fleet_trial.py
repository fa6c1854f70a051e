"""A new agent build's trial, without a server: when the server welcomed it but its readiness
check failed, the rollback says so and what the check said, not that the server never welcomed
it."""

from __future__ import annotations

import time
from pathlib import Path

from stairway.examples.identity_sync.relay import spool_writable
from stairway.fleet.agent import Agent, AgentConfig, read_state, readiness, write_state
from stairway.fleet.supervisor import trial_failure


def _not_ready() -> bool:
    raise OSError("the spool is full")


def test_the_readiness_check_says_why_it_failed() -> None:
    assert readiness(lambda: True) is None
    assert readiness(lambda: False) == "the readiness check answered that the build is not ready"
    said = readiness(_not_ready)
    assert said == "the readiness check failed: OSError: the spool is full"


def test_a_rollback_names_its_cause() -> None:
    never = {"to": "2.0.0", "deadline": 1.0}
    assert trial_failure(never, None) == (
        "the new build was not welcomed by the server within the deadline"
    )
    assert trial_failure(never, 3) == "the new build exited with status 3 before it was welcomed"
    checked = never | {"welcomed": True, "readiness": "the readiness check failed: OSError: x"}
    late = trial_failure(checked, None)
    assert late.startswith("the new build was welcomed by the server but not ready")
    assert late.endswith("the readiness check failed: OSError: x")
    assert "not welcomed" not in late
    assert "after it was welcomed; the readiness check failed" in trial_failure(checked, 1)


def _agent(home: Path) -> Agent:
    config = AgentConfig("ws://127.0.0.1:1", "relay-eu", "secret", home / "release.pub", "p")
    agent = Agent(home, "2.0.0", 3, config)
    agent.healthy = lambda: spool_writable(home)
    return agent


def test_a_welcomed_build_whose_readiness_check_fails_stays_on_trial_and_says_why(
    tmp_path: Path,
) -> None:
    trial = {"from": "1.0.4", "to": "2.0.0", "previous": None, "deadline": time.time() + 60}
    write_state(tmp_path, {"trial": trial})
    (tmp_path / "spool").write_text("a file where the spool directory goes")
    _agent(tmp_path)._welcomed()
    recorded = read_state(tmp_path)["trial"]
    assert recorded["to"] == "2.0.0" and recorded["welcomed"] is True
    assert recorded["readiness"].startswith("the readiness check failed: FileExistsError")
    reason = trial_failure(recorded, None)
    assert "welcomed by the server but not ready" in reason and "spool" in reason
    (tmp_path / "spool").unlink()
    _agent(tmp_path)._welcomed()
    assert read_state(tmp_path) == {}, "ready on a later welcome: the trial ends well"
