"""``baseline --at N`` checks that the database holds what changes 1..N create, and ``status``
tells how to adopt a database that has tables but no Stairway records; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from stairway.catalog import load_catalog
from stairway.database import engine_for
from stairway.schema import migrator
from stairway.schema.adoption import Survey, compare_shapes
from tests.cli_runner import stairway


def built_by_hand(database_url: str, catalog_dir: Path, upto: int) -> None:
    """A database holding changes 1..upto, run by hand before Stairway (no records)."""
    engine = engine_for(database_url)
    with engine.begin() as conn:
        for change in load_catalog(catalog_dir).changes[:upto]:
            for statement in change.statements:
                conn.exec_driver_sql(statement.text)


def recorded(database_url: str, catalog_dir: Path) -> list[int]:
    state = migrator.read_state(engine_for(database_url), load_catalog(catalog_dir))
    return [a.number for a in state.applied]


def test_baseline_at_the_level_the_database_holds(
    database_url: str, shop_catalog: Path, site_file: Path
) -> None:
    built_by_hand(database_url, shop_catalog, 2)
    code, _, told = stairway("baseline", "--at", "2", "--site", str(site_file))
    assert code == 0, told
    assert recorded(database_url, shop_catalog) == [1, 2]


def test_baseline_above_what_the_database_holds_is_refused(
    database_url: str, shop_catalog: Path, site_file: Path
) -> None:
    built_by_hand(database_url, shop_catalog, 2)
    code, _, told = stairway("baseline", "--at", "3", "--site", str(site_file))
    assert code == 2
    assert "does not hold what changes 1..3 create" in told
    assert "missing columns: customers.email" in told
    assert "`stairway baseline --at 2`" in " ".join(told.split()) and "--force" in told
    assert recorded(database_url, shop_catalog) == []


def test_baseline_below_what_the_database_holds_is_refused(
    database_url: str, shop_catalog: Path, site_file: Path
) -> None:
    built_by_hand(database_url, shop_catalog, 2)
    code, _, told = stairway("baseline", "--at", "1", "--site", str(site_file))
    assert code == 2
    assert "tables that only later changes create: orders" in told
    assert recorded(database_url, shop_catalog) == []


def test_baseline_of_a_missing_table_is_refused_and_force_records_anyway(
    database_url: str, shop_catalog: Path, site_file: Path
) -> None:
    built_by_hand(database_url, shop_catalog, 2)
    with engine_for(database_url).begin() as conn:
        conn.execute(text("DROP TABLE orders"))
    code, _, told = stairway("baseline", "--at", "2", "--site", str(site_file))
    assert code == 2 and "missing tables: orders" in told
    assert "`stairway baseline --at 1`" in " ".join(told.split())
    code, _, told = stairway("baseline", "--at", "2", "--force", "--site", str(site_file))
    assert code == 0, told
    assert recorded(database_url, shop_catalog) == [1, 2]


def test_tables_of_the_operator_do_not_stop_a_baseline(
    database_url: str, shop_catalog: Path, site_file: Path
) -> None:
    built_by_hand(database_url, shop_catalog, 2)
    with engine_for(database_url).begin() as conn:
        conn.execute(text("CREATE TABLE local_notes (id INTEGER PRIMARY KEY, body TEXT)"))
    code, _, told = stairway("baseline", "--at", "2", "--site", str(site_file))
    assert code == 0, told


def test_status_of_an_unadopted_database_says_how_to_adopt_it(
    database_url: str, shop_catalog: Path, site_file: Path
) -> None:
    built_by_hand(database_url, shop_catalog, 2)
    code, said, told = stairway("status", "--site", str(site_file))
    assert code == 0, told
    words = " ".join(said.split())
    assert "not adopted" in words and "`stairway baseline --at 2`" in words
    code, said, _ = stairway("status", "--site", str(site_file), "--json")
    assert "`stairway baseline --at 2`" in json.loads(said)["adopt"]


def test_status_names_both_levels_when_a_data_change_leaves_no_trace(
    database_url: str, shop_catalog: Path, site_file: Path
) -> None:
    built_by_hand(database_url, shop_catalog, 3)  # change 4 only fills values in
    code, said, _ = stairway("status", "--site", str(site_file), "--json")
    assert code == 0
    adopt = json.loads(said)["adopt"]
    assert "`stairway baseline --at 3` if they did not run" in adopt
    assert "`stairway baseline --at 4` if they did" in adopt


def test_status_says_how_to_choose_when_no_level_matches(
    database_url: str, shop_catalog: Path, site_file: Path
) -> None:
    built_by_hand(database_url, shop_catalog, 1)
    with engine_for(database_url).begin() as conn:
        conn.execute(text("ALTER TABLE customers ADD COLUMN email TEXT"))
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
    code, said, _ = stairway("status", "--site", str(site_file), "--json")
    assert code == 0
    assert "N being the last change" in json.loads(said)["adopt"]


def test_status_of_an_empty_or_adopted_database_gives_no_adoption_hint(
    database_url: str, shop_catalog: Path, site_file: Path
) -> None:
    code, said, _ = stairway("status", "--site", str(site_file), "--json")
    assert code == 0 and json.loads(said)["adopt"] is None
    built_by_hand(database_url, shop_catalog, 2)
    assert stairway("baseline", "--at", "2", "--site", str(site_file))[0] == 0
    code, said, _ = stairway("status", "--site", str(site_file), "--json")
    assert json.loads(said)["adopt"] is None


def test_compare_shapes_ignores_tables_no_change_creates() -> None:
    expected = {"a": frozenset({"id"})}
    known = {"a": frozenset({"id", "x"}), "b": frozenset({"id"})}
    actual = {"a": frozenset({"id", "x", "mine"}), "b": frozenset({"id"}), "c": frozenset()}
    diff = compare_shapes(expected, actual, known)
    assert diff.extra_tables == ("b",) and diff.extra_columns == ("a.x",)
    assert not diff.missing_tables and not diff.missing_columns


def test_the_guess_is_the_highest_matching_level() -> None:
    empty: dict[str, frozenset[str]] = {}
    one = {"a": frozenset({"id"})}
    shapes = (empty, one, one, {"a": frozenset({"id", "x"})})
    assert Survey(shapes, one).guess() == (1, 2)
    assert Survey(shapes, {"a": frozenset({"id", "x"})}).guess() == (3, 3)
    assert Survey(shapes, {"z": frozenset()}).guess() is None
    back = (empty, one, {"a": frozenset({"id", "x"})}, one)  # change 3 takes x away again
    assert Survey(back, one).guess() == (3, 3)
