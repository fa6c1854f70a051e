"""Newer releases said beyond ``status``: ``verify`` reports what the last ``release check``
found above its target (with the path as ``plan`` plans it, or that the release must be fetched
first) and a check too old to trust, as info that never changes its exit code; the web UI's
dashboard shows the same notice with what to run."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lxml.html
import orjson
from fastapi.testclient import TestClient

from cli_runner import stairway
from stairway import context, release_feed, releases
from stairway.fleet import tokens
from stairway.fleet.server import create_app
from stairway.operations.fleet import fleet_config
from stairway.site import load_site

KNOWN = ("1.0.0", "2.0.0", "2.1.0")  # the catalog's releases; 2.1.0 requires 2.0.0
PATH = "2.1.0 (LTS) is available, path 1.0.0 -> 2.0.0 -> 2.1.0"


def helpdesk(tmp_path: Path, database: str, known: tuple[str, ...] = KNOWN) -> Path:
    """A helpdesk site at 1.0.0 whose catalog knows ``known``, trusting ``keys/release.pub``
    and checking the index published in ``published/``."""
    releases.generate_key(tmp_path / "keys")
    catalog = tmp_path / "catalog"
    (catalog / "schema").mkdir(parents=True)
    listed = "".join(
        f'\n[[release]]\nversion = "{v}"\nschema = 1\n'
        + ('lts = true\nrequires = "2.0.0"\n' if v == "2.1.0" else "")
        for v in known
    )
    (catalog / "stairway.toml").write_text(f'[product]\nname = "helpdesk"\n{listed}', "utf-8")
    (catalog / "schema" / "0001_tickets.sql").write_text(
        "CREATE TABLE tickets (id INTEGER PRIMARY KEY);\n", "utf-8"
    )
    site = tmp_path / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "{database}"\ncatalog = "catalog"\n'
        f'backup_dir = "{tmp_path / "backups"}"\ndata_dir = "{tmp_path / "data"}"\n'
        'release_key = "keys/release.pub"\nrelease_index = "published"\n',
        "utf-8",
    )
    code, _, err = stairway("init", "--version", "1.0.0", "--site", str(site))
    assert code == 0, err
    return site


def checked(site: Path) -> None:
    """The vendor publishes 1.0.0, 2.0.0 and 2.1.0 (LTS, after 2.0.0); the site checks."""
    listing = site.parent / "releases.toml"
    listing.write_text(
        'product = "helpdesk"\n\n[[release]]\nversion = "1.0.0"\n\n'
        '[[release]]\nversion = "2.0.0"\n\n'
        '[[release]]\nversion = "2.1.0"\nlts = true\nrequires = "2.0.0"\n',
        "utf-8",
    )
    key, out = site.parent / "keys" / "release.key", site.parent / "published"
    code, _, err = stairway(
        "release", "publish-index", str(listing), "--key", str(key), "--out", str(out)
    )
    assert code == 0, err
    code, _, err = stairway("release", "check", "--site", str(site))
    assert code == 0, err


def aged(site: Path, **fields: datetime) -> None:
    """The recorded check as time has passed: ``checked_at`` or ``expires`` set back."""
    state = release_feed.state_file(load_site(site))
    data = orjson.loads(state.read_bytes())
    data["last_check"] |= {name: when.isoformat() for name, when in fields.items()}
    state.write_bytes(orjson.dumps(data))


def verified(site: Path, to: str) -> tuple[int, str, list[dict[str, Any]]]:
    """verify's exit code and text, and its releases findings in ``--json``."""
    code, said, err = stairway("verify", "--to", to, "--site", str(site))
    assert code == 0, err
    code_json, body, err = stairway("verify", "--to", to, "--json", "--site", str(site))
    assert code_json == 0, err
    found = orjson.loads(body)
    assert found["blocked"] is False
    return code, " ".join(said.split()), [f for f in found["findings"] if f["topic"] == "releases"]


def test_verify_says_a_newer_release_and_its_path_as_info(
    tmp_path: Path, database_url: str
) -> None:
    site = helpdesk(tmp_path, database_url)
    checked(site)
    _, said, found = verified(site, "2.0.0")
    assert PATH in said and "stairway verify --to 2.1.0" in said
    assert [(f["severity"], f["message"], f["blocking"]) for f in found] == [("info", PATH, False)]
    assert found[0]["hint"] == "`stairway verify --to 2.1.0` then `stairway upgrade --to 2.1.0`"
    code, body, err = stairway("verify", "--to", "2.1.0", "--json", "--site", str(site))
    assert code == 0, err
    topics = {f["topic"] for f in orjson.loads(body)["findings"]}
    assert "releases" not in topics, "nothing above the target: nothing to say"


def test_verify_says_to_fetch_a_release_the_catalog_does_not_know(tmp_path: Path) -> None:
    site = helpdesk(tmp_path, f"sqlite:///{tmp_path / 'helpdesk.db'}", ("1.0.0", "2.0.0"))
    checked(site)
    _, said, found = verified(site, "2.0.0")
    assert [f["message"] for f in found] == [
        "2.1.0 (LTS) is available; the catalog does not know it yet, so fetch the release first"
    ]
    assert found[0]["hint"] == release_feed.next_steps("2.1.0")
    assert "stairway release fetch 2.1.0" in said


def test_verify_says_nothing_of_releases_without_a_check(tmp_path: Path) -> None:
    site = helpdesk(tmp_path, f"sqlite:///{tmp_path / 'helpdesk.db'}")
    _, said, found = verified(site, "2.0.0")
    assert found == [] and "releases" not in said


def test_verify_says_to_check_again_when_the_last_check_is_old(tmp_path: Path) -> None:
    site = helpdesk(tmp_path, f"sqlite:///{tmp_path / 'helpdesk.db'}")
    checked(site)
    long_ago = datetime.now(UTC) - timedelta(days=9, hours=1)
    for field, said in [
        ("checked_at", "the last release check was 9 days ago"),
        ("expires", "the release index the last check read expired at"),
    ]:
        aged(site, **{field: long_ago})
        _, text, found = verified(site, "2.0.0")
        assert found[0]["message"] == PATH, "what it found is still said"
        assert said in found[1]["message"] and found[1]["severity"] == "info"
        assert found[1]["hint"] == "`stairway release check`"
        assert said in text
    aged(site, checked_at=datetime.now())  # a time without its zone: hand-edited
    assert verified(site, "2.0.0")[2] == [], "a check that cannot be read says nothing"


def _signed_in(client: TestClient, engine: Any) -> None:
    with engine.begin() as conn:
        admin = tokens.issue(conn, tokens.TokenKind.ADMIN, "notices")
    client.get("/ui/login")
    client.post("/ui/login", data={"token": admin, "csrf": client.cookies["stairway_signin"]})


def test_the_dashboard_shows_a_newer_release_with_what_to_run(tmp_path: Path) -> None:
    site = helpdesk(tmp_path, f"sqlite:///{tmp_path / 'helpdesk.db'}")
    ctx = context.open_context(site, None)
    with TestClient(create_app(ctx.engine, fleet_config(ctx, "http://testserver"))) as client:
        _signed_in(client, ctx.engine)
        before = lxml.html.fromstring(client.get("/ui/").text)
        assert not before.xpath('//*[starts-with(@id, "release-")]'), "no check: nothing said"
        checked(site)  # while the server runs: the next page says it
        page = lxml.html.fromstring(client.get("/ui/").text)
    notice = page.get_element_by_id("release-1")
    assert notice.get("role") == "status" and "said-info" in notice.get("class")
    text = " ".join(notice.text_content().split())
    assert PATH in text
    assert re.search(r"Next: `stairway verify --to 2\.1\.0` then `stairway upgrade", text)
    assert not page.xpath('//*[@role="alert"]'), "news is no alert"
