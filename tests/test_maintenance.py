"""Maintenance mode as an operator's command: ``stairway maintenance on|off|status`` on SQLite and
PostgreSQL; the example product answering 503 with the message while it is on (its ASGI app
through a test client); the control plane's web UI showing it as a banner."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from cli_runner import stairway
from stairway import audit, context, operations
from stairway.database import dispose_all
from stairway.examples.identity_sync.service import create_app
from stairway.fleet.tokens import TokenKind
from stairway.quickstart import open_demo, seed, write_site

MESSAGE = "back at 14:00 UTC: the database moves to new disks"


def _replace(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text("utf-8").replace(old, new), "utf-8")


@pytest.fixture
def demo(tmp_path: Path, database_url: str) -> Iterator[Path]:
    """A demo site of the example product at 1.0.0 with a few users, on either engine."""
    made = write_site(tmp_path / "demo")
    if database_url.startswith("postgresql"):
        _replace(made.site_file, f"sqlite:///{made.directory / 'identity-sync.db'}", database_url)
    ctx = (
        open_demo(made)
        if database_url.startswith("sqlite")
        else context.open_context(made.site_file, None)
    )
    operations.init(ctx, "1.0.0")
    seed(ctx, lambda _n: None, 20)
    yield made.site_file
    dispose_all()


def test_on_status_off_through_the_command_line(demo: Path) -> None:
    site = ("--site", str(demo))
    assert stairway("maintenance", "status", *site)[1].strip() == "maintenance is off"
    code, out, err = stairway("maintenance", "on", "--message", MESSAGE, *site)
    assert code == 0, err
    assert re.fullmatch(rf"maintenance is on since \S+: {MESSAGE}", " ".join(out.split()))
    code, out, _ = stairway("maintenance", "status", "--json", *site)
    said = orjson.loads(out)
    assert (code, said["on"], said["reason"]) == (0, True, MESSAGE) and said["since"]
    code, out, err = stairway("maintenance", "off", *site)
    assert (code, out.strip()) == (0, "maintenance is off"), err
    assert orjson.loads(stairway("maintenance", "status", "--json", *site)[1]) == {"on": False}
    assert stairway("maintenance", "off", *site)[1].strip() == "maintenance is off (it was not on)"
    ctx = context.open_context(demo, None)
    with ctx.engine.connect() as conn:
        entries = [(e.action, e.data) for e in audit.entries(conn)][-2:]
    assert entries == [
        ("site.maintenance", {"on": True, "message": MESSAGE}),
        ("site.maintenance", {"on": False, "was": MESSAGE}),
    ]


def test_an_empty_message_is_refused_with_a_hint(demo: Path) -> None:
    code, _, err = stairway("maintenance", "on", "--message", "  ", "--site", str(demo))
    assert code == 2 and "error: the maintenance message is empty" in err
    assert "hint:" in err and "Traceback" not in err
    assert stairway("maintenance", "status", "--site", str(demo))[1].strip() == "maintenance is off"


def test_the_example_service_answers_503_with_the_message_while_on(demo: Path) -> None:
    site = ("--site", str(demo))
    with TestClient(create_app(demo, "1.0.0")) as client:
        assert client.get("/users/7").status_code == 200
        assert stairway("maintenance", "on", "--message", MESSAGE, *site)[0] == 0
        refused = client.get("/users/7")
        assert (refused.status_code, refused.json()) == (503, {"detail": MESSAGE})
        assert client.get("/roles").status_code == 503
        assert client.get("/users/7", headers={"x-admin": "yes"}).status_code == 200
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["maintenance"] is True
        assert stairway("maintenance", "off", *site)[0] == 0
        assert client.get("/users/7").json()["username"] == "user00007"


def test_the_web_ui_shows_a_banner_while_on(demo: Path) -> None:
    from stairway.operations import fleet

    ctx = context.open_context(demo, None)
    token = fleet.create_token(ctx, TokenKind.ADMIN, "operator", None, None)
    with TestClient(fleet.control_plane(demo, "http://testserver")) as client:
        form = client.get("/ui/login")
        nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert nonce is not None
        signed_in = client.post("/ui/login", data={"token": token, "csrf": nonce.group(1)})
        assert signed_in.status_code == 200 and "Dashboard" in signed_in.text
        assert 'id="maintenance"' not in signed_in.text
        assert stairway("maintenance", "on", "--message", MESSAGE, "--site", str(demo))[0] == 0
        for path in ("/ui/", "/ui/agents", "/ui/audit"):
            banner = re.search(
                r'<div class="maintenance" id="maintenance"[^>]*>(.*?)</div>', client.get(path).text
            )
            assert banner is not None and MESSAGE in banner.group(1), path
        assert stairway("maintenance", "off", "--site", str(demo))[0] == 0
        assert 'id="maintenance"' not in client.get("/ui/").text


def test_off_is_refused_while_an_interrupted_upgrade_left_it_on(demo: Path) -> None:
    from stairway.journal import Journal

    ctx = context.open_context(demo, None)
    journal = Journal(context.backup_dir(ctx))
    journal.start("u-1", {"from": "1.0.0", "to": "2.0.0", "steps": [{"kind": "backup"}]})
    journal.begin(0)
    assert stairway("maintenance", "on", "--site", str(demo))[0] == 0
    code, _, err = stairway("maintenance", "off", "--site", str(demo))
    assert code == 2 and "an interrupted upgrade left maintenance on" in err
    assert "hint: finish it with `stairway upgrade --resume`" in err
    said = stairway("maintenance", "status", "--site", str(demo))[1]
    assert "the service is down for maintenance" in said
