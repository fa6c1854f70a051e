"""An Alembic revision labelled expand is proven on the SQL Alembic renders for the site's own
database: on PostgreSQL an ``ALTER``, on SQLite the table rebuild of batch mode, which is not
expand. The same revision gets each site's verdict."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import orjson
import pytest
from sqlalchemy import create_engine, inspect

from cli_runner import stairway
from optuna_sites import sa_url, site
from stairway.catalog import load_catalog
from stairway.catalog.dialects import supported_dialects
from stairway.catalog.manifest import ENGINES, Manifest
from stairway.errors import CatalogError
from test_alembic_history import history, revision_file

CREATE_A = (
    'op.create_table("a", sa.Column("id", sa.Integer, primary_key=True), '
    'sa.Column("name", sa.String(50), nullable=False))'
)
# Expand on PostgreSQL (DROP NOT NULL); on SQLite batch mode copies, drops and renames the table.
LOOSEN = (
    'with op.batch_alter_table("a") as batch:\n'
    '        batch.alter_column("name", existing_type=sa.String(50), nullable=True)'
)
# The same, with the table given: Alembic renders the rebuild itself on SQLite.
LOOSEN_COPIED = (
    "table = sa.Table(\n"
    '        "a", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),\n'
    '        sa.Column("name", sa.String(50), nullable=False))\n'
    '    with op.batch_alter_table("a", copy_from=table) as batch:\n'
    '        batch.alter_column("name", existing_type=sa.String(50), nullable=True)'
)
# Alters nothing in place: an added nullable column renders alike on both.
ADD = (
    'with op.batch_alter_table("a") as batch:\n        batch.add_column(sa.Column("note", sa.Text))'
)
EXPAND = 'STAIRWAY_PHASE = "expand"'


def catalog_with(tmp_path: Path, body: str) -> Path:
    return history(
        tmp_path,
        {
            "r1": revision_file("r1", None, CREATE_A),
            "r2": revision_file("r2", "r1", body, head=EXPAND),
        },
        releases='[[release]]\nversion = "1.0.0"\nschema = "r1"\n\n'
        '[[release]]\nversion = "2.0.0"\nschema = "r2"\n',
    )


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (
            LOOSEN,
            "rebuild table a (a copy created and filled, the table dropped, the copy renamed",
        ),
        (LOOSEN_COPIED, "DROP TABLE a removes something the running release may still use"),
    ],
    ids=["batch", "copy-from"],
)
def test_a_loosening_is_expand_on_postgresql_and_a_rebuild_on_sqlite(
    tmp_path: Path, body: str, refused: str
) -> None:
    root = catalog_with(tmp_path, body)
    change = load_catalog(root, "postgresql").changes[1]
    assert [s.text for s in change.statements] == ["ALTER TABLE a ALTER COLUMN name DROP NOT NULL"]
    with pytest.raises(CatalogError) as raised:
        load_catalog(root, "sqlite")
    assert "labelled expand, but" in raised.value.message
    assert refused in raised.value.message
    assert str(raised.value.path).endswith("r2.py")


def test_what_alters_nothing_in_place_is_expand_on_both(tmp_path: Path) -> None:
    root = catalog_with(tmp_path, ADD)
    for dialect in ("postgresql", "sqlite"):
        change = load_catalog(root, dialect).changes[1]
        assert [s.text for s in change.statements] == ["ALTER TABLE a ADD COLUMN note TEXT"]
        assert change.dialect == dialect


def test_the_site_decides_the_verdict(tmp_path: Path, database_url: str) -> None:
    """Through the command line: the catalog is read for the site's database."""
    root = catalog_with(tmp_path, LOOSEN)
    site_file = site(tmp_path, database_url, root)
    code, out, err = stairway("init", "--site", str(site_file), "--version", "1.0.0")
    if database_url.startswith("sqlite"):
        assert code == 2, out + err
        assert "error: " in err and "rebuild table a" in err and "hint: " in err
        assert "Traceback" not in out + err
        engine = create_engine(sa_url(database_url))
        assert inspect(engine).get_table_names() == []  # nothing written
        engine.dispose()
        return
    assert code == 0, out + err
    code, out, err = stairway("migrate", "--site", str(site_file), "--to", "2.0.0")
    assert code == 0, out + err


# `stairway check` has no site: it judges the history for every database the product runs on.
SQLITE_REFUSAL = re.compile(
    r"/r2\.py: error: on sqlite: labelled expand, but [^\n]*rebuild table a"
)
POSTGRESQL_ONLY = '[[check]]\nname = "supported database"\ndatabase = { postgresql = ">=13" }\n\n'


def test_check_judges_every_dialect_and_names_the_one_that_refuses(tmp_path: Path) -> None:
    root = catalog_with(tmp_path, LOOSEN)
    code, out, err = stairway("check", "--catalog", str(root))
    assert code == 2, out + err
    said = " ".join(err.split())  # as one line, however the console wrapped it
    assert SQLITE_REFUSAL.search(said) and "fix: declare it offline" in said, err
    assert said.endswith(
        "1 error(s) in 1 file(s), 0 warning(s) (Alembic SQL judged for postgresql and sqlite)"
    )
    code, out, _ = stairway("check", "--catalog", str(root), "--json")
    said = orjson.loads(out)
    assert (code, said["ok"], said["dialects"]) == (2, False, ["postgresql", "sqlite"])
    [problem] = said["problems"]
    assert problem["file"].endswith("r2.py") and problem["dialects"] == ["sqlite"]
    assert "rebuild table a" in problem["cause"]
    code, out, err = stairway("check", "--catalog", str(root), "--dialect", "postgresql")
    assert code == 0, out + err
    assert "judged for postgresql)" in " ".join(out.split())


def test_check_judges_the_dialects_the_catalog_declares(tmp_path: Path) -> None:
    root = catalog_with(tmp_path, LOOSEN)
    manifest = root / "stairway.toml"
    manifest.write_text(POSTGRESQL_ONLY + manifest.read_text("utf-8"), "utf-8")
    code, out, err = stairway("check", "--catalog", str(root), "--json")
    assert (code, orjson.loads(out)["dialects"]) == (0, ["postgresql"]), err
    code, out, err = stairway("check", "--catalog", str(root), "--dialect", "sqlite", "--json")
    said = orjson.loads(out)
    assert (code, said["dialects"], said["problems"][0]["dialects"]) == (2, ["sqlite"], [])


def test_a_refusal_on_every_dialect_names_none(tmp_path: Path) -> None:
    root = catalog_with(tmp_path, 'op.get_bind().execute(sa.text("UPDATE a SET id = id"))')
    code, out, _ = stairway("check", "--catalog", str(root), "--json")
    [problem] = orjson.loads(out)["problems"]
    assert (code, problem["dialects"]) == (2, [])
    assert "labelled expand" in problem["cause"]


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ("", ("postgresql", "sqlite")),
        (POSTGRESQL_ONLY, ("postgresql",)),
        ('[[check]]\nname = "db"\ndatabase = { sqlite = "", postgresql = "" }\n\n', ENGINES),
        # a condition only for upgrades from below a release says nothing of new sites
        (
            '[[check]]\nname = "old"\ndatabase = { sqlite = "" }\nbefore = "1.0.0"\n\n',
            ENGINES,
        ),
        (
            POSTGRESQL_ONLY + '[[check]]\nname = "lite"\ndatabase = { sqlite = "" }\n\n',
            ENGINES,  # contradictory: nothing admitted, so every engine is judged
        ),
    ],
)
def test_the_dialects_a_catalog_supports(checks: str, expected: tuple[str, ...]) -> None:
    manifest = tomllib.loads(checks + '[product]\nname = "p"\n\n[[release]]\nversion = "1.0.0"\n')
    manifest["release"][0]["schema"] = 1
    assert supported_dialects(Manifest.model_validate(manifest)) == expected
