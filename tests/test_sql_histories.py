"""Flyway, golang-migrate and dbmate histories adopted where they lie, on SQLite and PostgreSQL:
a generated corpus of files in each layout migrated up, down and up again with the tool's own
table kept as the tool writes it; bad histories refused; tool-migrated databases recognised."""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, inspect, text

from cli_runner import stairway
from stairway.catalog import load_catalog
from stairway.database import engine_for
from stairway.errors import CatalogError, DriftError, SchemaError
from stairway.schema import migrator, recorder
from stairway.schema.change import HistoryTool, Phase
from stairway.schema.histories.recognition import recognise
from stairway.schema.histories.sql_layouts import flyway_checksum
from stairway.schema.histories.sql_names import flyway_key

# (name, up, down): every step works on SQLite and PostgreSQL, and its down undoes it exactly.
STEPS = [
    (
        "create_users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL);",
        "DROP TABLE users;",
    ),
    (
        "add_email",
        "ALTER TABLE users ADD COLUMN email VARCHAR(200);",
        "ALTER TABLE users DROP COLUMN email;",
    ),
    ("users_email_index", "CREATE INDEX users_email ON users (email);", "DROP INDEX users_email;"),
    (
        "create_orders",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY,\n"
        "  user_id INTEGER NOT NULL REFERENCES users (id), total NUMERIC(10, 2));",
        "DROP TABLE orders;",
    ),
    (
        "orders_user_index",
        "CREATE INDEX orders_user ON orders (user_id);",
        "DROP INDEX orders_user;",
    ),
    (
        "add_note",
        "ALTER TABLE orders ADD COLUMN note TEXT;",
        "ALTER TABLE orders DROP COLUMN note;",
    ),
    (
        "create_view",
        "CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;",
        "DROP VIEW big_orders;",
    ),
    (
        "create_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, label VARCHAR(50) NOT NULL UNIQUE);",
        "DROP TABLE tags;",
    ),
    (
        "add_created",
        "ALTER TABLE users ADD COLUMN created_at TIMESTAMP;",
        "ALTER TABLE users DROP COLUMN created_at;",
    ),
    ("tags_label_index", "CREATE INDEX tags_label ON tags (label);", "DROP INDEX tags_label;"),
    (
        "create_audit",
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);",
        "DROP TABLE audit;",
    ),
    ("audit_index", "CREATE UNIQUE INDEX audit_what ON audit (what);", "DROP INDEX audit_what;"),
]
N = len(STEPS)
# Flyway: dotted and underscored versions, sorted as numbers (10 after 3.5), some in subdirectories.
FLYWAY_VERSIONS = ["1", "1.1", "1_2", "2", "2.0.1", "3", "3.5", "10", "10.1", "11", "11.0.2", "12"]
FLYWAY_DIRS = ["", "", "", "sub", "sub/deeper", "", "sub", "", "", "more", "", ""]
GOLANG_VERSIONS = [f"{n:06d}" for n in range(1, 6)] + [f"2024010{n}120000" for n in range(1, 8)]
DBMATE_VERSIONS = [f"202402{n:02d}093000" for n in range(1, N + 1)]
TABLES = {
    HistoryTool.FLYWAY: "flyway_schema_history",
    HistoryTool.GOLANG_MIGRATE: "schema_migrations",
    HistoryTool.DBMATE: "schema_migrations",
}
OWN = {"stairway_changes", "stairway_lock", "stairway_meta", "stairway_patches"}


def manifest(tool: str, extra: str = "", schema: int = N) -> str:
    return (
        f'[product]\nname = "sqlapp"\n\n[history]\ntool = "{tool}"\npath = "migrations"\n{extra}\n'
        f'[[release]]\nversion = "1.0.0"\nschema = {schema}\n'
    )


def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def flyway_catalog(root: Path) -> Path:
    write(root / "stairway.toml", manifest("flyway", 'phases = { "1.1" = "expand" }\n'))
    for (name, up, down), version, sub in zip(STEPS, FLYWAY_VERSIONS, FLYWAY_DIRS, strict=True):
        where = root / "migrations" / sub
        # a plain index on an existing table stops writes while it builds: not an expand change
        header = "-- phase: contract\n" if version == "2.0.1" else ""
        write(where / f"V{version}__{name}.sql", f"-- {name}\r\n{header}{up}\r\n")
        write(where / f"U{version}__{name}.sql", f"{down}\n")
    write(root / "migrations" / "README.md", "Not a migration.\n")
    return root


def golang_catalog(root: Path) -> Path:
    write(root / "stairway.toml", manifest("golang-migrate"))
    for index, ((name, up, down), version) in enumerate(zip(STEPS, GOLANG_VERSIONS, strict=True)):
        body = f"BEGIN;\n{up}\nCOMMIT;\n" if index == 3 else f"{up}\n"  # wrapped, as often written
        write(root / "migrations" / f"{version}_{name}.up.sql", body)
        write(root / "migrations" / f"{version}_{name}.down.sql", f"{down}\n")
    return root


def dbmate_catalog(root: Path) -> Path:
    write(root / "stairway.toml", manifest("dbmate"))
    for index, ((name, up, down), version) in enumerate(zip(STEPS, DBMATE_VERSIONS, strict=True)):
        option = " transaction:false" if index == 2 else ""
        body = f"-- migrate:up{option}\n{up}\n\n-- migrate:down\n{down}\n"
        write(root / "migrations" / f"{version}_{name}.sql", body)
    return root


CATALOGS = {
    HistoryTool.FLYWAY: flyway_catalog,
    HistoryTool.GOLANG_MIGRATE: golang_catalog,
    HistoryTool.DBMATE: dbmate_catalog,
}


def schema(engine: Engine) -> dict[str, Any]:
    """Tables (columns: type, nullability; indexes) and views, without the bookkeeping tables."""
    found = inspect(engine)
    tables = {}
    names = {t for t in found.get_table_names() if not t.startswith("stairway_")}
    for table in sorted(names - set(TABLES.values())):
        columns = [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)]
        indexes = sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in found.get_indexes(table)
        )
        tables[table] = (columns, indexes)
    return {"tables": tables, "views": sorted(found.get_view_names())}


def java_crc(body: str) -> int:
    """Flyway's checksum computed here independently: java.util.zip.CRC32 fed line by line."""
    crc = zlib.crc32(b"")
    for line in body.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        crc = zlib.crc32(line.encode(), crc)
    return crc if crc < 2**31 else crc - 2**32


def ledger_rows(engine: Engine, tool: HistoryTool) -> list[tuple[Any, ...]]:
    query = {
        HistoryTool.FLYWAY: "SELECT installed_rank, version, description, type, script, "
        "checksum, installed_by, success FROM flyway_schema_history ORDER BY installed_rank",
        HistoryTool.GOLANG_MIGRATE: "SELECT version, dirty FROM schema_migrations",
        HistoryTool.DBMATE: "SELECT version FROM schema_migrations ORDER BY version",
    }[tool]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(query))]


def expected_rows(
    engine: Engine, tool: HistoryTool, root: Path, level: int
) -> list[tuple[Any, ...]]:
    """What the tool itself writes after applying migrations 1..level."""
    if tool == HistoryTool.GOLANG_MIGRATE:
        return [(int(GOLANG_VERSIONS[level - 1]), False)] if level else []
    if tool == HistoryTool.DBMATE:
        return [(v,) for v in DBMATE_VERSIONS[:level]]
    user = ""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            user = conn.execute(text("SELECT current_user")).scalar_one()
    rows = []
    for rank, ((name, _, _), version, sub) in enumerate(
        zip(STEPS[:level], FLYWAY_VERSIONS, FLYWAY_DIRS, strict=False), start=1
    ):
        script = f"{sub}/V{version}__{name}.sql".lstrip("/")
        body = (root / "migrations" / script).read_text(encoding="utf-8")
        description = name.replace("_", " ")
        rows.append(
            (
                rank,
                version.replace("_", "."),
                description,
                "SQL",
                script,
                java_crc(body),
                user,
                True,
            )
        )
    return rows


@pytest.mark.parametrize("tool", list(CATALOGS), ids=str)
def test_history_up_down_up_keeps_the_tools_table(
    database_url: str, tmp_path: Path, tool: HistoryTool
) -> None:
    root = CATALOGS[tool](tmp_path / "catalog")
    catalog = load_catalog(root)
    engine = engine_for(database_url)
    assert [c.number for c in catalog.changes] == list(range(1, N + 1))
    migrator.migrate(engine, catalog, N)
    whole = schema(engine)
    assert set(whole["tables"]) == {"users", "orders", "tags", "audit"}
    assert whole["views"] == ["big_orders"]
    assert ledger_rows(engine, tool) == expected_rows(engine, tool, root, N)
    migrator.downgrade(engine, catalog, 0, allow_data_loss=True)
    assert schema(engine) == {"tables": {}, "views": []}
    assert ledger_rows(engine, tool) == []
    migrator.migrate(engine, catalog, N)
    assert schema(engine) == whole
    migrator.downgrade(engine, catalog, 5, allow_data_loss=True)
    assert ledger_rows(engine, tool) == expected_rows(engine, tool, root, 5)
    assert migrator.read_state(engine, catalog).level == 5
    migrator.migrate(engine, catalog, N)
    assert schema(engine) == whole
    assert ledger_rows(engine, tool) == expected_rows(engine, tool, root, N)


def test_flyway_files_read_as_flyway_reads_them(tmp_path: Path) -> None:
    catalog = load_catalog(flyway_catalog(tmp_path / "catalog"))
    idents = [c.origin.ident for c in catalog.changes if c.origin]
    assert idents == [v.replace("_", ".") for v in FLYWAY_VERSIONS]
    by_ident = {c.origin.ident: c for c in catalog.changes if c.origin}
    assert by_ident["1.1"].phase == Phase.EXPAND  # from [history] phases
    assert by_ident["2.0.1"].phase == Phase.CONTRACT  # from the file's header
    assert by_ident["2.0.1"].origin.script == "sub/deeper/V2.0.1__orders_user_index.sql"  # type: ignore[union-attr]
    assert by_ident["1"].phase == Phase.OFFLINE
    assert by_ident["1"].loses and "DROP TABLE users" in by_ident["1"].loses
    assert by_ident["1.2"].loses is None  # dropping an index loses no rows
    assert all(c.reversible for c in catalog.changes)


def test_golang_and_dbmate_details(tmp_path: Path) -> None:
    golang = load_catalog(golang_catalog(tmp_path / "golang"))
    fourth = golang.changes[3]
    assert [s.text for s in fourth.statements] == [STEPS[3][1].rstrip(";")]  # BEGIN/COMMIT gone
    assert fourth.origin and fourth.origin.ident == "4"
    assert fourth.origin.heads_before == ("3",) and fourth.origin.heads_after == ("4",)
    assert golang.changes[0].origin and golang.changes[0].origin.heads_before == ()
    dbmate = load_catalog(dbmate_catalog(tmp_path / "dbmate"))
    assert [c.transactional for c in dbmate.changes[:4]] == [True, True, False, True]
    assert dbmate.changes[0].statements[0].line == 2
    assert dbmate.changes[0].down and dbmate.changes[0].down[0].line == 5


def test_flyway_checksum_matches_the_crc32_flyway_computes() -> None:
    # Values published with a line-by-line java.util.zip.CRC32 (the same computation as Flyway's
    # ChecksumCalculator) for the files "hello\n" and "helloäüü\n".
    assert flyway_checksum("hello\n") == 907060870
    assert flyway_checksum("helloäüü\n") == 1859426839
    body = "CREATE TABLE t (id INT);\n-- comment\nINSERT INTO t VALUES (1);\n"
    assert flyway_checksum(body) == flyway_checksum(body.replace("\n", "\r\n"))
    assert flyway_checksum("\ufeff" + body) == flyway_checksum(body)
    assert flyway_checksum(body) == java_crc(body)
    assert any(flyway_checksum(f"SELECT {n};") < 0 for n in range(20))  # stored signed


def test_flyway_versions_compare_as_numbers() -> None:
    ordered = ["1", "1.1", "1.2", "1.10", "2", "2.0.1", "10"]
    assert sorted(ordered, key=flyway_key) == ordered
    assert flyway_key("1.0") == flyway_key("1") == flyway_key("1_0_0")


BAD = {
    "flyway duplicate version": (
        "flyway",
        {"V1__a.sql": "SELECT 1;", "sub/V1.0__b.sql": "SELECT 2;"},
        r"Flyway version 1.0 is used twice: V1.0__b.sql and V1__a.sql",
    ),
    "flyway integer gap": (
        "flyway",
        {"V1__a.sql": "SELECT 1;", "V2__b.sql": "SELECT 2;", "V4__d.sql": "SELECT 4;"},
        r"V4__d.sql: Flyway versions run 1, 2, 3 ... but 3 is missing",
    ),
    "flyway one underscore": (
        "flyway",
        {"V1__a.sql": "SELECT 1;", "V2_init.sql": "SELECT 2;"},
        r"V2_init.sql is not named as a migration",
    ),
    "flyway lower-case prefix": (
        "flyway",
        {"V1__a.sql": "SELECT 1;", "v2__b.sql": "SELECT 2;"},
        r"v2__b.sql is not named as a migration",
    ),
    "flyway repeatable with a version": (
        "flyway",
        {"V1__a.sql": "SELECT 1;", "R1__views.sql": "SELECT 2;"},
        r"R1__views.sql is not named as a migration",
    ),
    "flyway repeatable twice": (
        "flyway",
        {"V1__a.sql": "SELECT 1;", "R__views.sql": "SELECT 2;", "sub/R__views.sql": "SELECT 3;"},
        r"the repeatable description 'views' is used twice",
    ),
    "flyway undo without version": (
        "flyway",
        {"V1__a.sql": "SELECT 1;", "U2__b.sql": "SELECT 2;"},
        r"U2__b.sql undoes a version no V file has",
    ),
    "golang down without up": (
        "golang-migrate",
        {"1_a.up.sql": "SELECT 1;", "2_b.down.sql": "SELECT 2;"},
        r"2_b.down.sql has no 2_b.up.sql",
    ),
    "golang duplicate version": (
        "golang-migrate",
        {"1_a.up.sql": "SELECT 1;", "001_b.up.sql": "SELECT 2;"},
        r"golang-migrate version 1 is used twice",
    ),
    "golang commit inside": (
        "golang-migrate",
        {"1_a.up.sql": "CREATE TABLE a (id INT);\nCOMMIT;\nCREATE TABLE b (id INT);\n"},
        r"1_a.up.sql:2: the migration controls its own transaction",
    ),
    "dbmate without migrate:up": (
        "dbmate",
        {"20240101_a.sql": "CREATE TABLE a (id INT);\n-- migrate:down\nDROP TABLE a;\n"},
        r"20240101_a.sql: 20240101_a.sql has no `-- migrate:up` line",
    ),
    "dbmate misnamed": (
        "dbmate",
        {"20240101_a.sql": "-- migrate:up\nSELECT 1;\n", "init.sql": "SELECT 2;"},
        r"init.sql is not named as a migration",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_histories_are_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    tool, files, message = BAD[case]
    write(tmp_path / "stairway.toml", manifest(tool, schema=1))
    for name, body in files.items():
        write(tmp_path / "migrations" / name, body)
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog(tmp_path)


@pytest.mark.parametrize("tool", list(CATALOGS), ids=str)
def test_an_edited_applied_file_is_drift(
    database_url: str, tmp_path: Path, tool: HistoryTool
) -> None:
    root = CATALOGS[tool](tmp_path / "catalog")
    engine = engine_for(database_url)
    migrator.migrate(engine, load_catalog(root), 4)
    before = ledger_rows(engine, tool)
    edited = load_catalog(root).changes[1].path
    edited.write_text(edited.read_text().replace("VARCHAR(200)", "VARCHAR(300)"), encoding="utf-8")
    with pytest.raises(DriftError, match=r"drift: .*add_email"):
        migrator.migrate(engine, load_catalog(root), N)
    assert ledger_rows(engine, tool) == before
    assert migrator.read_state(engine, load_catalog(root)).level == 4


def by_hand(engine: Engine, root: Path, level: int, table_sql: list[str], rows: list[str]) -> None:
    """A database migrated by the tool: the SQL run by hand, the tool's table written as it does."""
    catalog = load_catalog(root)
    with engine.begin() as conn:
        for change in catalog.changes[:level]:
            for statement in change.statements:
                conn.exec_driver_sql(statement.text)
        for sql in table_sql + rows:
            conn.exec_driver_sql(sql)


FLYWAY_TABLE = (
    "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY, "
    "version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, "
    "script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, "
    "installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, execution_time INT NOT NULL, "
    "success BOOLEAN NOT NULL)"
)
GOLANG_TABLE = (
    "CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null)"
)
DBMATE_TABLE = "CREATE TABLE schema_migrations (version varchar(128) primary key)"


def flyway_row(rank: int, version: str | None, kind: str = "SQL", success: str = "true") -> str:
    shown = f"'{version}'" if version else "NULL"
    return (
        f"INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, "
        f"checksum, installed_by, execution_time, success) VALUES ({rank}, {shown}, 'x', "
        f"'{kind}', 'x.sql', 0, 'me', 5, {success})"
    )


def test_a_database_the_tools_migrated_is_recognised(database_url: str, tmp_path: Path) -> None:
    engine = engine_for(database_url)
    flyway = flyway_catalog(tmp_path / "flyway")
    versions = [v.replace("_", ".") for v in FLYWAY_VERSIONS]
    rows = [flyway_row(0, None, "SCHEMA")] + [flyway_row(i + 1, versions[i]) for i in range(4)]
    by_hand(engine, flyway, 4, [FLYWAY_TABLE], rows)
    with engine.connect() as conn:
        found = recognise(conn, load_catalog(flyway).changes)
    assert found is not None and found.level == 4 and found.ident == "2"


def test_a_flyway_baseline_counts_what_it_stands_for(database_url: str, tmp_path: Path) -> None:
    engine = engine_for(database_url)
    root = flyway_catalog(tmp_path / "flyway")
    rows = [flyway_row(1, "1.2", "BASELINE"), flyway_row(2, "2"), flyway_row(3, "2.0.1")]
    by_hand(engine, root, 5, [FLYWAY_TABLE], rows)
    with engine.connect() as conn:
        found = recognise(conn, load_catalog(root).changes)
    assert found is not None and found.level == 5 and found.ident == "2.0.1"


@pytest.mark.parametrize("tool", [HistoryTool.GOLANG_MIGRATE, HistoryTool.DBMATE], ids=str)
def test_golang_and_dbmate_tables_are_recognised(
    database_url: str, tmp_path: Path, tool: HistoryTool
) -> None:
    engine = engine_for(database_url)
    root = CATALOGS[tool](tmp_path / "catalog")
    if tool == HistoryTool.GOLANG_MIGRATE:
        table, rows = (
            GOLANG_TABLE,
            [f"INSERT INTO schema_migrations VALUES ({GOLANG_VERSIONS[6]}, false)"],
        )
    else:
        table = DBMATE_TABLE
        rows = [f"INSERT INTO schema_migrations VALUES ('{v}')" for v in DBMATE_VERSIONS[:7]]
    by_hand(engine, root, 7, [table], rows)
    with engine.connect() as conn:
        found = recognise(conn, load_catalog(root).changes)
    assert found is not None and found.level == 7


REFUSED = {
    "golang dirty": (
        HistoryTool.GOLANG_MIGRATE,
        [GOLANG_TABLE, "INSERT INTO schema_migrations VALUES (3, true)"],
        "version 3 is dirty: a migration failed half-way",
    ),
    "flyway failed": (
        HistoryTool.FLYWAY,
        [FLYWAY_TABLE, flyway_row(1, "1"), flyway_row(2, "1.1", success="false")],
        "migration V1.1 failed (success = false)",
    ),
    "golang table under dbmate": (
        HistoryTool.DBMATE,
        [GOLANG_TABLE, "INSERT INTO schema_migrations VALUES (3, false)"],
        "are not dbmate's: it looks like golang-migrate's table",
    ),
    "dbmate table under golang": (
        HistoryTool.GOLANG_MIGRATE,
        [DBMATE_TABLE, "INSERT INTO schema_migrations VALUES ('3')"],
        "are not golang-migrate's",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_half_applied_or_foreign_tables_are_refused(
    database_url: str, tmp_path: Path, case: str
) -> None:
    tool, sql, message = REFUSED[case]
    engine = engine_for(database_url)
    root = CATALOGS[tool](tmp_path / "catalog")
    by_hand(engine, root, 0, sql, [])
    with engine.connect() as conn, pytest.raises(SchemaError, match=re.escape(message)):
        recognise(conn, load_catalog(root).changes)


def test_stairway_upgrade_adopts_a_database_golang_migrate_migrated(
    sqlite_database: str, tmp_path: Path
) -> None:
    root = golang_catalog(tmp_path / "catalog")
    last = int(GOLANG_VERSIONS[-1])  # a release names its last migration by its version
    manifest_text = manifest("golang-migrate", schema=7)
    manifest_text += f'\n[[release]]\nversion = "2.0.0"\nschema = "{last}"\n'
    write(root / "stairway.toml", manifest_text)
    engine = engine_for(sqlite_database)
    insert = f"INSERT INTO schema_migrations VALUES ({GOLANG_VERSIONS[6]}, false)"
    by_hand(engine, root, 7, [GOLANG_TABLE], [insert])
    site = write(
        tmp_path / "site.toml",
        f'[site]\ndatabase = "{sqlite_database}"\ncatalog = "{root}"\n'
        f'backup_dir = "{tmp_path / "backups"}"\n',
    )
    code, out, err = stairway("upgrade", "--site", str(site))
    said = " ".join((out + err).split())
    assert code == 0, said
    ident = str(int(GOLANG_VERSIONS[6]))
    assert f"adopting golang-migrate history in schema_migrations at {ident} (change 7)" in said
    assert "upgraded 1.0.0 -> 2.0.0" in said
    assert ledger_rows(engine, HistoryTool.GOLANG_MIGRATE) == [(last, False)]
    assert migrator.read_state(engine, load_catalog(root)).level == N


def bad_site(root: Path, case: str, database: str) -> Path:
    """A site whose catalog ships the bad history of ``case``."""
    tool, files, _ = BAD[case]
    write(root / "catalog" / "stairway.toml", manifest(tool, schema=1))
    for name, body in files.items():
        write(root / "catalog" / "migrations" / name, body)
    return write(
        root / "site.toml",
        f'[site]\ndatabase = "{database}"\ncatalog = "{root / "catalog"}"\n'
        f'backup_dir = "{root / "backups"}"\n',
    )


def refused_by_the_cli(site: Path, case: str, command: list[str], database: str) -> None:
    code, out, err = stairway(*command, "--site", str(site))
    said = out + err
    bad_file = re.split(r"[:\s]", BAD[case][2])[0]
    assert code == 2, said
    assert "Traceback" not in said
    assert re.search(rf"^error: .*{re.escape(bad_file)}", said, re.MULTILINE), said
    assert re.search(r"^hint: ", said, re.MULTILINE), said
    engine = engine_for(database)
    assert inspect(engine).get_table_names() == []


@pytest.mark.parametrize("command", [["init", "--version", "1.0.0"], ["migrate"]], ids=str)
@pytest.mark.parametrize("case", list(BAD))
def test_bad_histories_are_refused_by_the_cli_before_anything_is_written(
    tmp_path: Path, sqlite_database: str, case: str, command: list[str]
) -> None:
    site = bad_site(tmp_path, case, sqlite_database)
    refused_by_the_cli(site, case, command, sqlite_database)


def test_a_bad_history_leaves_a_postgresql_database_untouched(
    tmp_path: Path, pg_database: str
) -> None:
    case = "golang commit inside"
    site = bad_site(tmp_path, case, pg_database)
    refused_by_the_cli(site, case, ["migrate"], pg_database)


# description -> body: Flyway applies them by description, whatever directory they lie in
REPEATABLES = {
    "sub/R__a_user_names.sql": "DROP VIEW IF EXISTS user_names;\n"
    "CREATE VIEW user_names AS SELECT name FROM users;\n",
    "R__b_tag_labels.sql": "DROP VIEW IF EXISTS tag_labels;\n"
    "CREATE VIEW tag_labels AS SELECT label FROM tags;\n",
}


def repeatable_rows(engine: Engine) -> list[tuple[Any, ...]]:
    return [r[2:6] for r in ledger_rows(engine, HistoryTool.FLYWAY) if r[1] is None]


def with_repeatables(root: Path) -> Path:
    flyway_catalog(root)
    for name, body in REPEATABLES.items():
        write(root / "migrations" / name, body)
    return root


def test_flyway_repeatables_run_after_the_versioned_ones_when_changed(
    database_url: str, tmp_path: Path
) -> None:
    root = with_repeatables(tmp_path / "catalog")
    engine = engine_for(database_url)
    catalog = load_catalog(root)
    assert [(r.description, r.phase) for r in catalog.repeatables] == [
        ("a user names", Phase.OFFLINE),
        ("b tag labels", Phase.OFFLINE),
    ]
    migrator.migrate(engine, catalog, N)
    first = [
        (
            "a user names",
            "SQL",
            "sub/R__a_user_names.sql",
            java_crc(REPEATABLES["sub/R__a_user_names.sql"]),
        ),
        (
            "b tag labels",
            "SQL",
            "R__b_tag_labels.sql",
            java_crc(REPEATABLES["R__b_tag_labels.sql"]),
        ),
    ]
    assert repeatable_rows(engine) == first
    assert ledger_rows(engine, HistoryTool.FLYWAY)[-3][1] == "12"  # after every versioned one
    migrator.migrate(engine, load_catalog(root), N)
    assert repeatable_rows(engine) == first  # unchanged: not run again
    edited = (
        "DROP VIEW IF EXISTS tag_labels;\nCREATE VIEW tag_labels AS SELECT id, label FROM tags;\n"
    )
    write(root / "migrations" / "R__b_tag_labels.sql", edited)
    migrator.migrate(engine, load_catalog(root), N)  # a changed repeatable is no drift
    assert repeatable_rows(engine) == [*first, (*first[1][:3], java_crc(edited))]
    assert {c["name"] for c in inspect(engine).get_columns("tag_labels")} == {"id", "label"}
    with pytest.raises(SchemaError, match="no down direction for the repeatable"):
        migrator.downgrade(engine, load_catalog(root), 4, allow_data_loss=True)
    assert migrator.read_state(engine, load_catalog(root)).level == N


def test_a_false_expand_repeatable_is_refused(tmp_path: Path) -> None:
    root = flyway_catalog(tmp_path / "catalog")
    write(root / "migrations" / "R__drop.sql", "-- phase: expand\nDROP TABLE tags;\n")
    with pytest.raises(CatalogError, match=r"R__drop.sql:.*declared expand, but"):
        load_catalog(root)


def test_a_database_flyway_migrated_with_repeatables_is_adopted(
    database_url: str, tmp_path: Path
) -> None:
    root = with_repeatables(tmp_path / "catalog")
    engine = engine_for(database_url)
    catalog = load_catalog(root)
    versions = [v.replace("_", ".") for v in FLYWAY_VERSIONS]
    rows = [flyway_row(i + 1, versions[i]) for i in range(N)]
    for rank, r in enumerate(catalog.repeatables, start=N + 1):
        rows.append(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, "
            "script, checksum, installed_by, execution_time, success) VALUES "
            f"({rank}, NULL, '{r.description}', 'SQL', '{r.script}', {r.checksum}, 'me', 5, true)"
        )
    by_hand(engine, root, N, [FLYWAY_TABLE], rows)
    with engine.begin() as conn:
        for r in catalog.repeatables:
            for statement in r.statements:
                conn.exec_driver_sql(statement.text)
    migrator.migrate(engine, catalog, N)
    adopted = repeatable_rows(engine)
    assert len(adopted) == 2  # recognised, baselined, nothing run again
    assert [a.kind for a in migrator.read_state(engine, catalog).applied] == [
        recorder.RecordKind.BASELINE
    ] * N
    write(root / "migrations" / "R__b_tag_labels.sql", "DROP VIEW IF EXISTS tag_labels;\n")
    migrator.migrate(engine, load_catalog(root), N)
    assert len(repeatable_rows(engine)) == 3
    assert "tag_labels" not in inspect(engine).get_view_names()
    edited = load_catalog(root).changes[1].path
    edited.write_text(edited.read_text().replace("VARCHAR(200)", "VARCHAR(300)"), encoding="utf-8")
    with pytest.raises(DriftError, match=r"drift: .*add_email"):
        migrator.migrate(engine, load_catalog(root), N)


def _said(site: Path, *command: str) -> dict[str, Any]:
    code, out, err = stairway(*command, "--json", "--site", str(site))
    assert code == 0, out + err
    said: dict[str, Any] = orjson.loads(out)
    return said


def _due(site: Path) -> dict[str, list[tuple[str, str]]]:
    """The repeatables ``status``, ``plan`` and ``migrate --dry-run`` each say are pending."""
    found = {
        "status": _said(site, "status")["repeatables"],
        "plan": _said(site, "plan")["repeatables"],
        "dry-run": _said(site, "migrate", "--dry-run")["repeatables"],
    }
    return {k: [(r["script"], r["reason"]) for r in v] for k, v in found.items()}


def test_pending_repeatables_are_shown_by_status_plan_and_dry_run(
    database_url: str, tmp_path: Path
) -> None:
    root = flyway_catalog(tmp_path / "catalog")
    site = write(
        tmp_path / "site.toml",
        f'[site]\ndatabase = "{database_url}"\ncatalog = "{root}"\n'
        f'backup_dir = "{tmp_path / "backups"}"\n',
    )
    code, out, err = stairway("init", "--version", "1.0.0", "--site", str(site))
    assert code == 0, out + err
    # the vendor's next release adds repeatables, and no versioned migration
    with_repeatables(root)
    write(
        root / "stairway.toml",
        manifest("flyway") + f'\n[[release]]\nversion = "2.0.0"\nschema = {N}\n',
    )
    both = [("sub/R__a_user_names.sql", "new"), ("R__b_tag_labels.sql", "new")]
    assert _due(site) == {"status": both, "plan": both, "dry-run": both}
    code, out, _ = stairway("plan", "--site", str(site))
    assert re.search(r"then\s+│\s+sub/R__a_user_names\.sql \(repeatable, new\)\s+│ offline", out), (
        out
    )
    code, out, err = stairway("upgrade", "--site", str(site))
    assert code == 0, out + err
    assert _due(site) == {"status": [], "plan": [], "dry-run": []}
    code, out, _ = stairway("status", "--site", str(site))
    assert re.search(r"repeatable migrations pending\s+│ none", out), out
    code, out, _ = stairway("migrate", "--dry-run", "--site", str(site))
    assert out.strip() == "-- nothing to apply"
    edited = root / "migrations" / "R__b_tag_labels.sql"
    edited.write_text(REPEATABLES["R__b_tag_labels.sql"] + "-- now with a comment\n", "utf-8")
    changed = [("R__b_tag_labels.sql", "changed")]
    assert _due(site) == {"status": changed, "plan": changed, "dry-run": changed}
    code, out, _ = stairway("status", "--site", str(site))
    flat = " ".join(out.replace("│", " ").split())
    assert "R__b_tag_labels.sql (repeatable) [offline]: re-apply, checksum changed" in flat, out
    code, out, _ = stairway("migrate", "--dry-run", "--site", str(site))
    assert "-- R__b_tag_labels.sql (repeatable) [offline]: re-apply, checksum changed" in out
    assert "CREATE VIEW tag_labels AS SELECT label FROM tags;" in out
    assert "user_names" not in out
    code, out, _ = stairway("plan", "--site", str(site))
    assert "repeatable migrations pending (`stairway migrate` applies them):" in out
    assert stairway("status", "--strict", "--site", str(site))[0] == 3
    assert stairway("migrate", "--site", str(site))[0] == 0
    assert _said(site, "status")["repeatables"] == []


def test_a_new_database_lists_every_repeatable(sqlite_database: str, tmp_path: Path) -> None:
    root = with_repeatables(tmp_path / "catalog")
    site = write(
        tmp_path / "site.toml", f'[site]\ndatabase = "{sqlite_database}"\ncatalog = "{root}"\n'
    )
    both = [(r, "new") for r in ("sub/R__a_user_names.sql", "R__b_tag_labels.sql")]
    status = _said(site, "status")["repeatables"]
    assert [(r["script"], r["reason"]) for r in status] == both
    assert status[1] == {
        "script": "R__b_tag_labels.sql",
        "description": "b tag labels",
        "phase": "offline",
        "checksum": java_crc(REPEATABLES["R__b_tag_labels.sql"]),
        "reason": "new",
    }
    code, out, _ = stairway("status", "--site", str(site))
    flat = " ".join(out.replace("│", " ").split())
    assert code == 0
    assert "sub/R__a_user_names.sql (repeatable) [offline]: new R__b_tag_labels.sql" in flat, out
