"""Migrate on start: ``guard(auto_migrate=True, backup_first=True)`` backs up, applies every
change the release needs, and on failure puts the database back as it was and raises."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import text

import stairway
from stairway.backup import list_backups
from stairway.catalog import load_catalog
from stairway.database import dispose_all, engine_for, sqlite_path
from stairway.errors import GuardRefused, MigrateOnStartFailed, StairwayError
from stairway.schema import migrator


def at_level(database_url: str, catalog: Path, level: int) -> None:
    """The shop database at ``level``, with an order, released at 1.0.4."""
    engine = engine_for(database_url)
    full = load_catalog(catalog)
    migrator.migrate(engine, full, level)
    migrator.set_site_release(engine, full, "1.0.4")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO orders (id, customer_id, total) VALUES (7, 1, 12.5)"))
    dispose_all()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_failing_change_puts_the_file_back_byte_for_byte_and_raises(
    sqlite_database: str, shop_catalog: Path
) -> None:
    at_level(sqlite_database, shop_catalog, 3)
    # change 4 commits, then change 5 fails: only the backup can undo change 4
    (shop_catalog / "schema" / "0005_drop_note.sql").write_text(
        "-- phase: contract\nALTER TABLE no_such_table DROP COLUMN note;\n", "utf-8"
    )
    live = sqlite_path(engine_for(sqlite_database))
    assert live is not None
    before = digest(live)
    with pytest.raises(MigrateOnStartFailed) as raised:
        stairway.guard(sqlite_database, shop_catalog, "2.0.0", auto_migrate=True, backup_first=True)
    failure = raised.value
    assert isinstance(failure, StairwayError) and failure.exit_code == 1
    assert "release 2.0.0 could not migrate the database at start" in failure.message
    assert f"restored from backup {failure.backup}" in failure.message
    assert "start the release the database is at" in failure.hint
    dispose_all()
    assert digest(live) == before
    kept = list_backups(live.with_name(live.name + ".backups"))
    assert [b.id for b in kept] == [failure.backup]


def test_migrating_at_start_applies_every_change_and_keeps_the_backup(
    database_url: str, shop_catalog: Path, tmp_path: Path
) -> None:
    at_level(database_url, shop_catalog, 3)
    backups = tmp_path / "backups"
    result = stairway.guard(
        database_url,
        shop_catalog,
        "2.0.0",
        auto_migrate=True,
        backup_first=True,
        backup_dir=backups,
    )
    assert result.applied_now == (4, 5) and result.level == 5  # 5 is a contract change
    assert [b.id for b in list_backups(backups)] == [result.backup]
    assert list_backups(backups)[0].manifest.version == "1.0.4"
    engine = engine_for(database_url)
    assert migrator.site_release(engine) == "2.0.0"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT email FROM customers")).scalar_one()
    again = stairway.guard(
        database_url, shop_catalog, "2.0.0", auto_migrate=True, backup_first=True
    )
    assert again.applied_now == () and again.backup is None  # nothing to do: no backup


def test_backup_first_needs_a_directory_off_sqlite(pg_database: str, shop_catalog: Path) -> None:
    at_level(pg_database, shop_catalog, 3)
    with pytest.raises(GuardRefused, match="needs backup_dir") as raised:
        stairway.guard(pg_database, shop_catalog, "2.0.0", auto_migrate=True, backup_first=True)
    assert raised.value.hint
    with pytest.raises(ValueError, match="auto_migrate"):
        stairway.guard(pg_database, shop_catalog, "2.0.0", backup_first=True)


def test_the_example_service_migrates_at_start_when_asked(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from stairway import context, operations
    from stairway.examples.identity_sync.service import create_app
    from stairway.quickstart import open_demo, write_site

    made = write_site(tmp_path / "demo")
    operations.init(open_demo(made), "1.0.0")
    dispose_all()
    with (
        pytest.raises(GuardRefused, match="needs schema 4"),
        TestClient(create_app(made.site_file, "1.0.4")),
    ):
        pass
    with TestClient(create_app(made.site_file, "1.0.4", migrate_on_start=True)) as client:
        assert client.get("/health").json()["schema"] == 4
    ctx = context.open_context(made.site_file, None)
    assert str(context.current_version(ctx)) == "1.0.4"
    assert len(list_backups(ctx.site.site.backup_dir or tmp_path)) == 1
    dispose_all()
