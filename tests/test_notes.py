"""``stairway notes``: Markdown release notes from the catalog's own descriptions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli_runner import stairway
from stairway import context, operations
from stairway.catalog import load_catalog
from stairway.notes import release_notes
from stairway.versions import Version

CATALOGS = Path(__file__).parent / "catalogs"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(CATALOGS / "people", target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CATALOGS / "people_deltas" / "deltas", target / "deltas")
    return target


def sections(markdown: str) -> dict[str, str]:
    """Each ``## `` section's body by its heading."""
    found: dict[str, str] = {}
    for part in markdown.split("\n## ")[1:]:
        heading, _, body = part.partition("\n")
        found[heading] = body
    return found


def test_notes_gather_every_description_by_release_with_manual_items_first(catalog: Path) -> None:
    notes = release_notes(load_catalog(catalog), Version("1.0.0"), Version("3.0.0"))
    assert notes.startswith(
        "# people 1.0.0 → 3.0.0\n\nUpgrade path: 1.0.0 → 2.0.0 → 3.0.0 (required stop: 2.0.0).\n"
    )
    parts = sections(notes)
    assert list(parts) == ["Before you upgrade", "2.0.0", "3.0.0 (needs 2.0.0 first)"]
    before = parts["Before you upgrade"]
    assert "polling scripts are gone" in before and "built-in OTP is gone" in before
    assert "scripted hooks are gone" in before and "Review Profile must be 'ALTERNATIVE'" in before
    assert "fullName was renamed" not in before, "automatic migrations need no hand"
    second = parts["2.0.0"]
    assert "### Schema" not in second, "2.0.0 ships no schema change"
    assert "- User: fullName was renamed to displayName [automatic, critical]." in second
    assert "- Passwords need 12 characters and expire after 90 days." in second
    assert "rename server.port to server.listen_port" in second
    third = parts["3.0.0 (needs 2.0.0 first)"]
    assert "- `0002_user_locale` (expand): Users may carry a preferred locale" in third
    assert "The Legacy sync role is obsolete" in third and "(`role-mfa-admin`, add)" in third
    assert "SmallRye extensions were removed from WildFly" in third
    assert "Adds the Administrator role" not in notes, "1.0.0 itself is not upgraded to"


def test_notes_of_one_hop_hold_only_that_release(catalog: Path) -> None:
    notes = release_notes(load_catalog(catalog), Version("2.0.0"), Version("3.0.0"))
    assert list(sections(notes)) == ["Before you upgrade", "3.0.0 (needs 2.0.0 first)"]
    assert "Upgrade path: 2.0.0 → 3.0.0." in notes


def test_notes_of_the_example_product_use_the_change_descriptions() -> None:
    root = Path(operations.__file__).parent.parent / "examples" / "identity_sync" / "upgrades"
    catalog = load_catalog(root)
    notes = release_notes(catalog, catalog.releases[0].version, catalog.latest.version)
    for change in catalog.changes_between(catalog.releases[0].schema, catalog.latest.schema):
        assert f"`{change.label}` ({change.phase})" in notes
        assert change.description in notes


def test_cli_writes_the_notes_to_a_file_and_defaults_from_the_site(
    catalog: Path, tmp_path: Path, sqlite_database: str
) -> None:
    out = tmp_path / "NOTES.md"
    code, said, err = stairway(
        "notes", "--from", "1.0.0", "--to", "3.0.0", "--catalog", str(catalog), "-o", str(out)
    )
    assert code == 0, err
    assert out.read_text("utf-8") == release_notes(
        load_catalog(catalog), Version("1.0.0"), Version("3.0.0")
    )
    site = tmp_path / "site.toml"
    site.write_text(f'[site]\ndatabase = "{sqlite_database}"\ncatalog = "{catalog}"\n', "utf-8")
    operations.init(context.open_context(site, None), "2.0.0")
    code, said, err = stairway("notes", "--site", str(site))
    assert code == 0, err
    assert said.startswith("# people 2.0.0 → 3.0.0\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "9.0.0"), "no release 9.0.0"),
        (("--from", "3.0.0", "--to", "1.0.0"), "downgrades are refused"),
        (("--from", "x.y"), "x.y"),
    ],
)
def test_bad_versions_are_refused(catalog: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = stairway("notes", *args, "--catalog", str(catalog))
    assert code == 2 and message in err
