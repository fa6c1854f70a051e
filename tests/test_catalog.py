"""Bad catalogs are refused with a message naming the file, the line or key, and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from stairway.catalog import load_catalog
from stairway.errors import CatalogError
from stairway.schema.change import ChangeKind, Phase


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def refused(catalog: Path) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        load_catalog(catalog)
    assert info.value.hint, "every refusal says what to do"
    return info.value


def test_the_shop_catalog_loads(shop_catalog: Path) -> None:
    catalog = load_catalog(shop_catalog)
    assert catalog.product == "shop"
    assert [c.number for c in catalog.changes] == [1, 2, 3, 4, 5, 6]
    assert catalog.changes[0].phase == Phase.OFFLINE  # no header: offline
    assert catalog.changes[2].phase == Phase.EXPAND
    assert catalog.changes[2].down is not None and catalog.changes[2].loses
    assert catalog.changes[3].kind == ChangeKind.PYTHON and catalog.changes[3].has_python_down
    assert len(catalog.changes[0].statements) == 2
    assert str(catalog.release("2.0.0").requires) == "1.0.4"


def test_unknown_key(shop_catalog: Path) -> None:
    edit(shop_catalog / "stairway.toml", "lts = true", "lts = true\nlong_term = true")
    error = refused(shop_catalog)
    assert "unknown key 'release[1].long_term'" in error.message
    assert error.line == 8 and "stairway.toml" in error.message


def test_duplicate_change_number(shop_catalog: Path) -> None:
    (shop_catalog / "schema" / "0003_again.sql").write_text("SELECT 1;", encoding="utf-8")
    error = refused(shop_catalog)
    assert "change number 3 is used twice" in error.message


def test_gap_in_change_numbers(shop_catalog: Path) -> None:
    (shop_catalog / "schema" / "0009_late.sql").write_text("SELECT 1;", encoding="utf-8")
    error = refused(shop_catalog)
    assert "7 is missing" in error.message and "0009_late.sql" in error.message


def test_release_schema_beyond_shipped_changes(shop_catalog: Path) -> None:
    edit(shop_catalog / "stairway.toml", "schema = 6", "schema = 8")
    error = refused(shop_catalog)
    assert "release 2.1.0 needs schema 8, but only 6 changes are shipped" in error.message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('version = "1.0.4"', 'version = "0.9.0"', "release 0.9.0 is out of order"),
        ('version = "1.0.4"', 'version = "1.0.0"', "release 1.0.0 is duplicated"),
        ('requires = "1.0.4"', 'requires = "1.0.5"', "requires 1.0.5, which is no release"),
        ('requires = "1.0.4"', 'requires = "2.1.0"', "requires cycle"),
        ('version = "1.1.0"', 'version = "one"', "release[3].version"),
    ],
)
def test_bad_releases(shop_catalog: Path, old: str, new: str, expected: str) -> None:
    edit(shop_catalog / "stairway.toml", old, new)
    assert expected in refused(shop_catalog).message


def test_unknown_phase(shop_catalog: Path) -> None:
    edit(shop_catalog / "schema" / "0003_customer_email.sql", "phase: expand", "phase: expnad")
    error = refused(shop_catalog)
    assert "unknown phase 'expnad'" in error.message and error.line == 1
    assert "expand, contract, offline, background" in error.hint


def test_python_change_without_upgrade(shop_catalog: Path) -> None:
    edit(shop_catalog / "schema" / "0004_backfill_email.py", "def upgrade(", "def up(")
    error = refused(shop_catalog)
    assert (
        "must define upgrade(conn)" in error.message and "0004_backfill_email.py" in error.message
    )


def test_python_change_with_a_syntax_error(shop_catalog: Path) -> None:
    edit(
        shop_catalog / "schema" / "0004_backfill_email.py",
        "def upgrade(conn: Connection) -> None:",
        "def upgrade(conn: Connection) -> None",
    )
    error = refused(shop_catalog)
    assert "syntax error" in error.message and error.line is not None


def test_non_utf8_file(shop_catalog: Path) -> None:
    (shop_catalog / "schema" / "0002_orders.sql").write_bytes(b"-- caf\xe9\nSELECT 1;")
    error = refused(shop_catalog)
    assert "not valid UTF-8" in error.message and error.line == 1


def test_down_that_drops_data_without_loses(shop_catalog: Path) -> None:
    edit(
        shop_catalog / "schema" / "0003_customer_email.sql",
        "-- loses: every customer's email address\n",
        "",
    )
    error = refused(shop_catalog)
    assert "does not say what is lost" in error.message and error.line == 4


def test_expand_label_that_is_false(shop_catalog: Path) -> None:
    edit(shop_catalog / "schema" / "0005_drop_note.sql", "phase: contract", "phase: expand")
    error = refused(shop_catalog)
    assert "labelled expand" in error.message and error.line == 2


def test_bad_file_name(shop_catalog: Path) -> None:
    (shop_catalog / "schema" / "seven.sql").write_text("SELECT 1;", encoding="utf-8")
    assert "NNNN_name.sql" in refused(shop_catalog).message


def test_missing_manifest(tmp_path: Path) -> None:
    assert "no stairway.toml" in refused(tmp_path).message


def test_unterminated_sql_string(shop_catalog: Path) -> None:
    (shop_catalog / "schema" / "0006_order_status.sql").write_text(
        "-- phase: expand\nSELECT 1;\nSELECT 'open;\n", encoding="utf-8"
    )
    assert "cannot read the SQL" in refused(shop_catalog).message


def test_transaction_none_holds_one_statement(shop_catalog: Path) -> None:
    (shop_catalog / "schema" / "0006_order_status.sql").write_text(
        "-- phase: expand\n-- transaction: none\n"
        "CREATE INDEX CONCURRENTLY a ON orders (total);\n"
        "CREATE INDEX CONCURRENTLY b ON orders (id);\n",
        encoding="utf-8",
    )
    error = refused(shop_catalog)
    assert "`transaction: none` with 2 statements" in error.message and error.line == 4
