"""An expand label judged on the schema the catalog's earlier changes left: a widening or a
NOT NULL the column already has passes, the same statement on another column is refused, and
after a change whose SQL cannot be known nothing is assumed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stairway.catalog import load_catalog
from stairway.errors import CatalogError

FIRST = """-- phase: offline
CREATE TABLE tags (
    id integer PRIMARY KEY,
    name varchar(250) NOT NULL,
    value varchar(250),
    hits integer
);
"""


def catalog(root: Path, second: str, *, python_between: bool = False) -> Path:
    schema = root / "schema"
    schema.mkdir(parents=True)
    (schema / "0001_tags.sql").write_text(FIRST, encoding="utf-8")
    number = 2
    if python_between:
        (schema / "0002_touch.py").write_text(
            '"""Anything at all."""\n\nPHASE = "offline"\n\n\ndef upgrade(conn):\n    pass\n',
            encoding="utf-8",
        )
        number = 3
    (schema / f"{number:04d}_alter.sql").write_text(f"-- phase: expand\n{second}\n", "utf-8")
    (root / "stairway.toml").write_text(
        f'[product]\nname = "tags"\n\n[[release]]\nversion = "1.0.0"\nschema = {number}\n',
        encoding="utf-8",
    )
    return root


@pytest.mark.parametrize(
    "second",
    [
        "ALTER TABLE tags ALTER COLUMN value TYPE varchar(5000);",
        "ALTER TABLE tags ALTER COLUMN value TYPE text;",
        "ALTER TABLE tags ALTER COLUMN name SET NOT NULL;",
        "ALTER TABLE tags ALTER COLUMN id SET NOT NULL;",
        "ALTER TABLE tags ALTER COLUMN hits TYPE integer;",
    ],
)
def test_a_widening_or_a_no_op_on_what_earlier_changes_made_is_expand(
    tmp_path: Path, second: str
) -> None:
    loaded = load_catalog(catalog(tmp_path, second))
    assert [c.phase.value for c in loaded.changes] == ["offline", "expand"]


@pytest.mark.parametrize(
    ("second", "rule"),
    [
        ("ALTER TABLE tags ALTER COLUMN value TYPE varchar(10);", "type"),
        ("ALTER TABLE tags ALTER COLUMN hits TYPE bigint;", "type"),
        ("ALTER TABLE tags ALTER COLUMN value TYPE text USING value || '';", "type"),
        ("ALTER TABLE tags ALTER COLUMN value SET NOT NULL;", "NOT NULL"),
        ("ALTER TABLE others ALTER COLUMN value TYPE text;", "type"),
    ],
)
def test_the_same_statements_that_do_change_something_are_refused(
    tmp_path: Path, second: str, rule: str
) -> None:
    with pytest.raises(CatalogError, match=rule):
        load_catalog(catalog(tmp_path, second))


def test_after_a_python_change_nothing_is_assumed(tmp_path: Path) -> None:
    widening = "ALTER TABLE tags ALTER COLUMN value TYPE text;"
    load_catalog(catalog(tmp_path / "plain", widening))  # the widening alone passes
    with pytest.raises(CatalogError, match="type"):
        load_catalog(catalog(tmp_path / "python", widening, python_between=True))
