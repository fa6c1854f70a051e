"""``stairway upgrade`` on SQLite and PostgreSQL: the whole path through a required stop, a
failing step rolled back with every row and file as before, a blocked verify touching nothing."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from cli_runner import stairway
from stairway import audit, context, operations
from stairway.database import dispose_all
from stairway.journal import ACTIVE

CATALOGS = Path(__file__).parent / "catalogs"
STUB = Path(__file__).parent / "service_stub.py"
PRODUCT_TABLES = ("objects", "settings", "jobs")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_site(root: Path, database_url: str, *, service: bool = True) -> Path:
    """A people site at 1.0.0 with users, a running job, config files and a data directory."""
    catalog = root / "catalog"
    shutil.copytree(CATALOGS / "people", catalog, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CATALOGS / "people_deltas" / "deltas", catalog / "deltas")
    (root / "data").mkdir()
    (root / "data" / "avatar.png").write_bytes(hashlib.sha256(b"avatar").digest() * 1500)
    (root / "etc").mkdir()
    (root / "etc" / "app.toml").write_text("[server]\nport = 8080  # proxy\n", "utf-8")
    shutil.copy(CATALOGS.parent / "configs" / "standalone.xml", root / "etc" / "standalone.xml")
    port = free_port()
    stub = f"{sys.executable} {STUB}"
    service_table = (
        f'[service]\nstop = "{stub} stop {root} {port}"\nstart = "{stub} start {root} {port}"\n'
        f'health = "http://127.0.0.1:{port}/"\nhealth_timeout = 10\n'
        # the stand-in serves files: it cannot say which release it is
        'health_release = "none"\n'
        if service
        else ""
    )
    site = root / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\ndata_dir = "data"\n'
        f'backup_dir = "backups"\nconfig_files = ["etc/app.toml", "etc/standalone.xml"]\n\n'
        + service_table,
        "utf-8",
    )
    ctx = context.open_context(site, None)
    operations.init(ctx, "1.0.0")
    with ctx.engine.begin() as conn:
        for n in range(200):
            user = {"fullName": f"User {n}", "address": {"city": "Brno"}, "legacyFlags": [n]}
            conn.execute(
                text("INSERT INTO objects VALUES (:o, 'User', :d, '1.0.0')"),
                {"o": f"user-{n:04d}", "d": orjson.dumps(user).decode()},
            )
        conn.execute(
            text("INSERT INTO settings VALUES ('first_broker_login.review_profile', 'ALTERNATIVE')")
        )
        conn.execute(text("INSERT INTO jobs VALUES (1, 'nightly sync', 'running')"))
    dispose_all()
    return site


def fingerprint(site: Path) -> dict[str, str]:
    """The product's own tables and files: what an upgrade must keep or change, nothing else."""
    ctx = context.open_context(site, None)
    found = {}
    with ctx.engine.connect() as conn:
        for table in PRODUCT_TABLES:
            rows = sorted(repr(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {table}")))
            found[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        found["release"] = str(context.current_version(ctx))
    dispose_all()
    for folder in ("data", "etc"):
        for path in sorted((site.parent / folder).iterdir()):
            found[f"{folder}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Path:
    path = build_site(tmp_path, database_url)
    yield path
    stairway_stop(path)


def stairway_stop(site: Path) -> None:
    pid = site.parent / "service.pid"
    if pid.exists():
        os.system(f"{sys.executable} {STUB} stop {site.parent} 0")


def test_upgrade_walks_the_path_and_a_second_run_is_a_no_op(site: Path) -> None:
    code, out, err = stairway("upgrade", "--to", "3.0.0", "--site", str(site), "--json")
    assert code == 0, err
    report = orjson.loads(out)
    steps = [s["step"] for s in report["steps"]]
    assert steps[:4] == ["backup", "maintenance-on", "stop", "interrupt-jobs"]
    assert "schema 1.0.0 -> 2.0.0" in steps and "config-files 2.0.0 -> 3.0.0" in steps
    assert steps[-5:] == ["start", "health", "smoke-checks", "maintenance-off", "audit"]
    assert report["steps"][-3]["passed"] == ["sync run history is queryable"]
    assert steps.index("schema 2.0.0 -> 3.0.0") > steps.index("config-files 1.0.0 -> 2.0.0")

    ctx = context.open_context(site, None)
    assert str(context.current_version(ctx)) == "3.0.0"
    with ctx.engine.connect() as conn:
        user = orjson.loads(
            conn.execute(text("SELECT data FROM objects WHERE oid = 'user-0007'")).scalar_one()
        )
        stamp = conn.execute(
            text("SELECT DISTINCT written_by FROM objects WHERE type = 'User'")
        ).all()
        job = conn.execute(text("SELECT state FROM jobs")).scalar_one()
        roles = conn.execute(text("SELECT count(*) FROM objects WHERE type = 'Role'")).scalar_one()
        meta = conn.execute(
            text("SELECT count(*) FROM stairway_meta WHERE key = 'maintenance'")
        ).scalar_one()
    assert user == {"displayName": "User 7", "address": {}, "location": {"city": "Brno"}}
    assert stamp == [("2.0.0",)], "no 3.0.0 migration touches a User: not rewritten again"
    assert job == "interrupted" and roles == 4 and meta == 0
    etc = site.parent / "etc"
    assert "listen_port = 8080  # proxy" in (etc / "app.toml").read_text("utf-8")
    assert b"smallrye" not in (etc / "standalone.xml").read_bytes()
    assert (site.parent / "starts").read_text().split() == ["stop", "start"] or (
        site.parent / "starts"
    ).read_text().split() == ["start"]
    assert not (site.parent / "backups" / ACTIVE).exists()
    assert len(list((site.parent / "backups" / "upgrades").glob("*.journal"))) == 1

    with ctx.engine.connect() as conn:
        logged = audit.entries(conn)
        assert audit.verify(conn) == []
    assert [e.action for e in logged] == ["site.upgrade"]
    assert logged[0].data["from"] == "1.0.0" and logged[0].data["to"] == "3.0.0"

    code, out, err = stairway("upgrade", "--to", "3.0.0", "--site", str(site))
    assert code == 0 and "nothing to upgrade" in out


def test_a_failing_change_rolls_back_with_every_row_and_file_as_before(site: Path) -> None:
    catalog = site.parent / "catalog"
    (catalog / "schema" / "0003_fails.sql").write_text(
        "-- phase: offline\nUPDATE settings SET value = 'changed';\n"
        "INSERT INTO settings (key, value) VALUES ('broken', NULL);\n",
        "utf-8",
    )
    manifest = catalog / "stairway.toml"
    manifest.write_text(
        manifest.read_text("utf-8").replace(
            'version = "3.0.0"\nschema = 2', 'version = "3.0.0"\nschema = 3'
        ),
        "utf-8",
    )
    before = fingerprint(site)
    code, _, err = stairway("upgrade", "--to", "3.0.0", "--site", str(site))
    assert code == 1, err
    assert "0003_fails" in err and "Rolled back" in err and "nothing was lost" in err
    assert fingerprint(site) == before
    assert not (site.parent / "backups" / ACTIVE).exists()
    assert (site.parent / "service.pid").exists(), "the old release runs again"


def test_a_rollback_that_fails_exits_3_with_instructions_and_can_be_retried(
    tmp_path: Path, database_url: str
) -> None:
    site = build_site(tmp_path, database_url)
    good = site.read_text("utf-8")
    # Nothing answers there: the new release looks unhealthy, and so does the old one after it.
    broken = re.sub(
        r"health = \"http://127.0.0.1:\d+/\"", f'health = "http://127.0.0.1:{free_port()}/"', good
    )
    site.write_text(broken.replace("health_timeout = 10", "health_timeout = 1"), "utf-8")
    before = fingerprint(site)
    code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 3, err
    assert "and so did the rollback" in err and "by hand" in err and "stairway restore" in err
    assert fingerprint(site) == before, "the restore itself was done"
    assert (site.parent / "backups" / ACTIVE).exists(), "the journal stays open for a retry"
    code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 2 and "was interrupted" in err

    site.write_text(good, "utf-8")
    code, out, err = stairway("rollback", "--site", str(site))
    assert code == 0 and "1.0.0" in out, err
    assert fingerprint(site) == before
    assert not (site.parent / "backups" / ACTIVE).exists()
    stairway_stop(site)


@pytest.mark.parametrize(
    "smoke",
    [
        'query = "SELECT count(*) FROM jobs"\nexpect = 99',
        'query = "SELECT * FROM no_such_table"',
        f"command = \"{sys.executable} -c 'raise SystemExit(4)'\"",
    ],
)
def test_a_failing_smoke_check_rolls_back(site: Path, smoke: str) -> None:
    manifest = site.parent / "catalog" / "stairway.toml"
    with manifest.open("a", encoding="utf-8") as out:
        out.write(f'\n[[smoke]]\nname = "licence is valid"\n{smoke}\nhint = "renew it"\n')
    before = fingerprint(site)
    code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 1 and "smoke check 'licence is valid'" in err and "Rolled back" in err
    assert fingerprint(site) == before


def test_a_blocking_finding_stops_the_upgrade_before_anything_is_touched(site: Path) -> None:
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE settings SET value = 'REQUIRED'"))
    dispose_all()
    before = fingerprint(site)
    code, _, err = stairway("upgrade", "--to", "3.0.0", "--site", str(site))
    assert code == 2 and "Review Profile" in err
    assert fingerprint(site) == before
    backups = site.parent / "backups"
    assert not list(backups.glob("*.tar.zst")), "the backup taken meanwhile is discarded"
    assert not (backups / ACTIVE).exists()


def test_rollback_after_a_finished_upgrade_returns_to_the_old_version(site: Path) -> None:
    before = fingerprint(site)
    assert stairway("upgrade", "--to", "2.0.0", "--site", str(site))[0] == 0
    assert fingerprint(site) != before
    code, out, err = stairway("rollback", "--yes", "--site", str(site))
    assert code == 0 and "1.0.0" in out, err
    assert fingerprint(site) == before
    code, _, err = stairway("rollback", "--site", str(site))
    assert code == 2 and "no upgrade to roll back" in err


def test_resume_without_an_interrupted_upgrade_is_refused(site: Path) -> None:
    code, _, err = stairway("upgrade", "--resume", "--site", str(site))
    assert code == 2 and "no interrupted upgrade" in err


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('query = "SELECT 1"\ncommand = "true"', "either `query` or `command`"),
        ('name2 = "x"', "unknown key"),
        ('command = "true"\nexpect = 1', "`expect` applies to a query"),
    ],
)
def test_a_malformed_smoke_check_is_refused(tmp_path: Path, entry: str, message: str) -> None:
    from stairway.catalog import load_catalog
    from stairway.errors import CatalogError

    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOGS / "people", catalog, ignore=shutil.ignore_patterns("__pycache__"))
    with (catalog / "stairway.toml").open("a", encoding="utf-8") as out:
        out.write(f'\n[[smoke]]\nname = "bad"\n{entry}\n')
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog(catalog)


def test_the_built_in_runner_stops_and_starts_the_product(
    tmp_path: Path, sqlite_database: str
) -> None:
    from stairway import service
    from stairway.site import load_site

    site = build_site(tmp_path, sqlite_database, service=False)
    port = free_port()
    run = f"{sys.executable} -m http.server {port} --bind 127.0.0.1"
    with site.open("a", encoding="utf-8") as out:
        out.write(f'[service]\nrun = "{run}"\nhealth = "http://127.0.0.1:{port}/"\n')
        out.write('health_release = "none"\n')  # a file server cannot say its release
    section = load_site(site).service
    service.run_command(section, "start", tmp_path)
    first = int((tmp_path / service.PID_FILE).read_text())
    try:
        code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
        assert code == 0, err
        second = int((tmp_path / service.PID_FILE).read_text())
        assert second != first, "the upgrade stopped the old process and started a new one"
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)
        os.kill(second, 0)
    finally:
        service.run_command(section, "stop", tmp_path)
    assert not (tmp_path / service.PID_FILE).exists()
