"""stairway.guard(): the one call a product makes at start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import stairway
from stairway.catalog import load_catalog
from stairway.database import engine_for
from stairway.errors import GuardRefused
from stairway.schema import migrator


def migrate_to(database_url: str, catalog: Path, level: int) -> None:
    migrator.migrate(engine_for(database_url), load_catalog(catalog), level)


def test_up_to_date_database_is_accepted(database_url: str, shop_catalog: Path) -> None:
    migrate_to(database_url, shop_catalog, 5)
    result = stairway.guard(database_url, shop_catalog, "2.0.0")
    assert (result.level, result.ahead_by_expand) == (5, ())


def test_newer_contract_change_is_refused_with_both_versions(
    database_url: str, shop_catalog: Path
) -> None:
    migrate_to(database_url, shop_catalog, 5)
    with pytest.raises(GuardRefused) as info:
        stairway.guard(database_url, shop_catalog, "1.0.4")
    message = info.value.message
    assert "contract change 5" in message and "release 1.0.4 (schema 3)" in message
    assert "newer than this release" in message


def test_ahead_only_by_expand_changes_is_accepted(database_url: str, shop_catalog: Path) -> None:
    migrate_to(database_url, shop_catalog, 6)
    result = stairway.guard(database_url, shop_catalog, "2.0.0")
    assert result.ahead_by_expand == (6,)


def test_behind_is_refused_unless_auto_migrate(database_url: str, shop_catalog: Path) -> None:
    migrate_to(database_url, shop_catalog, 5)
    with pytest.raises(GuardRefused, match="needs schema 6, the database is at 5"):
        stairway.guard(database_url, shop_catalog, "2.1.0")
    result = stairway.guard(database_url, shop_catalog, "2.1.0", auto_migrate=True)
    assert result.applied_now == (6,) and result.level == 6


def test_auto_migrate_never_runs_a_contract_change(database_url: str, shop_catalog: Path) -> None:
    migrate_to(database_url, shop_catalog, 4)
    with pytest.raises(GuardRefused, match="0005_drop_note"):
        stairway.guard(database_url, shop_catalog, "2.0.0", auto_migrate=True)
    assert migrator.read_state(engine_for(database_url), load_catalog(shop_catalog)).level == 4


def test_a_changed_manifest_is_read_again(database_url: str, shop_catalog: Path) -> None:
    """guard() keeps each release's schema with the manifest it read: a new stairway.toml
    (another release shipped into the same directory) is read afresh, not answered from it."""
    migrate_to(database_url, shop_catalog, 5)
    assert stairway.guard(database_url, shop_catalog, "2.0.0").level == 5
    manifest = shop_catalog / "stairway.toml"
    text = manifest.read_text("utf-8")
    manifest.write_text(
        text.replace('version = "2.0.0"\nschema = 5', 'version = "2.0.0"\nschema = 4')
    )
    later = manifest.stat().st_mtime + 1  # a new mtime even where the clock's grain is coarse
    os.utime(manifest, (later, later))
    with pytest.raises(GuardRefused, match=r"contract change 5.*release 2\.0\.0 \(schema 4\)"):
        stairway.guard(database_url, shop_catalog, "2.0.0")


def test_a_database_never_set_up_is_refused(database_url: str, shop_catalog: Path) -> None:
    with pytest.raises(GuardRefused, match="never been set up by Stairway"):
        stairway.guard(database_url, shop_catalog, "1.0.0")


def test_an_unknown_release_is_refused(database_url: str, shop_catalog: Path) -> None:
    migrate_to(database_url, shop_catalog, 2)
    with pytest.raises(GuardRefused, match=r"release 7\.0\.0 is not in the catalog"):
        stairway.guard(database_url, shop_catalog, "7.0.0")


def test_guard_reports_maintenance_mode(database_url: str, shop_catalog: Path) -> None:
    from stairway import maintenance

    catalog = load_catalog(shop_catalog)
    engine = engine_for(database_url)
    migrator.migrate(engine, catalog, catalog.release("2.0.0").schema)
    assert not stairway.guard(database_url, shop_catalog, "2.0.0").in_maintenance
    maintenance.switch_on(engine, "upgrade to 2.1.0")
    found = stairway.guard(database_url, shop_catalog, "2.0.0").maintenance
    assert found is not None and found.reason == "upgrade to 2.1.0" and found.since
    maintenance.switch_off(engine)
    assert stairway.guard(database_url, shop_catalog, "2.0.0").maintenance is None
