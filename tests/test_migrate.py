"""The schema engine on real SQLite and real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from stairway.catalog import load_catalog
from stairway.database import engine_for
from stairway.errors import ChangeFailed, DataLossRefused, DriftError, SchemaError
from stairway.schema import migrator


def columns(engine: Engine, table: str) -> list[str]:
    return [c["name"] for c in inspect(engine).get_columns(table)]


def test_changes_apply_in_order_and_are_recorded(database_url: str, shop_catalog: Path) -> None:
    catalog = load_catalog(shop_catalog)
    engine = engine_for(database_url)
    done = migrator.migrate(engine, catalog, 4)
    assert [a.change.number for a in done] == [1, 2, 3, 4]
    state = migrator.read_state(engine, catalog)
    assert [a.number for a in state.applied] == [1, 2, 3, 4]
    assert state.applied[2].release == "1.0.4" and state.applied[3].release == "2.0.0"
    assert state.applied[0].checksum == catalog.changes[0].checksum
    assert state.applied[0].checksum_algorithm == "sha256-lf-rstrip"
    with engine.connect() as conn:
        email = conn.execute(text("SELECT email FROM customers WHERE id = 1")).scalar()
    assert email == "c1@example.invalid"


def test_second_run_is_a_no_op(database_url: str, shop_catalog: Path) -> None:
    catalog = load_catalog(shop_catalog)
    engine = engine_for(database_url)
    migrator.migrate(engine, catalog, 6)
    before = migrator.read_state(engine, catalog).applied
    assert migrator.migrate(engine, catalog, 6) == []
    assert migrator.read_state(engine, catalog).applied == before


def test_failing_change_leaves_database_as_before(database_url: str, shop_catalog: Path) -> None:
    (shop_catalog / "schema" / "0006_order_status.sql").write_text(
        "-- phase: expand\n"
        "ALTER TABLE orders ADD COLUMN status TEXT;\n"
        "INSERT INTO orders (id, customer_id) VALUES (1, 1);\n"
        "INSERT INTO orders (id, customer_id) VALUES (2, 999);\n",  # foreign key fails here
        encoding="utf-8",
    )
    catalog = load_catalog(shop_catalog)
    engine = engine_for(database_url)
    migrator.migrate(engine, catalog, 5)
    with pytest.raises(ChangeFailed, match=r"0006_order_status failed at 0006_order_status.sql:4"):
        migrator.migrate(engine, catalog, 6)
    assert "status" not in columns(engine, "orders")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM orders")).scalar() == 0
    assert migrator.read_state(engine, catalog).level == 5


def test_failing_python_change_rolls_back(database_url: str, shop_catalog: Path) -> None:
    path = shop_catalog / "schema" / "0004_backfill_email.py"
    source = path.read_text(encoding="utf-8")
    assert "    conn.execute(text(BACKFILL))\n" in source
    path.write_text(
        source.replace(
            "    conn.execute(text(BACKFILL))\n",
            "    conn.execute(text(BACKFILL))\n    raise RuntimeError('boom')\n",
        ),
        encoding="utf-8",
    )
    catalog = load_catalog(shop_catalog)
    engine = engine_for(database_url)
    migrator.migrate(engine, catalog, 3)
    with pytest.raises(ChangeFailed, match="raised RuntimeError in upgrade"):
        migrator.migrate(engine, catalog, 4)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT email FROM customers")).scalar() is None
    assert migrator.read_state(engine, catalog).level == 3


def test_a_failure_on_a_database_that_records_nothing_leaves_it_empty(
    database_url: str, shop_catalog: Path
) -> None:
    """A new database's changes run in one transaction: a failure leaves nothing to resume."""
    path = shop_catalog / "schema" / "0004_backfill_email.py"
    source = path.read_text(encoding="utf-8")
    path.write_text(
        source.replace(
            "    conn.execute(text(BACKFILL))\n",
            "    conn.execute(text(BACKFILL))\n    raise RuntimeError('boom')\n",
        ),
        encoding="utf-8",
    )
    catalog = load_catalog(shop_catalog)
    engine = engine_for(database_url)
    with pytest.raises(ChangeFailed, match="rolled back with it") as failed:
        migrator.migrate(engine, catalog, 4)
    assert failed.value.change == 4
    assert migrator.read_state(engine, catalog).level == 0
    tables = set(inspect(engine).get_table_names())
    assert "customers" not in tables and "orders" not in tables


def test_drift_is_reported_and_stops_the_run(database_url: str, shop_catalog: Path) -> None:
    engine = engine_for(database_url)
    migrator.migrate(engine, load_catalog(shop_catalog), 3)
    path = shop_catalog / "schema" / "0002_orders.sql"
    path.write_text(
        path.read_text(encoding="utf-8").replace("DEFAULT 0", "DEFAULT 1"), encoding="utf-8"
    )
    catalog = load_catalog(shop_catalog)
    assert [d.change.number for d in migrator.read_state(engine, catalog).drifted] == [2]
    with pytest.raises(DriftError, match="0002_orders: file changed since it was applied"):
        migrator.migrate(engine, catalog, 6)
    assert migrator.read_state(engine, catalog).level == 3
    assert migrator.repair(engine, catalog) == ["0002_orders"]
    assert len(migrator.migrate(engine, catalog, 6)) == 3


def test_layout_changes_are_not_drift(database_url: str, shop_catalog: Path) -> None:
    engine = engine_for(database_url)
    migrator.migrate(engine, load_catalog(shop_catalog), 2)
    path = shop_catalog / "schema" / "0001_customers.sql"
    crlf = path.read_text(encoding="utf-8").replace("\n", "   \r\n") + "\r\n\r\n"
    path.write_bytes(crlf.encode("utf-8"))
    assert migrator.read_state(engine, load_catalog(shop_catalog)).drifted == ()


def test_database_ahead_of_catalog_is_refused(database_url: str, shop_catalog: Path) -> None:
    engine = engine_for(database_url)
    migrator.migrate(engine, load_catalog(shop_catalog), 6)
    (shop_catalog / "schema" / "0006_order_status.sql").unlink()
    catalog_text = (shop_catalog / "stairway.toml").read_text(encoding="utf-8")
    (shop_catalog / "stairway.toml").write_text(catalog_text.replace("schema = 6", "schema = 5"))
    with pytest.raises(SchemaError, match="holds change 0006_order_status, which this catalog"):
        migrator.migrate(engine, load_catalog(shop_catalog), 5)


def test_baseline_adopts_an_existing_database(database_url: str, shop_catalog: Path) -> None:
    engine = engine_for(database_url)
    catalog = load_catalog(shop_catalog)
    with engine.begin() as conn:  # a database built by hand before Stairway
        for change in catalog.changes[:2]:
            for statement in change.statements:
                conn.exec_driver_sql(statement.text)
    assert migrator.baseline(engine, catalog, 2) == 2
    state = migrator.read_state(engine, catalog)
    assert [(a.number, a.kind) for a in state.applied] == [(1, "baseline"), (2, "baseline")]
    assert [a.change.number for a in migrator.migrate(engine, catalog, 6)] == [3, 4, 5, 6]
    with pytest.raises(SchemaError, match="already records changes up to 6"):
        migrator.baseline(engine, catalog, 2)


def test_down_needs_allow_data_loss_and_says_what_is_lost(
    database_url: str, shop_catalog: Path
) -> None:
    engine = engine_for(database_url)
    catalog = load_catalog(shop_catalog)
    migrator.migrate(engine, catalog, 4)
    with pytest.raises(DataLossRefused, match="every customer's email address"):
        migrator.downgrade(engine, catalog, 2, allow_data_loss=False)
    assert migrator.read_state(engine, catalog).level == 4
    done = migrator.downgrade(engine, catalog, 2, allow_data_loss=True)
    assert [a.change.number for a in done] == [4, 3]
    assert "email" not in columns(engine, "customers")
    assert migrator.read_state(engine, catalog).level == 2


def test_down_without_declared_inverse_is_refused(database_url: str, shop_catalog: Path) -> None:
    engine = engine_for(database_url)
    catalog = load_catalog(shop_catalog)
    migrator.migrate(engine, catalog, 6)
    with pytest.raises(SchemaError, match="no down direction declared for 0006_order_status"):
        migrator.downgrade(engine, catalog, 5, allow_data_loss=True)


def test_percent_signs_reach_the_database_unchanged(database_url: str, shop_catalog: Path) -> None:
    (shop_catalog / "schema" / "0006_order_status.sql").write_text(
        "-- phase: contract\n"
        "UPDATE customers SET \"full name\" = 'Ada 100%' WHERE \"full name\" LIKE 'A%';\n",
        encoding="utf-8",
    )
    engine = engine_for(database_url)
    migrator.migrate(engine, load_catalog(shop_catalog), 6)
    with engine.connect() as conn:
        assert conn.execute(text('SELECT "full name" FROM customers')).scalar() == "Ada 100%"


def test_create_index_concurrently_runs_outside_a_transaction(
    pg_database: str, shop_catalog: Path
) -> None:
    (shop_catalog / "schema" / "0006_order_status.sql").write_text(
        "-- phase: expand\n-- transaction: none\n"
        "CREATE INDEX CONCURRENTLY orders_total ON orders (total);\n",
        encoding="utf-8",
    )
    catalog = load_catalog(shop_catalog)
    assert not catalog.changes[5].transactional
    engine = engine_for(pg_database)
    migrator.migrate(engine, catalog, 6)
    assert "orders_total" in [i["name"] for i in inspect(engine).get_indexes("orders")]
    assert migrator.read_state(engine, catalog).level == 6


PLPGSQL_CHANGE = """-- phase: expand
-- A change as products write them: a function with a dollar-quoted body, a trigger, a DO block,
-- COMMENT ON, quoted identifiers; semicolons inside all of them.
ALTER TABLE orders ADD COLUMN "updated at" TIMESTAMPTZ;

CREATE FUNCTION touch_order() RETURNS trigger AS $body$
BEGIN
  NEW."updated at" := now(); -- a comment; with a semicolon
  RETURN NEW;
END
$body$ LANGUAGE plpgsql;

CREATE TRIGGER orders_touch BEFORE UPDATE ON orders
  FOR EACH ROW EXECUTE FUNCTION touch_order();

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nobody_here') THEN
    RAISE NOTICE 'semicolons; inside; a block';
  END IF;
END $$;

COMMENT ON COLUMN orders."updated at" IS 'set by a trigger; never by hand';
"""

SQLITE_TRIGGER_CHANGE = """-- phase: expand
ALTER TABLE orders ADD COLUMN "updated at" TEXT;
CREATE TRIGGER orders_touch AFTER UPDATE OF total ON orders
BEGIN
  UPDATE orders SET "updated at" = CASE WHEN NEW.total > 0 THEN 'paid' ELSE 'open' END
   WHERE id = NEW.id;
END;
"""


def test_realistic_postgresql_change(pg_database: str, shop_catalog: Path) -> None:
    assert_trigger_change(pg_database, shop_catalog, PLPGSQL_CHANGE)


def test_realistic_sqlite_trigger_change(sqlite_database: str, shop_catalog: Path) -> None:
    assert_trigger_change(sqlite_database, shop_catalog, SQLITE_TRIGGER_CHANGE)


def assert_trigger_change(url: str, catalog_dir: Path, sql: str) -> None:
    (catalog_dir / "schema" / "0006_order_status.sql").write_text(sql, encoding="utf-8")
    catalog = load_catalog(catalog_dir)
    engine = engine_for(url)
    migrator.migrate(engine, catalog, 6)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO orders (id, customer_id, total) VALUES (7, 1, 0)"))
        conn.execute(text("UPDATE orders SET total = 5 WHERE id = 7"))
        assert conn.execute(text('SELECT "updated at" FROM orders')).scalar() is not None
