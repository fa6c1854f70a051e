"""A catalog written in each non-default version grammar, end to end through the command line:
plan a path (latest maintenance first), create and upgrade a SQLite site, refuse bad versions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_runner import stairway

SHOP_SCHEMA = Path(__file__).parent / "catalogs" / "shop" / "schema"

# each grammar: its releases oldest first (version, schema level), the first and the last, and
# the path planned between them: through the first series' latest maintenance release
CASES = {
    "semver": (
        [
            ("1.0.0", 2),
            ("1.0.1-rc.1", 2),
            ("1.0.1", 3),
            ("1.1.0-beta.2", 3),
            ("1.1.0-beta.11", 4),
            ("2.0.0+build.7", 6),
        ],
        ["1.0.1", "1.1.0-beta.11", "2.0.0+build.7"],
    ),
    "maven": (
        [
            ("4.3", 2),
            ("4.3.1-SNAPSHOT", 2),
            ("4.3.1", 3),
            ("4.4-SNAPSHOT", 4),
            ("4.4", 5),
            ("4.5-rc-1", 6),
        ],
        ["4.3.1", "4.4", "4.5-rc-1"],
    ),
    "calver": (
        [("2024.09", 2), ("2024.09.3", 3), ("2024.10", 4), ("2024.10.1", 5), ("2025.01", 6)],
        ["2024.09.3", "2024.10.1", "2025.01"],
    ),
}
BAD = {"semver": "8.2", "maven": "4.4-", "calver": "2024.13"}


def write_catalog(root: Path, grammar: str, releases: list[tuple[str, int]]) -> Path:
    shutil.copytree(SHOP_SCHEMA, root / "schema")
    listed = "".join(f'\n[[release]]\nversion = "{v}"\nschema = {n}\n' for v, n in releases)
    text = f'[product]\nname = "shop"\nversions = "{grammar}"\n{listed}'
    (root / "stairway.toml").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(params=sorted(CASES))
def grammar_site(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    grammar = str(request.param)
    catalog = write_catalog(tmp_path / "catalog", grammar, CASES[grammar][0])
    site = tmp_path / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "sqlite:///{tmp_path / "site.db"}"\ncatalog = "{catalog}"\n'
        f'backup_dir = "{tmp_path / "backups"}"\n',
        encoding="utf-8",
    )
    return grammar, site


def test_plan_init_and_upgrade_in_the_products_spelling(grammar_site: tuple[str, Path]) -> None:
    grammar, site = grammar_site
    releases, path = CASES[grammar]
    first = releases[0][0]
    code, _, err = stairway("init", "--version", first, "--site", str(site))
    assert code == 0, err
    code, out, err = stairway("plan", "--to", path[-1], "--site", str(site), "--json")
    assert code == 0, err
    assert [s["to"] for s in json.loads(out)["steps"]] == path
    code, out, err = stairway("plan", "--to", path[-1], "--site", str(site))
    assert code == 0 and all(v in out for v in path), err
    code, _, err = stairway("upgrade", "--to", path[0], "--site", str(site))
    assert code == 0, err
    code, out, err = stairway("status", "--site", str(site), "--json")
    assert code == 0 and json.loads(out)["release"] == path[0], (out, err)


def test_a_bad_version_on_the_command_line_names_the_grammar(
    grammar_site: tuple[str, Path],
) -> None:
    grammar, site = grammar_site
    code, out, err = stairway("init", "--version", BAD[grammar], "--site", str(site))
    assert code == 2, out + err
    assert f"{grammar} grammar" in err and "e.g." in err
    assert "hint:" in err and "Traceback" not in err
    assert not (site.parent / "site.db").exists() or (site.parent / "site.db").stat().st_size == 0


@pytest.mark.parametrize("grammar", sorted(BAD))
def test_a_bad_version_in_the_catalog_names_the_grammar(tmp_path: Path, grammar: str) -> None:
    releases = [*CASES[grammar][0][:2], (BAD[grammar], 6)]
    catalog = write_catalog(tmp_path / "catalog", grammar, releases)
    code, out, err = stairway("check", "--catalog", str(catalog))
    assert code == 2, out + err
    assert f"'{BAD[grammar]}' is not a version of the {grammar} grammar" in err
    assert "error:" in err and "fix: write" in err and "e.g." in err and "Traceback" not in err


def test_an_unknown_grammar_is_refused(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog", "roman", [("1.0.0", 6)])
    code, out, err = stairway("check", "--catalog", str(catalog))
    assert code == 2 and "product.versions" in err and "fix:" in err, out + err


def test_delta_directories_are_named_in_the_catalogs_grammar(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog", "maven", CASES["maven"][0])
    (catalog / "deltas" / "4.4-SNAPSHOT").mkdir(parents=True)
    code, out, err = stairway("check", "--catalog", str(catalog))
    assert code == 0, out + err
    (catalog / "deltas" / "4..4").mkdir()
    code, out, err = stairway("check", "--catalog", str(catalog))
    assert code == 2 and "'4..4' is not a release version" in err, out + err
    assert "maven versions, e.g." in err
