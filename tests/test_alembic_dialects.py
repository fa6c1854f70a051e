"""An Alembic revision labelled expand is proven on the SQL Alembic renders for the site's own
database: on PostgreSQL an ``ALTER``, on SQLite the table rebuild of batch mode, which is not
expand. The same revision gets each site's verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from cli_runner import stairway
from optuna_sites import sa_url, site
from stairway.catalog import load_catalog
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
