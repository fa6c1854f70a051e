"""``verify``: every finding provoked by a catalog and a site, and a clean site passing."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, text

from cli_runner import stairway
from stairway import context, operations
from stairway.verify import Finding, Report, verify

CATALOG = Path(__file__).parent / "catalogs" / "people"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(CATALOG, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def site(tmp_path: Path, database_url: str, catalog: Path) -> Path:
    """A clean people site at 1.0.0: the login flow is right, nothing runs, no objects."""
    path = tmp_path / "site.toml"
    backups = tmp_path / "backups"
    path.write_text(
        f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\n'
        f'backup_dir = "{backups}"\ndata_dir = "{tmp_path / "data"}"\n',
        "utf-8",
    )
    ctx = context.open_context(path, None)
    operations.init(ctx, "1.0.0")
    execute(
        ctx.engine,
        "INSERT INTO settings VALUES ('first_broker_login.review_profile', 'ALTERNATIVE')",
    )
    return path


def execute(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def add_object(site: Path, oid: str, type_: str, document: dict[str, object]) -> None:
    ctx = context.open_context(site, None)
    execute(
        ctx.engine,
        "INSERT INTO objects (oid, type, data, written_by) VALUES (:oid, :type, :data, '1.0.0')",
        oid=oid,
        type=type_,
        data=orjson.dumps(document).decode(),
    )


def report(site: Path, to: str = "3.0.0") -> Report:
    return verify(context.open_context(site, None), to)


def only(found: Report, topic: str, severity: str | None = None) -> list[Finding]:
    return [f for f in found.findings if f.topic == topic and severity in (None, f.severity)]


def test_a_clean_site_verifies_with_exit_0(site: Path) -> None:
    code, out, err = stairway("verify", "--to", "3.0.0", "--site", str(site), "--json")
    assert code == 0, err
    body = orjson.loads(out)
    assert not body["blocked"]
    topics = {f["topic"] for f in body["findings"]}
    assert {"path", "schema", "disk"} <= topics
    assert all(f["severity"] in ("info", "warning") for f in body["findings"])


def test_path_names_the_required_stop_and_pending_changes(site: Path) -> None:
    found = report(site)
    assert "required stop(s) 2.0.0" in only(found, "path")[0].message
    pending = only(found, "schema", "info")[0]
    assert pending.count == 1 and "0002_user_locale [expand]" in pending.message


def test_manual_and_dead_end_migrations_count_their_objects(site: Path) -> None:
    for n in range(7):
        add_object(site, f"c{n}", "Connector", {"kind": "csv", "pollingScript": "poll.groovy"})
    add_object(site, "u1", "User", {"displayName": "Ada", "otpSeed": "s"})
    found = report(site)
    hands = only(found, "objects", "critical")
    manual = next(f for f in hands if "pollingScript" in f.message)
    assert manual.blocking and manual.count == 7
    assert manual.examples == ("c0", "c1", "c2", "c3", "c4")
    assert "rewrite them as schedules" in manual.hint
    dead_end = next(f for f in hands if "otpSeed" in f.message)
    assert dead_end.count == 1 and dead_end.examples == ("u1",) and "dead-end" in dead_end.message


def test_deprecations_in_the_data_are_reported_without_blocking(site: Path) -> None:
    add_object(site, "u1", "User", {"fullName": "Ada", "legacyFlags": [1]})
    found = report(site)
    suggestion = only(found, "objects", "suggestion")
    assert len(suggestion) == 1 and "legacyFlags" in suggestion[0].message
    assert not suggestion[0].blocking
    assert not found.blocking


def test_a_plugin_type_the_target_no_longer_provides_blocks(site: Path) -> None:
    add_object(site, "s1", "Schedule", {"connector": {"type": "scripted"}, "cron": "0 * * * *"})
    add_object(site, "s2", "Schedule", {"connector": {"type": "ldap"}})
    plugin = only(report(site), "plug-ins")
    assert len(plugin) == 1 and plugin[0].blocking
    assert "'scripted'" in plugin[0].message and plugin[0].examples == ("s1",)
    assert not only(report(site, "2.0.0"), "plug-ins")  # 2.0.0 declares no list: nothing to check


def test_a_declared_data_condition_blocks_when_unmet(site: Path) -> None:
    ctx = context.open_context(site, None)
    execute(ctx.engine, "UPDATE settings SET value = 'REQUIRED'")
    check = only(report(site), "checks")
    assert len(check) == 1 and check[0].blocking
    assert "found 'REQUIRED', the upgrade needs 'ALTERNATIVE'" in check[0].message
    assert not only(report(site, "2.0.0"), "checks")  # before = 3.0.0: not due for 2.0.0


def test_running_jobs_are_listed(site: Path) -> None:
    ctx = context.open_context(site, None)
    execute(
        ctx.engine, "INSERT INTO jobs VALUES (4, 'nightly ldap', 'running'), (5, 'csv', 'done')"
    )
    jobs = only(report(site), "jobs")
    assert len(jobs) == 1 and jobs[0].examples == ("4",) and not jobs[0].blocking


def test_too_little_disk_for_the_backup_blocks(site: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with (data / "huge.bin").open("wb") as sparse:
        # A sparse file: larger than the free space on paper, nothing on disk.
        sparse.truncate(shutil.disk_usage(tmp_path).free + (1 << 30))
    disk = only(report(site), "disk")
    assert disk[0].blocking and "a backup needs about" in disk[0].message


def test_a_database_newer_than_the_catalog_blocks(site: Path) -> None:
    ctx = context.open_context(site, None)
    execute(
        ctx.engine,
        "INSERT INTO stairway_changes VALUES (9, 'future', 'x', 'sha256-lf-rstrip', 'expand',"
        " '9.0.0', CURRENT_TIMESTAMP, 1, 'applied')",
    )
    found = only(report(site), "database")
    assert found[0].blocking and "newer than this catalog" in found[0].message


def test_drift_blocks(site: Path, catalog: Path) -> None:
    change = catalog / "schema" / "0001_objects.sql"
    change.write_text(change.read_text() + "CREATE TABLE extra (id INTEGER);\n")
    drift = only(report(site), "schema", "critical")
    assert drift[0].blocking and "0001_objects" in drift[0].message


def test_cli_exits_2_and_prints_the_table_when_blocked(site: Path) -> None:
    add_object(site, "c1", "Connector", {"kind": "csv", "pollingScript": "x"})
    code, out, err = stairway("verify", "--to", "3.0.0", "--site", str(site))
    assert code == 2
    assert "critical" in out and "pollingScript" in out
    assert "1 finding(s) block the upgrade to 3.0.0" in err


def test_verify_writes_nothing(site: Path) -> None:
    add_object(site, "u1", "User", {"fullName": "Ada"})
    report(site)
    ctx = context.open_context(site, None)
    with ctx.engine.connect() as conn:
        data, written_by = conn.execute(text("SELECT data, written_by FROM objects")).one()
    assert orjson.loads(data) == {"fullName": "Ada"} and written_by == "1.0.0"
