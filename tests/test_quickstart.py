"""``stairway quickstart``: the README's main command, run for real as a subprocess."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson

import stairway

EXAMPLE_SCHEMA = (
    Path(stairway.__file__).parent / "examples" / "identity_sync" / "upgrades" / "schema"
)


def test_quickstart_upgrades_the_example_product_end_to_end(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "stairway", "quickstart", "--dir", str(demo)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"COLUMNS": "80"},  # the README's reader in a plain terminal
    )
    assert done.returncode == 0, done.stderr + done.stdout
    said = done.stdout
    lines = said.splitlines()
    assert max(len(line) for line in lines) <= 80, said
    flat = re.sub(r"[\s│┃]+", "", said)  # every line and table border joined up
    labels = {path.stem for path in EXAMPLE_SCHEMA.iterdir() if path.stem in flat}
    assert len(labels) >= 8, "the plan and the status name the changes to 2.0.0"
    assert {label for label in labels if not any(label in line for line in lines)} == set()
    site_line = str(demo / "site.toml")
    assert len(site_line) > 80 or any(site_line in line for line in lines), said
    assert "[5/18] schema 1.0.0 -> 1.0.4" in said, "the required stop is walked"
    assert '"release":"2.0.0"' in said.replace("\n", "") and "10,000 users" in said
    assert '"bind_password":"opens"' in said.replace("\n", ""), "the secret survives the upgrade"
    with sqlite3.connect(demo / "identity-sync.db") as db:
        connector = orjson.loads(
            db.execute("SELECT data FROM objects WHERE oid = 'connector-1'").fetchone()[0]
        )
        runs = dict(db.execute("SELECT id, state FROM sync_runs").fetchall())
        schedules = {
            oid: orjson.loads(data)["connectorType"]
            for oid, data in db.execute(
                "SELECT oid, data FROM objects WHERE type = 'ScheduleConfig'"
            ).fetchall()
        }
        connector_type = db.execute("SELECT type FROM connectors WHERE id = 1").fetchone()
        release = db.execute("SELECT value FROM stairway_meta WHERE key = 'release'").fetchone()
        roles = db.execute("SELECT count(*) FROM objects WHERE type = 'Archetype'").fetchone()
    assert (connector["host"], connector["port"]) == ("ldap.example.org", 636)
    assert runs == {1: "finished", 2: "queued"}, "interrupted, then re-queued by the service"
    assert connector_type == ("ldap-v3",), "the connector type is renamed ..."
    assert schedules == {"schedule-1": "ldap-v3", "schedule-2": "csv"}, (
        "... and its schedules follow"
    )
    assert release == ("2.0.0",) and roles == (2,)
    assert "interval_seconds = 300" in (demo / "etc" / "identity-sync.toml").read_text("utf-8")
    assert b"smallrye" not in (demo / "etc" / "standalone.xml").read_bytes()
    assert (demo / "releases" / "current").readlink().name == "2.0.0"
    assert not (demo / "identity-sync.pid").exists(), "the demo service is stopped at the end"


def test_quickstart_refuses_a_directory_holding_a_demo(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text("", "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "stairway", "quickstart", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "already exists" in done.stderr


def test_the_example_service_serves_its_api_and_refuses_in_maintenance(tmp_path: Path) -> None:
    from stairway import maintenance, operations, service
    from stairway.quickstart import open_demo, seed, write_site

    demo = write_site(tmp_path / "demo")
    ctx = open_demo(demo)
    operations.init(ctx, "1.0.0")
    seed(ctx, lambda _n: None)
    base = demo.health_url.removesuffix("/health")

    def get(path: str, admin: bool = False) -> tuple[int, object]:
        request = urllib.request.Request(base + path, headers={"x-admin": "yes"} if admin else {})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, orjson.loads(answer.read())
        except urllib.error.HTTPError as err:
            return err.code, None

    service.run_command(ctx.site.service, "start")
    try:
        service.wait_healthy(ctx.site.service)
        assert get("/health")[1]["release"] == "1.0.0"  # type: ignore[index]
        assert get("/users/7") == (200, {"id": 7, "username": "user00007", "name": "Demo User 7"})
        assert [c["type"] for c in get("/connectors")[1]] == ["ldap", "csv"]  # type: ignore[union-attr]
        assert len(get("/sync-runs")[1]) == 2  # type: ignore[arg-type]
        assert get("/connectors/1/credential") == (
            200,
            {"connector": 1, "bind_password": "opens", "bytes": 32},
        )
        assert get("/roles") == (200, [])
        maintenance.switch_on(ctx.engine, "upgrade to 2.0.0")
        assert get("/users/7")[0] == 503
        assert get("/users/7", admin=True)[0] == 200
        assert get("/health")[1]["maintenance"] is True  # type: ignore[index]
    finally:
        service.run_command(ctx.site.service, "stop")
