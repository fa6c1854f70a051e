"""The fleet for real: ``stairway serve`` and ``stairway agent run`` processes on loopback,
upgrading zipapp builds of the agent from 1.0.0 to the server's 2.0.0."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from fleet_harness import Fleet, answers, fleet_site, free_port, make_build, wait_until
from stairway import audit, context
from stairway.database import dispose_all
from stairway.releases import generate_key
from test_fleet_ui_security import Server, sign_in


@pytest.fixture
def fleet(tmp_path: Path, database_url: str) -> Fleet:
    with fleet_site(tmp_path, database_url) as running:
        yield running


def versions(fleet: Fleet) -> dict[str, tuple[str, str]]:
    return {a: (row["version"], row["state"]) for a, row in fleet.agent_rows().items()}


def connected(fleet: Fleet, agent_id: str) -> bool:
    row = fleet.agent_rows().get(agent_id)
    return bool(row and row["connected"])


def audit_actions(fleet: Fleet) -> list[str]:
    return [entry["action"] for entry in fleet.api("GET", "/api/audit")]


def test_auto_policy_upgrades_agents_that_re_execute_and_reconnect(fleet: Fleet) -> None:
    old = make_build(fleet.root, "1.0.0")
    fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
    fleet.start_server()
    homes = [fleet.start_agent(f"relay-{n}", old) for n in (1, 2)]
    wait_until(
        lambda: (
            len(fleet.agent_rows()) == 2
            and all(row["connected"] for row in fleet.agent_rows().values())
        ),
        30,
        "two agents online",
    )
    assert versions(fleet) == {"relay-1": ("1.0.0", "online"), "relay-2": ("1.0.0", "online")}
    assert all(row["drifted"] for row in fleet.agent_rows().values())
    fleet.api("PUT", "/api/policy", {"mode": "auto", "interval": 0.2})
    wait_until(
        lambda: versions(fleet) == {"relay-1": ("2.0.0", "online"), "relay-2": ("2.0.0", "online")},
        60,
        "both agents on 2.0.0",
    )
    for home in homes:
        assert (home / "current").resolve().name == "agent-2.0.0.pyz"
        assert (home / "builds" / "agent-1.0.0.pyz").is_file(), "the previous build is kept"
    upgrades = [e for e in fleet.api("GET", "/api/audit") if e["action"] == "agent.upgrade"]
    assert {e["data"]["agent"] for e in upgrades} == {"relay-1", "relay-2"}
    assert upgrades[0]["data"]["from"] == "1.0.0" and upgrades[0]["data"]["to"] == "2.0.0"
    assert "agent.upgrade_policy" in audit_actions(fleet)


def test_a_tampered_build_and_a_bad_signature_are_refused_and_pinned(fleet: Fleet) -> None:
    old = make_build(fleet.root, "1.0.0")
    fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
    artifact = fleet.root / "builds" / "agent-2.0.0.pyz"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    fleet.start_server()
    fleet.start_agent("relay-t", old)
    wait_until(lambda: connected(fleet, "relay-t"), 30, "the agent")
    fleet.api("POST", "/api/agents/relay-t/upgrade")
    wait_until(lambda: versions(fleet)["relay-t"][1] == "failed", 30, "the refusal")
    row = fleet.agent_rows()["relay-t"]
    assert row["version"] == "1.0.0" and "does not match its signed SHA-256" in row["message"]
    assert row["failed_version"] == "2.0.0"

    other_key, _ = generate_key(fleet.root / "other")
    fleet.publish(make_build(fleet.root / "again", "2.0.0"), "2.0.0")
    signature = fleet.root / "builds" / "release-2.0.0.json.sig"
    from cryptography.hazmat.primitives import serialization

    forged = serialization.load_pem_private_key(other_key.read_bytes(), None)
    body = (fleet.root / "builds" / "release-2.0.0.json").read_bytes()
    signature.write_bytes(base64.b64encode(forged.sign(body)))  # type: ignore[union-attr]
    wait_until(lambda: connected(fleet, "relay-t"), 30, "the agent")
    fleet.api("POST", "/api/agents/relay-t/upgrade")
    wait_until(lambda: "signature" in fleet.agent_rows()["relay-t"]["message"], 30, "refusal")
    assert fleet.agent_rows()["relay-t"]["version"] == "1.0.0"


def test_an_unreachable_build_url_leaves_the_agent_pending_with_the_manual_command(
    fleet: Fleet,
) -> None:
    old = make_build(fleet.root, "1.0.0")
    fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
    fleet.start_server(public_url=f"http://127.0.0.1:{free_port()}")
    fleet.start_agent("relay-p", old)
    wait_until(lambda: connected(fleet, "relay-p"), 30, "the agent")
    fleet.api("POST", "/api/agents/relay-p/upgrade")
    wait_until(lambda: versions(fleet)["relay-p"][1] == "pending upgrade", 30, "pending")
    message = fleet.agent_rows()["relay-p"]["message"]
    assert "cannot download" in message and "stairway agent install" in message


def test_a_broken_build_rolls_itself_back_and_halts_the_rollout(fleet: Fleet) -> None:
    old = make_build(fleet.root, "1.0.0")
    fleet.publish(make_build(fleet.root, "2.0.0", broken=True), "2.0.0")
    fleet.start_server()
    home = fleet.start_agent("relay-b", old)
    wait_until(lambda: connected(fleet, "relay-b"), 30, "the agent")
    fleet.api("PUT", "/api/policy", {"mode": "auto", "interval": 0.2})
    wait_until(lambda: versions(fleet)["relay-b"] == ("1.0.0", "failed"), 60, "the rollback")
    row = fleet.agent_rows()["relay-b"]
    assert "exited with status 1" in row["message"] and row["failed_version"] == "2.0.0"
    assert (home / "current").resolve().name == "agent-1.0.0.pyz"
    wait_until(lambda: fleet.api("GET", "/api/policy")["halted"] is not None, 30, "the halt")
    assert "relay-b" in fleet.api("GET", "/api/policy")["halted"]
    assert "agent.upgrade_failed" in audit_actions(fleet)
    assert "agent.upgrade_halted" in audit_actions(fleet)


def test_wrong_credentials_get_401_or_403_an_audit_entry_and_nothing_more(fleet: Fleet) -> None:
    fleet.start_server()
    cases = [
        (None, 401, "unauthorized"),
        ("swt_admin_nothere.secret", 401, "unauthorized"),
        (fleet.admin[:-3] + "xyz", 401, "unauthorized"),
        (fleet.enroll, 403, "forbidden"),
    ]
    for token, status, detail in cases:
        with pytest.raises(urllib.error.HTTPError) as caught:
            fleet.api("GET", "/api/agents", token=token or "none")
        assert caught.value.code == status
        assert json.loads(caught.value.read()) == {"detail": detail}
    fleet.stop()  # a stopping server writes the minute's tally of refusals
    entries = audit.read(context.open_context(fleet.site, None).engine)
    dispose_all()
    denied = [e for e in entries if e.action == "auth.denied"]
    assert 1 <= len(denied) <= 2, "one entry for the source and minute (two across a minute)"
    assert sum(e.data["count"] for e in denied) == len(cases)
    assert {e.data["from"] for e in denied} == {"127.0.0.1"}
    reasons: Counter[str] = sum((Counter(e.data["reasons"]) for e in denied), Counter())
    assert reasons == {
        "no bearer token, or not a Stairway token": 1,
        "unknown token": 2,
        "an enroll token cannot do this": 1,
    }
    assert all(fleet.admin.split(".")[1] not in json.dumps(e.data) for e in denied)


def test_an_agent_speaking_an_unknown_protocol_is_refused_with_the_accepted_range(
    fleet: Fleet,
) -> None:
    fleet.start_server()
    home = fleet.start_agent("relay-old", make_build(fleet.root, "0.9.0", protocol=0))
    wait_until(lambda: fleet.agents[-1].poll() is not None, 30, "the refused agent to stop")
    assert fleet.agents[-1].returncode == 2
    row = fleet.agent_rows()["relay-old"]
    assert row["state"] == "refused" and "accepts protocols 1 to 2" in row["message"]
    assert (home / "current").resolve().name == "agent-0.9.0.pyz"


def test_tokens_are_stored_hashed(tmp_path: Path, database_url: str) -> None:
    with fleet_site(tmp_path, database_url) as fleet:
        ctx = context.open_context(fleet.site, None)
        with ctx.engine.connect() as conn:
            from sqlalchemy import text

            stored = conn.execute(text("SELECT hash FROM stairway_tokens")).scalars().all()
            assert len(stored) == 2
            assert fleet.admin.split(".")[1] not in stored
            assert audit.verify(conn) == []
        dispose_all()


@pytest.mark.heavy  # a minute or more: started first, not left for the end
def test_two_replicas_one_evaluator_reaching_agents_through_notify_and_a_takeover(
    tmp_path: Path, pg_database: str
) -> None:
    import signal

    with fleet_site(tmp_path, pg_database) as fleet:
        old = make_build(fleet.root, "1.0.0")
        fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
        fleet.start_server()  # replica A: first up, it holds the evaluator lock
        first = fleet.server
        assert first is not None
        _, port = fleet.start_replica()  # replica B: every agent connects here
        names = [f"relay-{n}" for n in range(4)]
        for name in names:
            fleet.start_agent(name, old, port=port)
        wait_until(lambda: fleet.connected() == set(names), 60, "four agents on replica B")
        policy = {"mode": "staged", "percent": 50, "interval": 1}
        fleet.api("PUT", "/api/policy", policy, port=port)
        wait_until(
            lambda: sum(v == ("2.0.0", "online") for v in versions(fleet).values()) >= 2,
            60,
            "the first wave, sent by A through B",
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        fleet.port = port  # ask B from now on
        wait_until(
            lambda: all(v == ("2.0.0", "online") for v in versions(fleet).values()),
            90,
            "the second wave, sent by B once it took the evaluator over",
        )
        entries = fleet.api("GET", "/api/audit", port=port)
        sent = [
            e["data"]["agent"]
            for e in entries
            if e["action"] == "agent.upgrade_run" and e["actor"] == "policy"
        ]
        assert sorted(sent) == names, "each agent was sent the upgrade once"
        done = [e["data"]["agent"] for e in entries if e["action"] == "agent.upgrade"]
        assert sorted(done) == names


@pytest.mark.heavy  # a minute or more: started first, not left for the end
def test_the_identity_sync_relay_embeds_the_agent_and_is_upgraded_by_the_control_plane(
    tmp_path: Path, sqlite_database: str
) -> None:
    from stairway.examples.identity_sync import relay

    catalog = Path(relay.__file__).parent / "upgrades"
    with fleet_site(tmp_path, sqlite_database, source=catalog) as fleet:
        old = relay.build("1.0.4", 2, tmp_path / "relay-1.0.4.pyz")
        fleet.publish(relay.build("2.0.0", 3, tmp_path / "relay-2.0.0.pyz"), "2.0.0")
        fleet.start_server()
        home = fleet.start_agent("relay-eu", old, product="identity-sync")
        wait_until(lambda: connected(fleet, "relay-eu"), 30, "the relay")
        assert versions(fleet)["relay-eu"] == ("1.0.4", "online")
        fleet.api("POST", "/api/agents/relay-eu/upgrade")
        wait_until(lambda: versions(fleet)["relay-eu"] == ("2.0.0", "online"), 60, "2.0.0")
        assert fleet.agent_rows()["relay-eu"]["protocol"] == 3
        assert (home / "spool").is_dir(), "the relay's own readiness check ran"


def test_the_control_plane_mounted_in_a_products_own_app_runs_its_evaluator_and_ui(
    fleet: Fleet,
) -> None:
    fleet.port = free_port()
    prefix = f"http://127.0.0.1:{fleet.port}/fleet"
    environment = os.environ | {"STAIRWAY_SITE": str(fleet.site), "PUBLIC_URL": prefix}
    command = [sys.executable, "-m", "uvicorn", "--factory", "mounted_product:make"]
    command += ["--port", str(fleet.port), "--log-level", "warning"]
    here = str(Path(__file__).parent)
    fleet.server = subprocess.Popen(command, env=environment, cwd=here)
    wait_until(lambda: answers(f"{prefix}/health"), 30, "the product's app")
    fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
    agent_url = prefix.replace("http://", "ws://")
    home = fleet.start_agent("relay-m", make_build(fleet.root, "1.0.0"), server=agent_url)
    listed = lambda: fleet.api("GET", "/fleet/api/agents")  # noqa: E731
    wait_until(lambda: any(a["connected"] for a in listed()), 30, "the agent through /fleet")
    fleet.api("PUT", "/fleet/api/policy", {"mode": "auto", "interval": 0.2})
    wait_until(lambda: (home / "current").resolve().name == "agent-2.0.0.pyz", 60, "2.0.0")
    with urllib.request.urlopen(f"{prefix}/ui/agents", timeout=10) as page:
        assert page.url == f"{prefix}/ui/login", "sent to sign in, under the prefix"
        assert 'action="/fleet/ui/login"' in page.read().decode()


def policy_waves(entries: list[dict[str, Any]]) -> list[list[str]]:
    """The agents the evaluator sent the upgrade to, tick by tick, in the audit log's order: a
    tick's sends are one append, so a wave is a run of them that no other entry interrupts."""
    waves: list[list[str]] = []
    run: list[str] = []
    for entry in entries:
        if entry["action"] == "agent.upgrade_run" and entry["actor"] == "policy":
            run.append(entry["data"]["agent"])
        elif run:
            waves.append(run)
            run = []
    return [*waves, run] if run else waves


def wave_sentence(fleet: Fleet) -> str:
    operator = sign_in(Server(fleet.url), fleet.admin)
    page = lxml.html.fromstring(operator.get("/ui/agents").body)
    return " ".join(page.get_element_by_id("wave").text_content().split())


@pytest.mark.heavy
def test_a_staged_rollout_begun_before_any_agent_enrolled_upgrades_them_in_waves(
    tmp_path: Path, pg_database: str
) -> None:
    with fleet_site(tmp_path, pg_database) as fleet:
        old = make_build(fleet.root, "1.0.0")
        fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
        fleet.start_server()
        staged = {"mode": "staged", "percent": 40, "canary": True, "interval": 0.3}
        fleet.api("PUT", "/api/policy", staged)
        began = lambda: fleet.api("GET", "/api/policy")["rollout_target"] == "2.0.0"  # noqa: E731
        wait_until(began, 30, "the evaluator's first tick")
        assert fleet.api("GET", "/api/policy")["rollout_size"] == 0, "no agent yet"
        canary = fleet.enroll_agent("canary-1", old, options=("--group", "canary"))
        relays = [f"relay-{n}" for n in range(1, 5)]
        for home in [fleet.enroll_agent(name, old) for name in relays]:
            fleet.run_agent(home)
        wait_until(lambda: fleet.connected() == set(relays), 60, "the four relays online")
        # the canary is enrolled but not yet connected: nobody else may go before it
        fleet.run_agent(canary)
        everyone = {"canary-1", *relays}
        upgraded = lambda: {a for a, (v, s) in versions(fleet).items() if v == "2.0.0"}  # noqa: E731
        wait_until(lambda: upgraded() == everyone, 120, "every agent on 2.0.0")
        entries = fleet.api("GET", "/api/audit")
        # five agents at 40%: waves of two, after the canary alone
        assert policy_waves(entries) == [["canary-1"], relays[:2], relays[2:]]
        arrivals = [e["data"]["agent"] for e in entries if e["action"] == "agent.upgrade"]
        assert arrivals[0] == "canary-1" and set(arrivals[1:3]) == set(relays[:2])
        policy = fleet.api("GET", "/api/policy")
        assert (policy["rollout_size"], policy["halted"]) == (5, None)
        sentence = wave_sentence(fleet)
        assert "5 agent(s) in it; the current wave holds 2 agent(s)" in sentence, sentence
