"""The control plane over TLS with client certificates required (mutual TLS): agents enroll over
https, hold their websocket over wss and download builds over https, each with their own
certificate; an agent without one, or trusting the wrong CA, is turned away and told why."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

from fleet_harness import Fleet, fleet_site, free_port, make_build, wait_until
from tls_certs import Authority, make_authority


def client_context(authority: Authority) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(authority.ca))
    context.load_cert_chain(authority.client.cert, authority.client.key)
    return context


def mtls_server(fleet: Fleet, authority: Authority) -> None:
    fleet.tls = client_context(authority)
    options = (
        "--tls-cert",
        str(authority.server.cert),
        "--tls-key",
        str(authority.server.key),
        "--client-ca",
        str(authority.ca),
    )
    fleet.port = fleet.port or free_port()
    fleet.start_server(public_url=f"https://127.0.0.1:{fleet.port}", options=options)


def stairway(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "stairway", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def enroll(fleet: Fleet, agent_id: str, *options: str) -> subprocess.CompletedProcess[str]:
    command = ["agent", "enroll", "--server", f"wss://127.0.0.1:{fleet.port}"]
    command += ["--token", fleet.enroll]
    command += ["--id", agent_id, "--home", str(fleet.root / "agents" / agent_id)]
    command += ["--key", str(fleet.public), "--product", "people"]
    command += ["--build", str(make_build(fleet.root / agent_id, "1.0.0")), *options]
    return stairway(*command)


def test_an_agent_with_its_certificate_enrolls_connects_and_upgrades_over_mutual_tls(
    tmp_path: Path, sqlite_database: str
) -> None:
    authority = make_authority(tmp_path / "pki")
    with fleet_site(tmp_path, sqlite_database) as fleet:
        fleet.publish(make_build(fleet.root, "2.0.0"), "2.0.0")
        mtls_server(fleet, authority)
        certificate = ("--ca", str(authority.ca), "--cert", str(authority.client.cert))
        options = (*certificate, "--cert-key", str(authority.client.key), "--group", "canary")
        home = fleet.start_agent("relay-tls", make_build(fleet.root, "1.0.0"), options=options)
        assert (home / "client.key").stat().st_mode & 0o777 == 0o600
        wait_until(lambda: fleet.agent_rows().get("relay-tls", {}).get("connected"), 30, "wss")
        row = fleet.agent_rows()["relay-tls"]
        assert (row["version"], row["group"]) == ("1.0.0", "canary")
        fleet.api("POST", "/api/agents/relay-tls/upgrade")
        wait_until(
            lambda: fleet.agent_rows()["relay-tls"]["version"] == "2.0.0", 60, "2.0.0 over https"
        )
        assert (home / "current").resolve().name == "agent-2.0.0.pyz"


def test_no_client_certificate_or_the_wrong_ca_is_turned_away_with_the_reason(
    tmp_path: Path, sqlite_database: str
) -> None:
    authority = make_authority(tmp_path / "pki")
    stranger = make_authority(tmp_path / "other", name="other")
    with fleet_site(tmp_path, sqlite_database) as fleet:
        mtls_server(fleet, authority)
        without = enroll(fleet, "no-cert", "--ca", str(authority.ca))
        assert without.returncode != 0
        assert "cannot reach https://127.0.0.1" in without.stderr
        assert "--cert/--cert-key" in without.stderr
        assert not (fleet.root / "agents" / "no-cert" / "agent.json").exists()
        wrong_ca = enroll(
            fleet,
            "wrong-ca",
            *("--ca", str(stranger.ca), "--cert", str(authority.client.cert)),
            *("--cert-key", str(authority.client.key)),
        )
        assert wrong_ca.returncode != 0 and "certificate verify failed" in wrong_ca.stderr
        assert fleet.agent_rows() == {}, "nobody was enrolled"


def test_tls_options_that_cannot_work_are_refused_before_anything_is_written(
    tmp_path: Path, sqlite_database: str
) -> None:
    authority = make_authority(tmp_path / "pki")
    with fleet_site(tmp_path, sqlite_database) as fleet:
        fleet.port = 1  # nothing is contacted: the options are refused first
        half = enroll(fleet, "half", "--cert", str(authority.client.cert))
        assert half.returncode != 0 and "--cert and --cert-key go together" in half.stderr
        plain = stairway(
            *("agent", "enroll", "--server", "ws://127.0.0.1:1", "--token", "t", "--id", "x"),
            *("--home", str(tmp_path / "x"), "--key", str(fleet.public), "--product", "people"),
            *("--build", str(fleet.public), "--ca", str(authority.ca)),
        )
        assert plain.returncode != 0 and "not a wss:// address" in plain.stderr
        assert not (tmp_path / "x").exists()
        garbage = tmp_path / "garbage.pem"
        garbage.write_text("not a certificate\n")
        bad = enroll(fleet, "bad", "--ca", str(garbage))
        assert bad.returncode != 0 and "cannot load the agent's TLS files" in bad.stderr
        serve = stairway(
            "serve", "--site", str(fleet.site), "--tls-cert", str(authority.server.cert)
        )
        assert serve.returncode != 0 and "--tls-cert and --tls-key go together" in serve.stderr
