"""Releases within reach: a site that reads its catalog through ``releases/current`` installs its
first release with ``init``, and every command given ``--to V`` reads V's own catalog from the
verified release, fetching it from the site's artifacts when it is not installed yet; `release
fetch` copies a release in from a URL or a directory, checking the signature before it reads
the artifact and the artifact against the signed size and hash before it unpacks anything."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from cli_runner import stairway
from example_sites import free_port
from stairway import context, releases
from stairway.database import dispose_all

VERSIONS = {"1.0.0": 1, "1.1.0": 2, "2.0.0": 3}  # release: the highest change it needs
CHANGES = [
    "CREATE TABLE tickets (id INTEGER PRIMARY KEY, title TEXT NOT NULL);",
    "-- phase: expand\nALTER TABLE tickets ADD COLUMN priority INTEGER;",
    "-- phase: expand\nCREATE TABLE agents (id INTEGER PRIMARY KEY, name TEXT);",
]


# The product each release ships: a server whose health names the release it was built as.
PRODUCT = """import http.server, json, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(json.dumps({"release": "VERSION"}).encode())
    def log_message(self, *_):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def release_tree(root: Path, version: str) -> Path:
    """The release ``version`` as its vendor builds it: the product and its catalog, which
    knows every release up to its own."""
    tree = root / "trees" / version
    catalog = tree / "upgrades"
    (catalog / "schema").mkdir(parents=True)
    (tree / "bin").mkdir()
    (tree / "bin" / "helpdesk.py").write_text(PRODUCT.replace("VERSION", version), "utf-8")
    known = [v for v in VERSIONS if releases_up_to(v, version)]
    body = '[product]\nname = "helpdesk"\n' + "".join(
        f'\n[[release]]\nversion = "{v}"\nschema = {VERSIONS[v]}\n' for v in known
    )
    (catalog / "stairway.toml").write_text(body, "utf-8")
    for number, sql in enumerate(CHANGES[: VERSIONS[version]], start=1):
        (catalog / "schema" / f"{number:04d}_change.sql").write_text(sql + "\n", "utf-8")
    return tree


def releases_up_to(version: str, last: str) -> bool:
    order = list(VERSIONS)
    return order.index(version) <= order.index(last)


def publish(root: Path, version: str, key: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    artifact = where / f"helpdesk-{version}.tar.zst"
    releases.pack_release(release_tree(root / where.name, version), artifact)
    return releases.sign_release(key, artifact, "helpdesk", version)


@pytest.fixture
def vendor(tmp_path: Path) -> Path:
    """Three signed releases in the site's artifacts directory; the site keeps its releases and
    reads its catalog through ``current``. Returns the site file."""
    private, public = releases.generate_key(tmp_path / "keys")
    for version in VERSIONS:
        publish(tmp_path, version, private, tmp_path / "artifacts")
    site = tmp_path / "site.toml"
    site.write_text(
        "[site]\n"
        f'database = "sqlite:///{tmp_path / "helpdesk.db"}"\n'
        'catalog = "releases/current/upgrades"\n'
        'data_dir = "data"\nbackup_dir = "backups"\n'
        'releases_dir = "releases"\nartifacts = "artifacts"\n'
        f'release_key = "{public}"\n',
        "utf-8",
    )
    (tmp_path / "data").mkdir()
    return site


def ok(*args: str) -> str:
    code, out, err = stairway(*args)
    assert code == 0, err
    return out


def test_init_installs_the_first_release_and_a_target_release_brings_its_own_catalog(
    vendor: Path,
) -> None:
    site = str(vendor)
    releases_dir = vendor.parent / "releases"
    assert "installed" in ok("init", "--version", "1.0.0", "--site", site)
    assert releases.current_release(releases_dir) == "1.0.0"
    status = orjson.loads(ok("status", "--json", "--site", site))
    assert status["release"] == "1.0.0"
    plan = ok("plan", "--to", "2.0.0", "--site", site)  # no --catalog: 2.0.0's own
    assert "2.0.0" in plan
    assert (releases_dir / "2.0.0" / releases.MARKER).is_file(), "fetched from artifacts"
    assert releases.current_release(releases_dir) == "1.0.0", "current is not moved"
    ok("upgrade", "--to", "2.0.0", "--site", site)
    assert releases.current_release(releases_dir) == "2.0.0"
    assert orjson.loads(ok("status", "--json", "--site", site))["release"] == "2.0.0"
    ok("rollback", "--yes", "--site", site)
    assert releases.current_release(releases_dir) == "1.0.0"
    assert orjson.loads(ok("status", "--json", "--site", site))["release"] == "1.0.0"


def test_an_unpublished_target_is_refused_naming_the_known_releases(vendor: Path) -> None:
    ok("init", "--version", "1.0.0", "--site", str(vendor))
    code, _, err = stairway("plan", "--to", "9.0.0", "--site", str(vendor))
    assert code == 2, err
    assert "9.0.0" in err and "Traceback" not in err


def test_release_verify_needs_no_catalog(vendor: Path) -> None:
    code, out, err = stairway("release", "verify", "--version", "1.1.0", "--site", str(vendor))
    assert code == 0, err
    assert "verified" in out


@pytest.fixture
def elsewhere(vendor: Path) -> Path:
    """2.0.0 published somewhere else; the site's artifacts hold only 1.0.0 and 1.1.0."""
    source = vendor.parent / "published"
    shutil.copytree(vendor.parent / "artifacts", source)
    for name in ("helpdesk-2.0.0.tar.zst", "release-2.0.0.json", "release-2.0.0.json.sig"):
        (vendor.parent / "artifacts" / name).unlink()
    return source


@pytest.fixture
def served(elsewhere: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(elsewhere))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("how", ["directory", "url"])
def test_release_fetch_copies_a_release_in_and_installs_it(
    vendor: Path, elsewhere: Path, how: str, request: pytest.FixtureRequest
) -> None:
    source = str(elsewhere) if how == "directory" else request.getfixturevalue("served")
    out = ok("release", "fetch", "2.0.0", "--from", source, "--site", str(vendor))
    assert "installed" in out
    installed = vendor.parent / "releases" / "2.0.0"
    assert (installed / "upgrades" / "stairway.toml").is_file()
    assert (vendor.parent / "artifacts" / "helpdesk-2.0.0.tar.zst").is_file()


def _refused_leaving_nothing(vendor: Path, source: Path, said: str) -> None:
    before = sorted(p.name for p in (vendor.parent / "artifacts").iterdir())
    code, _, err = stairway(
        "release", "fetch", "2.0.0", "--from", str(source), "--site", str(vendor)
    )
    assert code == 2, err
    assert said in err and "Traceback" not in err
    assert not (vendor.parent / "releases" / "2.0.0").exists()
    assert sorted(p.name for p in (vendor.parent / "artifacts").iterdir()) == before


def test_fetch_refuses_an_artifact_longer_than_signed(vendor: Path, elsewhere: Path) -> None:
    artifact = elsewhere / "helpdesk-2.0.0.tar.zst"
    artifact.write_bytes(artifact.read_bytes() + b"\0" * 4096)
    _refused_leaving_nothing(vendor, elsewhere, "has more than the")


def test_fetch_refuses_a_changed_artifact(vendor: Path, elsewhere: Path) -> None:
    artifact = elsewhere / "helpdesk-2.0.0.tar.zst"
    raw = bytearray(artifact.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    artifact.write_bytes(bytes(raw))
    _refused_leaving_nothing(vendor, elsewhere, "does not match its signed SHA-256")


def test_fetch_refuses_a_release_signed_by_another_key(vendor: Path, elsewhere: Path) -> None:
    other, _ = releases.generate_key(vendor.parent / "other-keys")
    publish(vendor.parent / "forged", "2.0.0", other, elsewhere)
    _refused_leaving_nothing(vendor, elsewhere, "does not verify")


def test_fetch_refuses_a_manifest_that_is_not_one(vendor: Path, elsewhere: Path) -> None:
    (elsewhere / "release-2.0.0.json").write_bytes(b"x" * (200 << 10))
    _refused_leaving_nothing(vendor, elsewhere, "is not a release manifest")


def test_fetch_from_a_missing_source_says_so(vendor: Path) -> None:
    _refused_leaving_nothing(vendor, vendor.parent / "nowhere", "cannot read")


@pytest.mark.parametrize("recovery", [("upgrade", "--resume"), ("rollback",)])
def test_an_upgrade_killed_before_its_schema_step_is_recovered_without_a_catalog(
    vendor: Path, recovery: tuple[str, ...]
) -> None:
    """``current`` still names 1.0.0, whose catalog does not know 2.0.0: the recovery reads the
    catalog of the release the journal was going to."""
    site = str(vendor)
    ok("init", "--version", "1.0.0", "--site", site)
    dispose_all()  # this process holds the database no longer: the upgrade stops what does
    environment = {**os.environ, "STAIRWAY_FAULT": "4:begin"}  # the first schema step
    command = [sys.executable, "-m", "stairway", "upgrade", "--to", "2.0.0", "--site", site]
    killed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert releases.current_release(vendor.parent / "releases") == "1.0.0"
    ok(*recovery, "--site", site)
    want = "2.0.0" if recovery[0] == "upgrade" else "1.0.0"
    assert releases.current_release(vendor.parent / "releases") == want
    assert orjson.loads(ok("status", "--json", "--site", site))["release"] == want


def _health(port: int) -> object:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            return orjson.loads(answer.read()).get("release")
    except OSError:
        return None


def test_a_vendors_three_releases_from_first_install_to_rollback(vendor: Path) -> None:
    """The whole life of a site, as docs/site.md walks it: no artifact unpacked by hand, no
    --catalog, the product started by Stairway, and its health proving each release."""
    port = free_port()
    runner = f"{sys.executable} {vendor.parent}/releases/current/bin/helpdesk.py {port}"
    with vendor.open("a", encoding="utf-8") as out:
        out.write(f'\n[service]\nrun = "{runner}"\nhealth = "http://127.0.0.1:{port}/health"\n')
    site = str(vendor)
    try:
        ok("init", "--version", "1.0.0", "--site", site)
        assert "answers as release 1.0.0" in ok("service", "start", "--site", site)
        assert _health(port) == "1.0.0"
        ok("migrate", "--to", "1.1.0", "--dry-run", "--site", site)  # read through 1.1.0's catalog
        database = context.open_context(vendor, None).engine
        with database.begin() as conn:
            conn.execute(text("INSERT INTO tickets (title) VALUES ('printer on fire')"))
        dispose_all()
        ok("plan", "--to", "2.0.0", "--site", site)
        ok("verify", "--to", "2.0.0", "--site", site)
        ok("upgrade", "--to", "2.0.0", "--site", site)
        assert _health(port) == "2.0.0", "the new release answers as itself"
        assert orjson.loads(ok("service", "status", "--json", "--site", site))["state"] == "serving"
        ok("rollback", "--yes", "--site", site)
        assert _health(port) == "1.0.0"
        with context.open_context(vendor, None).engine.connect() as conn:
            titles = conn.execute(text("SELECT title FROM tickets")).scalars().all()
        assert titles == ["printer on fire"]
    finally:
        dispose_all()
        stairway("service", "stop", "--site", site)
    assert _health(port) is None


def test_a_product_started_by_hand_is_never_taken_for_the_new_release(vendor: Path) -> None:
    """Started outside Stairway, the runner's stop cannot end it (no pid file): the upgrade
    must not report 2.0.0 while 1.0.0 still answers on the port."""
    port = free_port()
    runner = f"{sys.executable} {vendor.parent}/releases/current/bin/helpdesk.py {port}"
    with vendor.open("a", encoding="utf-8") as out:
        out.write(
            f'\n[service]\nrun = "{runner}"\nhealth = "http://127.0.0.1:{port}/health"\n'
            "stop_timeout = 2\nhealth_timeout = 5\n"
        )
    site = str(vendor)
    ok("init", "--version", "1.0.0", "--site", site)
    dispose_all()
    by_hand = subprocess.Popen(runner.split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if _health(port) == "1.0.0":
                break
            threading.Event().wait(0.05)
        code, out, err = stairway("upgrade", "--to", "2.0.0", "--site", site)
        assert code != 0, out
        assert "still answers" in err and "Traceback" not in err
        assert releases.current_release(vendor.parent / "releases") == "1.0.0"
        assert orjson.loads(ok("status", "--json", "--site", site))["release"] == "1.0.0"
    finally:
        by_hand.terminate()
        by_hand.wait(10)
