"""Schema snapshots of catalogs adopting another tool's history (Optuna's Alembic history, a
Flyway layout): a site built from one is the site replaying the history builds, schema, rows
and the tool's own table alike (timestamps aside), its tool reads the right revision, a later
upgrade runs the revisions after it, and a snapshot of no point of the history is refused."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from cli_runner import stairway
from optuna_sites import HEAD, heads, optuna_catalog, sa_url, schema_dump
from snapshot_sites import MakeSite, declare, site_maker
from stairway.database import engine_for
from stairway.schema.change import HistoryTool
from test_sql_histories import CATALOGS, N, expected_rows, flyway_catalog, java_crc, ledger_rows

OPTUNA_TOOL = "alembic_version"
FLYWAY_TOOL = "flyway_schema_history"
FLYWAY_RELEASES = (  # 4.1 seeds rows; 1.0.0 stops there, 1.1.0 runs the rest
    '[[release]]\nversion = "1.0.0"\nschema = "4.1"\n\n'
    '[[release]]\nversion = "1.1.0"\nschema = "12"\n'
)


@pytest.fixture(params=["sqlite", "postgresql"])
def make_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeSite]:
    """``make_site(name, catalog)``: a site.toml on a new database of the parametrised engine."""
    with ExitStack() as stack:
        yield site_maker(request.param, tmp_path, stack)


def rows(url: str, leave_out: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but Stairway's and ``leave_out``, sorted: what a site holds."""
    engine = create_engine(sa_url(url))
    try:
        names = [t for t in inspect(engine).get_table_names() if not t.startswith("stairway_")]
        with engine.connect() as conn:
            return {
                t: sorted(map(tuple, conn.execute(text(f'SELECT * FROM "{t}"'))), key=repr)
                for t in names
                if t != leave_out
            }
    finally:
        engine.dispose()


def flyway_ledger(url: str) -> list[tuple[Any, ...]]:
    """Flyway's table without the columns a run makes up (installed_on, execution_time)."""
    engine = create_engine(sa_url(url))
    try:
        with engine.connect() as conn:
            return list(
                map(
                    tuple,
                    conn.execute(
                        text(
                            "SELECT installed_rank, version, description, type, script, "
                            "checksum, installed_by, success FROM flyway_schema_history "
                            "ORDER BY installed_rank"
                        )
                    ),
                )
            )
    finally:
        engine.dispose()


def said(out: str) -> str:
    return " ".join(out.split())


def snapshot_of(site: Path, version: str) -> None:
    code, out, err = stairway("snapshot", "--release", version, "--site", str(site))
    assert code == 0, out + err


def carried(catalog: Path, version: str) -> str:
    """The snapshot's DDL and rows files, as one text."""
    files = sorted((catalog / "snapshots" / version).glob("*.sql"))
    assert files
    return "".join(f.read_text("utf-8") for f in files)


def test_an_alembic_history_builds_from_its_snapshot_as_it_replays(
    tmp_path: Path, make_site: MakeSite
) -> None:
    catalog = optuna_catalog(tmp_path)
    source, _ = make_site("source", catalog)
    code, out, err = stairway("init", "--version", "2.6.0", "--replay", "--site", str(source))
    assert code == 0 and "every change replayed" in out, out + err
    snapshot_of(source, "2.6.0")
    manifest = next((catalog / "snapshots" / "2.6.0").glob("*.toml")).read_text("utf-8")
    assert 'history = "v2.6.0.a"' in manifest
    assert OPTUNA_TOOL not in carried(catalog, "2.6.0")  # stamped at init, not carried
    declare(catalog, "2.6.0")

    # the product's fresh install stamps the head, beyond 2.6.0: the snapshot builds it
    (built, built_url), (replayed, replayed_url) = built_and_replayed(
        make_site, catalog, "2.6.0", "changes 1..5"
    )
    assert rows(built_url, OPTUNA_TOOL) == rows(replayed_url, OPTUNA_TOOL)
    assert heads(built_url) == heads(replayed_url) == {"v2.6.0.a"}  # Alembic's own reading

    code, out, err = stairway("upgrade", "--to", "3.2.0", "--site", str(built))
    assert code == 0, out + err
    for stop in ("3.0.0", "3.2.0"):  # the required stops the upgrade went through
        code, out, err = stairway("migrate", "--to", stop, "--site", str(replayed))
        assert code == 0, out + err
    assert schema_dump(built_url) == schema_dump(replayed_url)
    assert heads(built_url) == heads(replayed_url) == {HEAD}

    # at the head the product's own fresh install fits, and wins over the snapshot below it
    head, _ = make_site("head", catalog)
    code, out, err = stairway("init", "--version", "3.2.0", "--site", str(head))
    assert code == 0, out + err
    assert "built by the product's own fresh install" in said(out)


def built_and_replayed(
    make_site: MakeSite, catalog: Path, version: str, changes: str
) -> tuple[tuple[Path, str], tuple[Path, str]]:
    """Two new sites at ``version``: one built from its snapshot (saying it built ``changes``),
    one replaying every change; both end with the same schema."""
    built, built_url = make_site("built", catalog)
    code, out, err = stairway("init", "--version", version, "--site", str(built))
    assert code == 0, out + err
    assert f"{changes} built from the snapshot of {version}" in said(out)
    replayed, replayed_url = make_site("replayed", catalog)
    assert stairway("init", "--version", version, "--replay", "--site", str(replayed))[0] == 0
    assert schema_dump(built_url) == schema_dump(replayed_url)
    return (built, built_url), (replayed, replayed_url)


def flyway_history(root: Path) -> Path:
    """The Flyway corpus with a migration seeding rows, in two releases."""
    flyway_catalog(root)
    (root / "migrations" / "V4.1__seed.sql").write_text(
        "INSERT INTO users (id, name, email) VALUES (1, 'admin', 'a@example.org');\n"
        "INSERT INTO orders (id, user_id, total) VALUES (7, 1, 250.00);\n",
        encoding="utf-8",
    )
    (root / "stairway.toml").write_text(
        '[product]\nname = "sqlapp"\n\n[history]\ntool = "flyway"\npath = "migrations"\n\n'
        + FLYWAY_RELEASES,
        encoding="utf-8",
    )
    return root


def test_a_flyway_history_builds_from_its_snapshot_as_it_replays(
    tmp_path: Path, make_site: MakeSite
) -> None:
    catalog = flyway_history(tmp_path / "catalog")
    source, _ = make_site("source", catalog)
    assert stairway("init", "--version", "1.0.0", "--site", str(source))[0] == 0
    snapshot_of(source, "1.0.0")
    assert FLYWAY_TOOL not in carried(catalog, "1.0.0")
    declare(catalog, "1.0.0")

    (built, built_url), (replayed, replayed_url) = built_and_replayed(
        make_site, catalog, "1.0.0", "changes 1..8"
    )
    assert rows(built_url, FLYWAY_TOOL)["users"] == [(1, "admin", "a@example.org")]
    assert rows(built_url, FLYWAY_TOOL) == rows(replayed_url, FLYWAY_TOOL)
    ledger = flyway_ledger(built_url)
    assert ledger == flyway_ledger(replayed_url)
    assert [r[1] for r in ledger] == ["1", "1.1", "1.2", "2", "2.0.1", "3", "3.5", "4.1"]
    for row in ledger:  # what `flyway validate` recomputes from the files
        assert row[5] == java_crc((catalog / "migrations" / row[4]).read_text("utf-8"))

    code, out, err = stairway("upgrade", "--to", "1.1.0", "--site", str(built))
    assert code == 0, out + err
    assert stairway("migrate", "--to", "1.1.0", "--site", str(replayed))[0] == 0
    assert schema_dump(built_url) == schema_dump(replayed_url)
    assert flyway_ledger(built_url) == flyway_ledger(replayed_url)
    assert [r[1] for r in flyway_ledger(built_url)][-1] == "12"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (
            'history = "3.5"',
            "'3.5', which is no point of the history at change 8 (that is '4.1')",
        ),
        ("", "names no history migration, where change 8 is '4.1'"),
    ],
    ids=["another-point", "no-point"],
)
def test_a_snapshot_of_no_point_of_the_history_is_refused(
    tmp_path: Path, sqlite_database: str, line: str, why: str
) -> None:
    catalog = flyway_history(tmp_path / "catalog")
    site = tmp_path / "site.toml"
    site.write_text(f'[site]\ndatabase = "{sqlite_database}"\ncatalog = "{catalog}"\n', "utf-8")
    assert stairway("init", "--version", "1.0.0", "--site", str(site))[0] == 0
    snapshot_of(site, "1.0.0")
    declare(catalog, "1.0.0")
    manifest = catalog / "snapshots" / "1.0.0" / "sqlite.toml"
    manifest.write_text(re.sub(r'history = ".*"', line, manifest.read_text("utf-8")), "utf-8")

    code, out, err = stairway("check", "--catalog", str(catalog))
    assert code == 2, out + err
    assert why in said(out + err)
    empty = tmp_path / "new.toml"
    new_db = tmp_path / "new.db"
    empty.write_text(f'[site]\ndatabase = "sqlite:///{new_db}"\ncatalog = "{catalog}"\n', "utf-8")
    code, out, err = stairway("init", "--version", "1.0.0", "--site", str(empty))
    assert code == 2, out + err
    assert "error:" in err and "hint:" in err and "Traceback" not in out + err
    if new_db.exists():  # loading the catalog refused it before anything was written
        with contextlib.closing(sqlite3.connect(new_db)) as conn:
            assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


@pytest.mark.parametrize("tool", [HistoryTool.GOLANG_MIGRATE, HistoryTool.DBMATE], ids=str)
def test_golang_migrate_and_dbmate_tables_are_stamped_as_the_tool_leaves_them(
    tmp_path: Path, make_site: MakeSite, tool: HistoryTool
) -> None:
    catalog = CATALOGS[tool](tmp_path / "catalog")
    source, _ = make_site("source", catalog)
    assert stairway("init", "--version", "1.0.0", "--site", str(source))[0] == 0
    snapshot_of(source, "1.0.0")
    assert "schema_migrations" not in carried(catalog, "1.0.0")
    declare(catalog, "1.0.0")
    built, built_url = make_site("built", catalog)
    code, out, err = stairway("init", "--version", "1.0.0", "--site", str(built))
    assert code == 0, out + err
    assert f"changes 1..{N} built from the snapshot of 1.0.0" in said(out)
    engine = engine_for(built_url)
    assert ledger_rows(engine, tool) == expected_rows(engine, tool, catalog, N)
