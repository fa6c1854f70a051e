"""Objects in a real database: migrated on read, written back, rewritten in bulk after a kill."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, text

from cli_runner import stairway
from stairway import context, operations
from stairway.errors import ObjectMigrationError
from stairway.objects.rewrite import rewrite_all
from stairway.objects.store import ObjectStore
from stairway.schema import migrator, recorder

CATALOG = Path(__file__).parent / "catalogs" / "people"
OLD_USER = {"fullName": "Ada", "address": {"city": "Brno"}, "legacyFlags": [1], "otpSeed": "s"}


@pytest.fixture
def people_site(tmp_path: Path, database_url: str) -> Path:
    """A people site at 1.0.0 whose code has just been upgraded to 2.0.0 (schema unchanged)."""
    site = tmp_path / "site.toml"
    site.write_text(f'[site]\ndatabase = "{database_url}"\ncatalog = "{CATALOG}"\n', "utf-8")
    ctx = context.open_context(site, None)
    operations.init(ctx, "1.0.0")
    migrator.set_site_release(ctx.engine, ctx.catalog, "2.0.0")
    return site


def insert_users(engine: Engine, count: int, written_by: str = "1.0.0") -> None:
    rows = [
        {"oid": f"u{i:06d}", "data": orjson.dumps({**OLD_USER, "n": i}).decode(), "v": written_by}
        for i in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO objects (oid, type, data, written_by) VALUES (:oid, 'User', :data, :v)"
            ),
            rows,
        )


def stored(engine: Engine, oid: str) -> tuple[dict[str, object], str]:
    with engine.connect() as conn:
        data, written_by = conn.execute(
            text("SELECT data, written_by FROM objects WHERE oid = :oid"), {"oid": oid}
        ).one()
    return orjson.loads(data), written_by


def store_for(site: Path) -> ObjectStore:
    return operations.object_store(context.open_context(site, None))


def test_get_migrates_and_writes_back_once(people_site: Path) -> None:
    store = store_for(people_site)
    insert_users(store.engine, 1)
    found = store.get("u000000")
    assert found is not None and found.outcome.stale
    expected = {
        "displayName": "Ada",
        "location": {"city": "Brno"},
        "address": {},
        "otpSeed": "s",
        "n": 0,
    }
    assert found.document == expected
    assert stored(store.engine, "u000000") == (expected, "2.0.0")
    again = store.get("u000000")
    assert again is not None and not again.outcome.stale
    assert store.get("nobody") is None


def test_migrations_of_later_releases_wait_for_their_release(people_site: Path) -> None:
    store = store_for(people_site)  # the site runs 2.0.0: the 3.0.0 dead-end is not due yet
    insert_users(store.engine, 1)
    found = store.get("u000000")
    assert found is not None
    assert all(str(m.since) == "2.0.0" for m in found.outcome.applied)
    assert [a.migration.transition for a in found.outcome.attention] == ["semi-automatic"]


def test_scan_reads_every_object_without_writing(people_site: Path) -> None:
    store = store_for(people_site)
    insert_users(store.engine, 25)
    seen = [o.id for o in store.scan(batch=7)]
    assert seen == [f"u{i:06d}" for i in range(25)]
    assert stored(store.engine, "u000003")[1] == "1.0.0"
    assert store.counts() == {"User": 25}


def test_bulk_rewrite_rewrites_stale_objects_and_then_nothing(people_site: Path) -> None:
    store = store_for(people_site)
    insert_users(store.engine, 40)
    insert_users_current(store.engine)
    first = rewrite_all(store, batch=16)
    assert (first.scanned, first.rewritten) == (41, 40)
    assert all(stored(store.engine, f"u{i:06d}")[1] == "2.0.0" for i in range(40))
    second = rewrite_all(store, batch=16)
    assert (second.scanned, second.rewritten) == (41, 0)


def insert_users_current(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO objects VALUES ('z1', 'User', :data, '2.0.0')"),
            {"data": '{"displayName": "Bo"}'},
        )


def test_rate_caps_objects_per_second(people_site: Path) -> None:
    store = store_for(people_site)
    insert_users(store.engine, 60)
    started = time.monotonic()
    rewrite_all(store, batch=10, rate=200)
    assert time.monotonic() - started >= 60 / 200 - 0.05  # the last batch sleeps too


def test_a_missing_objects_table_is_a_clear_error(tmp_path: Path, database_url: str) -> None:
    site = tmp_path / "site.toml"
    site.write_text(f'[site]\ndatabase = "{database_url}"\ncatalog = "{CATALOG}"\n', "utf-8")
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        recorder.ensure_tables(conn)
    migrator.set_site_release(ctx.engine, ctx.catalog, "1.0.0")
    with pytest.raises(ObjectMigrationError, match="'objects' does not exist"):
        operations.object_store(ctx)


def count_updates(engine: Engine) -> None:
    """A trigger logging every update of an object, inside the updating transaction."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE rewrite_log (oid TEXT NOT NULL)"))
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION log_rewrite() RETURNS trigger AS $$ BEGIN "
                    "INSERT INTO rewrite_log VALUES (NEW.oid); RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER objects_rewrite AFTER UPDATE ON objects "
                    "FOR EACH ROW EXECUTE FUNCTION log_rewrite()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER objects_rewrite AFTER UPDATE ON objects "
                    "BEGIN INSERT INTO rewrite_log VALUES (NEW.oid); END"
                )
            )


def checkpoint_scanned(engine: Engine) -> int:
    with engine.connect() as conn:
        try:
            value = conn.execute(text("SELECT scanned FROM stairway_rewrites")).scalar()
        except Exception:
            return 0
    return int(value or 0)


def test_a_killed_rewrite_resumes_without_redoing_or_skipping(people_site: Path) -> None:
    store = store_for(people_site)
    insert_users(store.engine, 400)
    count_updates(store.engine)
    command = [sys.executable, "-m", "stairway", "objects", "rewrite", "--site", str(people_site)]
    child = subprocess.Popen([*command, "--batch", "20", "--rate", "400", "--json"])
    deadline = time.monotonic() + 60
    while checkpoint_scanned(store.engine) < 120 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    interrupted = checkpoint_scanned(store.engine)
    assert 120 <= interrupted < 400, "the kill must land mid-way"
    report = rewrite_all(store_for(people_site), batch=20)
    assert report.resumed_at == interrupted
    assert report.scanned == 400 and report.rewritten == 400
    with store.engine.connect() as conn:
        counts = conn.execute(text("SELECT oid, count(*) FROM rewrite_log GROUP BY oid")).all()
    assert len(counts) == 400, "every object rewritten"
    assert {n for _, n in counts} == {1}, "no object rewritten twice"


def test_cli_rewrite_and_show(people_site: Path) -> None:
    insert_users(store_for(people_site).engine, 3)
    site = str(people_site)
    code, out, err = stairway("objects", "show", "u000001", "--site", site, "--json")
    assert code == 0, err
    body = orjson.loads(out)
    assert body["stale"] and body["document"]["displayName"] == "Ada"
    assert stored(store_for(people_site).engine, "u000001")[1] == "1.0.0"  # show never writes
    code, out, err = stairway("objects", "rewrite", "--site", site, "--json")
    assert code == 0, err
    assert orjson.loads(out)["rewritten"] == 3
    code, out, err = stairway("objects", "rewrite", "--site", site, "--batch", "0")
    assert code == 2 and "--batch must be at least 1" in err
    code, out, err = stairway("objects", "show", "nobody", "--site", site)
    assert code == 2 and "no object 'nobody'" in err


@pytest.fixture
def maven_people(tmp_path: Path, database_url: str) -> Path:
    """The people site of ``people_site``, its product writing Maven versions."""
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = catalog / "stairway.toml"
    named = 'name = "people"\n'
    manifest.write_text(manifest.read_text().replace(named, f'{named}versions = "maven"\n'))
    site = tmp_path / "site.toml"
    site.write_text(f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\n', "utf-8")
    ctx = context.open_context(site, None)
    operations.init(ctx, "1.0.0")
    migrator.set_site_release(ctx.engine, ctx.catalog, "2.0.0")
    return site


def test_objects_stamped_with_maven_versions_migrate_in_maven_order(maven_people: Path) -> None:
    engine = store_for(maven_people).engine
    insert_users(engine, 2, written_by="2.0.0-SNAPSHOT")  # before 2.0.0: its migrations are due
    with engine.begin() as conn:  # a service pack comes after 2.0.0: nothing is due; PEP 440
        # cannot read it and would migrate it as written by an unknown release
        conn.execute(
            text("INSERT INTO objects VALUES ('sp', 'User', :data, '2.0.0-sp-1')"),
            {"data": orjson.dumps(OLD_USER).decode()},
        )
    site = str(maven_people)
    code, out, err = stairway("objects", "rewrite", "--site", site, "--json")
    assert code == 0, err
    assert orjson.loads(out)["rewritten"] == 2
    assert stored(engine, "u000001") == ({**expected_user(), "n": 1}, "2.0.0")
    assert stored(engine, "sp") == (OLD_USER, "2.0.0-sp-1")
    code, out, err = stairway("objects", "show", "sp", "--site", site, "--json")
    assert code == 0, err
    shown = orjson.loads(out)
    assert shown["written_by"] == "2.0.0-sp-1" and not shown["stale"]


def expected_user() -> dict[str, object]:
    return {"displayName": "Ada", "location": {"city": "Brno"}, "address": {}, "otpSeed": "s"}
