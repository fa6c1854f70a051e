"""Schema snapshots carry the rows their changes insert: a site built from one holds the seed
rows and sequence values replaying would leave, never the source site's own rows, and a rows
file that lies is refused before anything is written."""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from cli_runner import stairway
from optuna_sites import schema_dump
from snapshot_sites import declare as declare_snapshot
from snapshot_sites import site_maker

SEEDED = Path(__file__).parent / "catalogs" / "seeded"
MakeSite = Callable[[str], tuple[Path, str]]


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(SEEDED, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture(params=["sqlite", "postgresql"])
def make_site(request: pytest.FixtureRequest, tmp_path: Path, catalog: Path) -> Iterator[MakeSite]:
    """``make_site(name)``: a site.toml on a new database of the parametrised engine."""
    with ExitStack() as stack:
        make = site_maker(request.param, tmp_path, stack)
        yield lambda name: make(name, catalog)


def declare(catalog: Path) -> None:
    declare_snapshot(catalog, "1.0.0")


def rows_of(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every product table's rows, sorted."""
    engine = create_engine(url)
    try:
        tables = [t for t in inspect(engine).get_table_names() if not t.startswith("stairway_")]
        with engine.connect() as conn:
            return {
                t: sorted(tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}")))
                for t in tables
            }
    finally:
        engine.dispose()


def add_role(url: str, name: str) -> int:
    """Insert a role the way the product would, letting the database pick its id."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO roles (name) VALUES (:name)"), {"name": name})
            return int(
                conn.execute(
                    text("SELECT id FROM roles WHERE name = :name"), {"name": name}
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_site_built_from_a_snapshot_holds_the_rows_replaying_leaves(
    catalog: Path, make_site: MakeSite, tmp_path: Path
) -> None:
    source, source_url = make_site("source")
    assert stairway("init", "--version", "1.0.0", "--replay", "--site", str(source))[0] == 0
    add_role(source_url, "the source site's own")  # user data: no snapshot may carry it
    code, out, err = stairway("snapshot", "--release", "1.0.0", "--site", str(source))
    assert code == 0, err
    assert "rows the changes insert" in out
    again = tmp_path / "again"
    assert (
        stairway("snapshot", "--release", "1.0.0", "--out", str(again), "--site", str(source))[0]
        == 0
    )
    written = catalog / "snapshots" / "1.0.0"
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in written.iterdir())
    for path in again.iterdir():  # deterministic, byte for byte
        assert path.read_bytes() == (written / path.name).read_bytes()
    declare(catalog)

    built, built_url = make_site("built")
    code, out, err = stairway("init", "--version", "1.1.0", "--site", str(built))
    assert code == 0, err
    assert "changes 1..3 built from the snapshot of 1.0.0" in " ".join(out.split())
    replayed, replayed_url = make_site("replayed")
    assert stairway("init", "--version", "1.1.0", "--replay", "--site", str(replayed))[0] == 0
    assert schema_dump(built_url) == schema_dump(replayed_url)
    assert rows_of(built_url) == rows_of(replayed_url)
    roles = dict((name, id_) for id_, name in rows_of(built_url)["roles"])
    assert roles == {"admin": 1, "viewer": 2, "auditor": 4}  # 3 went to the dropped role
    assert add_role(built_url, "next") == add_role(replayed_url, "next") == 5


def _sqlite_snapshot(catalog: Path, tmp_path: Path) -> Path:
    site = tmp_path / "s.toml"
    site.write_text(
        f'[site]\ndatabase = "sqlite:///{tmp_path / "s.db"}"\ncatalog = "{catalog}"\n',
        encoding="utf-8",
    )
    assert stairway("init", "--version", "1.0.0", "--replay", "--site", str(site))[0] == 0
    assert stairway("snapshot", "--release", "1.0.0", "--site", str(site))[0] == 0
    declare(catalog)
    return catalog / "snapshots" / "1.0.0"


def _refused_init(catalog: Path, tmp_path: Path) -> str:
    """Init a new SQLite site from the snapshot: refused, exit 2, nothing written; stderr."""
    site = tmp_path / "new.toml"
    db = tmp_path / "new.db"
    site.write_text(
        f'[site]\ndatabase = "sqlite:///{db}"\ncatalog = "{catalog}"\n', encoding="utf-8"
    )
    code, _, err = stairway("init", "--version", "1.0.0", "--site", str(site))
    assert code == 2, err
    assert "error:" in err and "hint:" in err and "Traceback" not in err
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    return err


def _set_digest(manifest: Path, key: str, data: bytes) -> None:
    said = manifest.read_text(encoding="utf-8")
    said = re.sub(rf'(?m)^{key} = ".*"$', f'{key} = "{hashlib.sha256(data).hexdigest()}"', said)
    manifest.write_text(said, encoding="utf-8")


def test_a_rows_file_edited_by_hand_is_refused(catalog: Path, tmp_path: Path) -> None:
    snapshot = _sqlite_snapshot(catalog, tmp_path)
    rows = snapshot / "sqlite.rows.sql"
    rows.write_text(rows.read_text(encoding="utf-8").replace("'admin'", "'root'"), encoding="utf-8")
    err = _refused_init(catalog, tmp_path)
    assert "sqlite.rows.sql does not match its manifest" in " ".join(err.split())
    code, out, _ = stairway("check", "--catalog", str(catalog), "--json")
    assert code == 2 and "sqlite.rows.sql" in out


def test_rows_for_a_table_the_ddl_lacks_are_refused(catalog: Path, tmp_path: Path) -> None:
    snapshot = _sqlite_snapshot(catalog, tmp_path)
    rows = snapshot / "sqlite.rows.sql"
    edited = rows.read_bytes() + b'INSERT INTO "ghosts" ("id") VALUES (1);\n'
    rows.write_bytes(edited)
    _set_digest(snapshot / "sqlite.toml", "rows_sha256", edited)  # a careful forger
    err = " ".join(_refused_init(catalog, tmp_path).split())
    assert "table ghosts, which the snapshot's DDL does not create" in err
    assert "sqlite.rows.sql:" in err


def test_a_rows_file_holding_other_sql_is_refused(catalog: Path, tmp_path: Path) -> None:
    snapshot = _sqlite_snapshot(catalog, tmp_path)
    rows = snapshot / "sqlite.rows.sql"
    edited = rows.read_bytes() + b"DROP TABLE settings;\n"
    rows.write_bytes(edited)
    _set_digest(snapshot / "sqlite.toml", "rows_sha256", edited)
    assert "is not a row (DROP TABLE settings)" in " ".join(
        _refused_init(catalog, tmp_path).split()
    )


def test_a_rows_file_its_manifest_does_not_name_is_refused(catalog: Path, tmp_path: Path) -> None:
    snapshot = _sqlite_snapshot(catalog, tmp_path)
    manifest = snapshot / "sqlite.toml"
    said = manifest.read_text(encoding="utf-8")
    manifest.write_text(re.sub(r"(?m)^rows_sha256 = .*\n", "", said), encoding="utf-8")
    err = " ".join(_refused_init(catalog, tmp_path).split())
    assert "sqlite.rows.sql lies beside a manifest that names no rows" in err


def test_a_snapshot_without_rows_replaces_an_earlier_rows_file(
    catalog: Path, tmp_path: Path
) -> None:
    """Snapshots of changes inserting nothing have no rows file, as before rows were carried."""
    snapshot = _sqlite_snapshot(catalog, tmp_path)
    roles = catalog / "schema" / "0001_roles.py"
    roles.write_text(
        roles.read_text(encoding="utf-8").replace('("admin", "viewer", "legacy")', "()"),
        encoding="utf-8",
    )
    for change in ("0002_settings.sql", "0003_grants.sql"):
        path = catalog / "schema" / change
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(x for x in lines if "INSERT" not in x), encoding="utf-8")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    code, _, err = _snapshot_again(catalog, fresh)
    assert code == 0, err
    assert not (snapshot / "sqlite.rows.sql").exists()
    assert "rows_sha256" not in (snapshot / "sqlite.toml").read_text(encoding="utf-8")


def _snapshot_again(catalog: Path, where: Path) -> tuple[int, str, str]:
    site = where / "s.toml"
    site.write_text(
        f'[site]\ndatabase = "sqlite:///{where / "s.db"}"\ncatalog = "{catalog}"\n',
        encoding="utf-8",
    )
    assert stairway("init", "--version", "1.0.0", "--replay", "--site", str(site))[0] == 0
    return stairway("snapshot", "--release", "1.0.0", "--site", str(site))
