"""The vendor's tools: ``stairway check`` reports every problem at once, ``stairway new change``
starts the next change file, and ``loses`` is demanded only where a down direction loses data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stairway.authoring.newchange import _create
from stairway.catalog import load_catalog
from stairway.errors import CatalogError, UsageRefused
from stairway.schema.dataloss import statement_loses_data
from tests.cli_runner import stairway
from tests.conftest import CATALOGS

BROKEN = CATALOGS / "broken"

# (file, a piece of the cause): every problem planted in tests/catalogs/broken.
PLANTED = [
    ("stairway.toml", "requires 1.5.0, which is no release"),
    ("stairway.toml", "needs schema 9, but only 6 changes are shipped"),
    ("0005_unterminated.sql", "4 is missing"),
    ("0002_tidy_accounts.sql", "DROP COLUMN note"),
    ("0002_tidy_accounts.sql", "RENAME COLUMN name TO title"),
    ("0003_audit.sql", "loses data (DROP TABLE audit)"),
    ("0005_unterminated.sql", "cannot read the SQL"),
    ("0006_backfill.py", "LOSES is not"),
    ("0007_odd_phase.sql", "unknown phase 'sideways'"),
    ("0007_odd_phase.sql", "unknown transaction mode 'sometimes'"),
    ("config.toml", "not valid TOML"),
]


def test_check_reports_every_problem_of_every_file_in_one_run() -> None:
    code, said, _ = stairway("check", "--catalog", str(BROKEN), "--json")
    assert code == 2
    found = json.loads(said)
    assert found["ok"] is False
    problems = [(Path(p["file"]).name, p["cause"]) for p in found["problems"]]
    for name, cause in PLANTED:
        assert any(n == name and cause in c for n, c in problems), (name, cause, problems)
    assert len(found["problems"]) == len(PLANTED)
    assert all(p["fix"] for p in found["problems"]), "every problem says what to do"


def test_check_names_lines_and_fixes_in_text() -> None:
    code, _, said = stairway("check", "--catalog", str(BROKEN))
    assert code == 2
    assert "0002_tidy_accounts.sql:2: error:" in said
    assert "0002_tidy_accounts.sql:3: error:" in said
    assert "fix: add a header line `-- loses: <what is lost>`" in said
    assert "11 error(s) in 7 file(s)" in said


def test_loading_still_stops_at_the_first_problem() -> None:
    with pytest.raises(CatalogError):
        load_catalog(BROKEN)


def test_check_passes_a_good_catalog_without_a_site() -> None:
    code, said, _ = stairway("check", "--catalog", str(CATALOGS / "shop"))
    assert code == 0 and "no errors" in said


def test_check_of_a_missing_directory_is_refused(tmp_path: Path) -> None:
    code, _, said = stairway("check", "--catalog", str(tmp_path / "nowhere"))
    assert code == 2 and "no catalog directory here" in said


def test_new_change_writes_the_next_number_and_check_accepts_it(shop_catalog: Path) -> None:
    code, said, _ = stairway(
        "new", "change", "add_phone", "--phase", "expand", "--catalog", str(shop_catalog)
    )
    assert code == 0, said
    path = shop_catalog / "schema" / "0007_add_phone.sql"
    assert said.strip() == str(path)
    assert path.read_text(encoding="utf-8") == "-- Add phone.\n-- phase: expand\n\n"
    catalog = load_catalog(shop_catalog)
    assert catalog.changes[-1].number == 7 and catalog.changes[-1].phase == "expand"
    assert catalog.changes[-1].description == "Add phone."
    assert stairway("check", "--catalog", str(shop_catalog))[0] == 0
    code, said, _ = stairway(
        "new",
        "change",
        "drop_phone",
        "--phase",
        "contract",
        "--catalog",
        str(shop_catalog),
        "--json",
    )
    assert json.loads(said) == {
        "path": str(shop_catalog / "schema" / "0008_drop_phone.sql"),
        "change": "8",
    }


def test_new_change_in_an_empty_catalog_is_number_one(tmp_path: Path) -> None:
    (tmp_path / "stairway.toml").write_text(
        '[product]\nname = "p"\n[[release]]\nversion = "1.0.0"\nschema = 0\n', encoding="utf-8"
    )
    code, said, _ = stairway("new", "change", "users", "--catalog", str(tmp_path))
    assert code == 0, said
    assert (tmp_path / "schema" / "0001_users.sql").read_text().endswith("phase: offline\n\n")


@pytest.mark.parametrize(
    "name", ["Add-Phone", "../escape", "add phone", "", "1st", "a__b", "x" * 61, "add_phone.sql"]
)
def test_new_change_refuses_an_unsafe_name(shop_catalog: Path, name: str) -> None:
    before = sorted(p.name for p in (shop_catalog / "schema").iterdir())
    code, _, said = stairway("new", "change", name, "--catalog", str(shop_catalog))
    assert code == 2 and "not a safe change name" in said and "hint:" in said
    assert sorted(p.name for p in (shop_catalog / "schema").iterdir()) == before


def test_new_change_refuses_an_unknown_phase_and_a_missing_catalog(
    shop_catalog: Path, tmp_path: Path
) -> None:
    code, _, said = stairway(
        "new", "change", "x", "--phase", "background", "--catalog", str(shop_catalog)
    )
    assert code == 2 and "unknown phase" in said
    code, _, said = stairway("new", "change", "x", "--catalog", str(tmp_path / "nowhere"))
    assert code == 2 and "no stairway.toml here" in said


def test_a_change_file_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "0001_a.sql"
    target.write_text("SELECT 1;\n", encoding="utf-8")
    with pytest.raises(UsageRefused):
        _create(target, "-- phase: expand\n")
    assert target.read_text(encoding="utf-8") == "SELECT 1;\n"
    assert [p.name for p in tmp_path.iterdir()] == ["0001_a.sql"], "no temporary file is left"


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE audit",
        "DROP SCHEMA app CASCADE",
        "ALTER TABLE customers DROP COLUMN email",
        "ALTER TABLE customers DROP COLUMN IF EXISTS email",
        "ALTER TABLE customers ALTER COLUMN email TYPE varchar(20)",
        "DELETE FROM customers WHERE id > 10",
        "DELETE FROM customers",
        "TRUNCATE customers",
        "DROP TYPE mood CASCADE",
    ],
)
def test_statements_that_lose_data(sql: str) -> None:
    assert statement_loses_data(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "DROP INDEX customers_email_idx",
        "DROP INDEX CONCURRENTLY IF EXISTS customers_email_idx",
        "ALTER TABLE customers DROP CONSTRAINT customers_email_key",
        "DROP VIEW active_customers",
        "DROP MATERIALIZED VIEW totals",
        "DROP FUNCTION touch()",
        "DROP TRIGGER touch ON customers",
        "DROP SEQUENCE invoice_numbers",
        "ALTER TABLE customers ALTER COLUMN email DROP DEFAULT",
        "ALTER TABLE customers ALTER COLUMN email TYPE text",
        "DO $$ BEGIN EXECUTE 'DROP TABLE x'; END $$",
    ],
)
def test_statements_that_lose_no_data(sql: str) -> None:
    assert not statement_loses_data(sql)


def _down(shop_catalog: Path, down: str) -> Path:
    (shop_catalog / "schema" / "0007_index.sql").write_text(
        "-- phase: contract\nCREATE INDEX customers_name_idx ON customers (name);\n"
        f"-- down:\n{down}\n",
        encoding="utf-8",
    )
    return shop_catalog


def test_a_down_dropping_an_index_needs_no_loses(shop_catalog: Path) -> None:
    catalog = load_catalog(_down(shop_catalog, "DROP INDEX customers_name_idx;"))
    assert catalog.changes[-1].loses is None


def test_a_down_deleting_rows_needs_loses(shop_catalog: Path) -> None:
    with pytest.raises(CatalogError) as info:
        load_catalog(
            _down(
                shop_catalog, "DROP INDEX customers_name_idx;\nDELETE FROM customers WHERE id > 1;"
            )
        )
    assert "loses data (DELETE FROM customers" in info.value.message and info.value.line == 5


def test_check_reports_every_invalid_key_of_a_toml_file(shop_catalog: Path) -> None:
    manifest = shop_catalog / "stairway.toml"
    text = manifest.read_text(encoding="utf-8").replace(
        'name = "shop"', 'name = "shop"\ncolour = 1'
    )
    manifest.write_text(text.replace("lts = true", "lts = 3", 1), encoding="utf-8")
    code, said, _ = stairway("check", "--catalog", str(shop_catalog), "--json")
    assert code == 2
    causes = [(p["line"], p["cause"]) for p in json.loads(said)["problems"]]
    assert (3, "unknown key 'product.colour'") in causes
    assert any(line == 8 and "release[1].lts" in cause for line, cause in causes), causes


def test_the_bundled_example_catalog_passes_check() -> None:
    from stairway import examples

    root = Path(examples.__file__).parent / "identity_sync" / "upgrades"
    code, said, told = stairway("check", "--catalog", str(root), "--json")
    assert code == 0, told
    assert json.loads(said)["ok"] is True


def test_check_reports_every_problem_of_the_object_and_delta_files(shop_catalog: Path) -> None:
    """Not only the first of them: each bad handler, each unreadable file, each directory that
    names no release and each id used twice."""
    migration = 'type = "Order"\nsince = "1.1.0"\nop = "transform"\npath = "total"\n'
    (shop_catalog / "objects.toml").write_text(
        f'[[migration]]\n{migration}handler = "nowhere:fix"\n\n'
        f'[[migration]]\n{migration}handler = "alsonowhere:fix"\n',
        encoding="utf-8",
    )
    (shop_catalog / "objects").mkdir()
    (shop_catalog / "objects" / "more.toml").write_text("[[migration\n", encoding="utf-8")
    deltas = shop_catalog / "deltas"
    for name in ("latest", "someday"):
        (deltas / name).mkdir(parents=True)
    (deltas / "1.0.0").mkdir()
    delta = '[[delta]]\nid = "role"\ndescription = "d"\nop = "add"\ntype = "Role"\n'
    for name in ("a.toml", "b.toml"):
        (deltas / "1.0.0" / name).write_text(delta + 'target = "r"\nobject = {}\n', "utf-8")
    (deltas / "1.0.0" / "c.toml").write_text("[[delta]]\nid = 3\n", encoding="utf-8")
    code, said, _ = stairway("check", "--catalog", str(shop_catalog), "--json")
    assert code == 2
    causes = " | ".join(p["cause"] for p in json.loads(said)["problems"])
    for planted in (
        "cannot import nowhere",
        "cannot import alsonowhere",
        "'latest' is not a release version",
        "'someday' is not a release version",
        "delta id 'role' is used twice",
    ):
        assert planted in causes, causes
    files = {Path(p["file"]).name for p in json.loads(said)["problems"]}
    assert {"more.toml", "c.toml"} <= files, files
