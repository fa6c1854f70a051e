"""Bad object migrations are refused when the catalog loads, each with its file, line and fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stairway.catalog import load_catalog
from stairway.errors import CatalogError

PEOPLE = Path(__file__).parent / "catalogs" / "people"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    target = tmp_path / "people"
    shutil.copytree(PEOPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def with_migrations(catalog: Path, body: str) -> None:
    (catalog / "objects.toml").write_text(body, encoding="utf-8")


ONE = '[[migration]]\ntype = "User"\nsince = "2.0.0"\n'

BAD = [
    (
        ONE + 'op = "rename"\npath = "a"\nto = "b"\ncolour = "red"\n',
        "unknown key 'migration[1].colour'",
        7,
    ),
    (ONE + 'op = "rename"\npath = "a"\n', "`to` is required for rename", 1),
    (ONE + 'op = "remove"\npath = "a"\nto = "b"\n', "`to` is not allowed for remove", 1),
    (ONE + 'op = "rename"\npath = "a"\nto = "x.y"\n', "use op = 'move'", 1),
    (ONE + 'op = "move"\npath = "a"\nto = "a.b"\n', "`to` must lie outside `path`", 1),
    (ONE + 'op = "transform"\npath = "a"\n', "`handler` is required for transform", 1),
    (ONE + 'op = "remove"\npath = "a"\ntransition = "maybe"\n', "migration[1].transition", 6),
    (ONE + 'op = "remove"\npath = "a..b"\n', "migration[1].path", 5),
]


@pytest.mark.parametrize(("body", "message", "line"), BAD)
def test_a_malformed_migration_names_its_key_and_line(
    catalog: Path, body: str, message: str, line: int
) -> None:
    with_migrations(catalog, body)
    with pytest.raises(CatalogError, match=r"objects\.toml") as refused:
        load_catalog(catalog)
    assert message in str(refused.value)
    assert refused.value.line == line
    assert refused.value.hint


def test_since_must_name_a_release(catalog: Path) -> None:
    with_migrations(catalog, ONE.replace("2.0.0", "2.5.0") + 'op = "remove"\npath = "a"\n')
    with pytest.raises(CatalogError, match=r"is since 2.5.0, which is no release"):
        load_catalog(catalog)


def test_a_handler_that_does_not_exist_is_refused(catalog: Path) -> None:
    with_migrations(catalog, ONE + 'op = "transform"\npath = "a"\nhandler = "handlers:nope"\n')
    with pytest.raises(CatalogError, match="handlers has no function nope"):
        load_catalog(catalog)
    with_migrations(catalog, ONE + 'op = "transform"\npath = "a"\nhandler = "no_such_mod:f"\n')
    with pytest.raises(CatalogError, match="cannot import no_such_mod"):
        load_catalog(catalog)


def test_a_path_reused_after_an_earlier_migration_took_it_is_refused(catalog: Path) -> None:
    first = ONE + 'op = "remove"\npath = "a"\n\n'
    second = ONE.replace("2.0.0", "3.0.0") + 'op = "move"\npath = "c"\nto = "a.x"\n'
    with_migrations(catalog, first + second)
    with pytest.raises(CatalogError, match=r"User#2 writes a.x, which User#1 takes away"):
        load_catalog(catalog)


def test_migrations_need_an_objects_table(catalog: Path) -> None:
    manifest = catalog / "stairway.toml"
    text = manifest.read_text()
    start = text.index("[objects]")
    end = text.index("[[release]]")
    manifest.write_text(text[:start] + text[end:])
    with pytest.raises(CatalogError, match=r"no \[objects\] table"):
        load_catalog(catalog)


def test_migrations_in_a_folder_load_in_file_order(catalog: Path) -> None:
    (catalog / "objects.toml").unlink()
    folder = catalog / "objects"
    folder.mkdir()
    (folder / "10-users.toml").write_text(ONE + 'op = "remove"\npath = "a"\n')
    (folder / "20-roles.toml").write_text(
        ONE.replace("User", "Role") + 'op = "remove"\npath = "b"\n'
    )
    found = load_catalog(catalog).object_migrations
    assert [(m.number, m.type) for m in found] == [(1, "User"), (2, "Role")]
    assert found[1].source.endswith("20-roles.toml")
