"""Patch changes of an LTS line (``0003.1_name``): applied exactly once on every path, on SQLite
and PostgreSQL, and refused where a release does not carry them.

The product: 1.0.0 (LTS) needs changes 1..3; 1.1.0 shipped changes 4 and 5; then 1.0.5 needed a
schema fix, shipped as patch 3.1, and 1.1.1 carries the same file. Each release ships its own
catalog, as a vendor would: the LTS line's catalog has no changes 4 and 5, and 1.1.0's catalog,
published before the fix, has no 3.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from stairway.catalog import load_catalog
from stairway.catalog.check import check_catalog
from stairway.database import engine_for
from stairway.errors import CatalogError, GuardRefused
from stairway.notes import release_notes
from stairway.plan import make_plan
from stairway.schema import migrator, recorder
from stairway.startup import guard
from stairway.versions import Version
from tests.cli_runner import stairway

CHANGES = {
    "0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);\n",
    "0002_teams.sql": "CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT);\n",
    "0003_user_team.sql": "ALTER TABLE users ADD COLUMN team_id INTEGER;\n",
    "0004_audit.sql": "CREATE TABLE audit (id INTEGER PRIMARY KEY);\n",
    "0005_audit_note.sql": "ALTER TABLE audit ADD COLUMN note TEXT;\n",
}
# Not idempotent on purpose: running it a second time fails (the index exists).
PATCH = {
    "0003.1_fix_email_index.sql": "-- phase: offline\nCREATE INDEX users_email ON users (email);\n"
}

LTS = [("1.0.0", 3, [], True), ("1.0.4", 3, [], False)]
PATCHED_LTS = [*LTS, ("1.0.5", 3, ["3.1"], False)]
CATALOGS = {
    # the catalog each release ships: releases (version, schema, patches, lts) and change files
    "1.0.4": (LTS, ["0001", "0002", "0003"]),
    "1.0.5": (PATCHED_LTS, ["0001", "0002", "0003", "0003.1"]),
    "1.1.0": ([*LTS, ("1.1.0", 5, [], False)], ["0001", "0002", "0003", "0004", "0005"]),
    "1.1.1": (
        [*PATCHED_LTS, ("1.1.0", 5, [], False), ("1.1.1", 5, ["3.1"], False)],
        ["0001", "0002", "0003", "0003.1", "0004", "0005"],
    ),
}


def write_catalog(root: Path, release: str) -> Path:
    releases, numbers = CATALOGS[release]
    (root / "schema").mkdir(parents=True)
    lines = ['[product]\nname = "teams"\n']
    for version, schema, patches, lts in releases:
        lines.append(f'[[release]]\nversion = "{version}"\nschema = {schema}\n')
        lines.append(f"patches = {json.dumps(patches)}\n" if patches else "")
        lines.append("lts = true\n" if lts else "")
    (root / "stairway.toml").write_text("\n".join(lines), encoding="utf-8")
    for name, sql in (CHANGES | PATCH).items():
        if name.split("_", 1)[0] in numbers:
            (root / "schema" / name).write_text(sql, encoding="utf-8")
    return root


@pytest.fixture
def catalogs(tmp_path: Path) -> dict[str, Path]:
    return {v: write_catalog(tmp_path / f"catalog-{v}", v) for v in CATALOGS}


class Site:
    """One site: a database, and the catalog of the release being installed in site.toml."""

    def __init__(self, tmp_path: Path, url: str, catalogs: dict[str, Path]) -> None:
        self.url, self.catalogs, self.file = url, catalogs, tmp_path / "site.toml"

    def run(self, catalog: str, *args: str) -> tuple[int, str, str]:
        self.file.write_text(
            f'[site]\ndatabase = "{self.url}"\ncatalog = "{self.catalogs[catalog]}"\n',
            encoding="utf-8",
        )
        return stairway(*args, "--site", str(self.file))

    def ok(self, catalog: str, *args: str) -> str:
        code, out, err = self.run(catalog, *args)
        assert code == 0, err
        return out

    def status(self, catalog: str) -> dict[str, object]:
        found: dict[str, object] = json.loads(self.ok(catalog, "status", "--json"))
        return found

    def applied(self) -> list[tuple[int, int]]:
        catalog = load_catalog(self.catalogs["1.1.1"])
        return [a.key for a in migrator.read_state(engine_for(self.url), catalog).applied]


@pytest.fixture
def site(tmp_path: Path, database_url: str, catalogs: dict[str, Path]) -> Site:
    return Site(tmp_path, database_url, catalogs)


ALL = [(1, 0), (2, 0), (3, 0), (3, 1), (4, 0), (5, 0)]


def assert_clean(site: Site, release: str) -> None:
    """Status with the release's own catalog: nothing pending, unknown or drifted; guard agrees."""
    status = site.status(release)
    assert status["release"] == release
    assert (status["pending"], status["unknown"], status["drifted"]) == ([], [], [])
    result = guard(site.url, site.catalogs[release], release)
    assert result.level == CATALOGS[release][0][-1][1]
    indexes = {i["name"] for i in inspect(engine_for(site.url)).get_indexes("users")}
    assert ("users_email" in indexes) == (release in ("1.0.5", "1.1.1"))


def test_lts_site_takes_the_patch_then_the_next_minor(site: Site) -> None:
    site.ok("1.0.4", "init", "--version", "1.0.4")
    site.ok("1.0.5", "migrate", "--to", "1.0.5")
    assert site.applied() == ALL[:4]
    assert_clean(site, "1.0.5")
    out = site.ok("1.1.1", "plan", "--to", "1.1.1", "--json")
    assert [c["number"] for c in json.loads(out)["steps"][0]["changes"]] == [4, 5]
    site.ok("1.1.1", "migrate", "--to", "1.1.1")
    assert site.applied() == ALL
    assert_clean(site, "1.1.1")


def test_minor_site_gets_the_patch_out_of_order(site: Site) -> None:
    site.ok("1.1.0", "init", "--version", "1.1.0")
    assert site.applied() == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]
    with pytest.raises(GuardRefused, match=r"patch change 3\.1"):
        guard(site.url, site.catalogs["1.1.1"], "1.1.1")
    out = site.ok("1.1.1", "plan", "--to", "1.1.1", "--json")
    assert json.loads(out)["steps"][0]["changes"][0]["patch"] == "3.1"
    site.ok("1.1.1", "migrate", "--to", "1.1.1")
    assert site.applied() == ALL
    state = migrator.read_state(engine_for(site.url), load_catalog(site.catalogs["1.1.1"]))
    assert state.level == 5 and state.patches[0].release == "1.0.5"
    assert_clean(site, "1.1.1")


def test_from_before_the_patch_straight_to_the_patched_minor(site: Site) -> None:
    site.ok("1.0.4", "init", "--version", "1.0.4")
    catalog = load_catalog(site.catalogs["1.1.1"])
    plan = make_plan(catalog, Version("1.0.4"), 3, Version("1.1.1"))
    assert [[c.code for c in s.changes] for s in plan.steps] == [["3.1"], ["4", "5"]]
    out = site.ok("1.1.1", "plan", "--to", "1.1.1", "--json")
    assert [s["to"] for s in json.loads(out)["steps"]] == ["1.0.5", "1.1.1"]
    code, _, err = site.run("1.1.1", "migrate", "--to", "1.1.1")
    assert code == 2 and "skips required stops" in err  # the path's steps, one by one:
    site.ok("1.1.1", "migrate", "--to", "1.0.5")
    assert site.applied() == ALL[:4]
    site.ok("1.1.1", "migrate", "--to", "1.1.1")
    assert site.applied() == ALL
    assert_clean(site, "1.1.1")


@pytest.mark.parametrize(
    ("start", "before"), [("1.0.4", ALL[:3]), ("1.0.5", ALL[:4]), ("1.1.0", [*ALL[:3], *ALL[4:]])]
)
def test_the_whole_upgrade_applies_the_patch_once_and_its_rollback_takes_it_back(
    site: Site, tmp_path: Path, start: str, before: list[tuple[int, int]]
) -> None:
    """``stairway upgrade`` (journal, backup, steps through 1.0.5 where the path needs it),
    not only ``migrate``: the patch once on every path, and a rollback back to where it was."""
    (tmp_path / "backups").mkdir()
    site.file.parent.joinpath("data").mkdir()
    extra = 'backup_dir = "backups"\ndata_dir = "data"\n'

    def run(catalog: str, *args: str) -> tuple[int, str, str]:
        site.file.write_text(
            f'[site]\ndatabase = "{site.url}"\ncatalog = "{site.catalogs[catalog]}"\n{extra}',
            encoding="utf-8",
        )
        return stairway(*args, "--site", str(site.file))

    assert run(start, "init", "--version", start)[0] == 0
    assert site.applied() == before
    code, _, err = run("1.1.1", "upgrade", "--to", "1.1.1")
    assert code == 0, err
    assert site.applied() == ALL
    assert_clean(site, "1.1.1")
    code, _, err = run("1.1.1", "rollback", "--yes")
    assert code == 0, err
    assert site.applied() == before


def test_the_migrator_applies_each_change_once_in_order(
    database_url: str, catalogs: dict[str, Path]
) -> None:
    catalog = load_catalog(catalogs["1.1.1"])
    engine = engine_for(database_url)
    migrator.migrate(engine, catalog, 3)
    done = migrator.migrate(engine, catalog, 5, release=catalog.release("1.1.1"))
    assert [a.change.code for a in done] == ["3.1", "4", "5"]
    assert migrator.migrate(engine, catalog, 5, release=catalog.release("1.1.1")) == []


@pytest.mark.parametrize("release", ["1.1.1", "1.0.5"])
def test_fresh_install_has_the_patch_once(site: Site, release: str) -> None:
    site.ok(release, "init", "--version", release)
    assert site.applied() == (ALL if release == "1.1.1" else ALL[:4])
    assert_clean(site, release)


def test_installed_at_the_patch_then_upgraded(site: Site) -> None:
    site.ok("1.0.5", "init", "--version", "1.0.5")
    site.ok("1.1.1", "migrate", "--to", "1.1.1")
    assert site.applied() == ALL
    assert_clean(site, "1.1.1")


def test_release_published_before_the_patch_is_refused(site: Site) -> None:
    site.ok("1.0.5", "init", "--version", "1.0.5")
    code, _, err = site.run("1.1.1", "migrate", "--to", "1.1.0")
    assert code == 2 and "1.1.1, which carries it" in err and "Traceback" not in err
    code, _, err = site.run("1.1.1", "plan", "--to", "1.1.0")
    assert code == 2 and "1.1.1, which carries it" in err
    code, _, err = site.run("1.1.0", "migrate", "--to", "1.1.0")
    assert code == 2 and "0003.1_fix_email_index" in err and "applied by release 1.0.5" in err
    assert site.applied() == ALL[:4]
    assert_clean(site, "1.0.5")


def test_guard_refuses_a_release_older_than_a_contract_patch(tmp_path: Path) -> None:
    root = write_catalog(tmp_path / "c", "1.1.1")
    patch = root / "schema" / "0003.1_fix_email_index.sql"
    patch.write_text("-- phase: contract\nDROP INDEX IF EXISTS nothing_here;\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    catalog = load_catalog(root)
    migrator.migrate(engine_for(url), catalog, 5, release=catalog.release("1.1.1"))
    assert guard(url, root, "1.1.1").level == 5
    with pytest.raises(GuardRefused, match=r"contract change 3\.1, which release 1\.1\.0"):
        guard(url, root, "1.1.0")


@pytest.mark.parametrize(
    ("name", "toml", "cause"),
    [
        ("0003.x_fix.sql", "", "must be named NNNN_name.sql"),
        ("0003.0_fix.sql", "", "patch number 0003.0 is not a patch"),
        ("0003.1.2_fix.sql", "", "must be named NNNN_name.sql"),
        ("0009.1_fix.sql", '"9.1"', "follows change 9, which is not shipped"),
        ("0003.2_fix.sql", '"3.2"', "3.1 is missing"),
        ("0003.1_fix.sql", "", "no release carries it"),
        ("0003.1_fix.sql", '"3.1", "3.1"', "listed twice"),
        ("0003.1_fix.sql", '"3.x"', "is not a patch number"),
        ("0003.1_fix.sql", '"4.1"', "no change file 0004.1_name"),
    ],
)
def test_check_refuses_malformed_patch_numbering(
    tmp_path: Path, name: str, toml: str, cause: str
) -> None:
    root = write_catalog(tmp_path / "c", "1.0.4")
    (root / "schema" / name).write_text("CREATE INDEX i ON users (email);\n", encoding="utf-8")
    if toml:
        manifest = root / "stairway.toml"
        toml_text = manifest.read_text(encoding="utf-8")
        manifest.write_text(toml_text + f"patches = [{toml}]\n", encoding="utf-8")
    assert any(cause in p.cause for p in check_catalog(root).errors), check_catalog(root).errors
    code, _, err = stairway("check", "--catalog", str(root))
    assert code == 2 and cause in err and "Traceback" not in err


def test_check_accepts_valid_patch_numbering(catalogs: dict[str, Path]) -> None:
    for root in catalogs.values():
        assert check_catalog(root).errors == []
        assert stairway("check", "--catalog", str(root))[0] == 0


def test_a_later_release_of_the_line_keeps_the_patch(tmp_path: Path) -> None:
    root = write_catalog(tmp_path / "c", "1.0.5")
    manifest = root / "stairway.toml"
    toml_text = manifest.read_text(encoding="utf-8")
    manifest.write_text(
        toml_text + '[[release]]\nversion = "1.0.6"\nschema = 3\n', encoding="utf-8"
    )
    with pytest.raises(CatalogError, match=r"1\.0\.6 drops patch 3\.1"):
        load_catalog(root)


def test_a_database_from_before_patch_bookkeeping_is_brought_up(
    database_url: str, catalogs: dict[str, Path]
) -> None:
    catalog = load_catalog(catalogs["1.1.1"])
    engine = engine_for(database_url)
    migrator.migrate(engine, catalog, 5)
    with engine.begin() as conn:  # as a Stairway of bookkeeping format 1 left it
        conn.execute(text("DROP TABLE stairway_patches"))
        conn.execute(text("UPDATE stairway_meta SET value = '1' WHERE key = 'format'"))
    assert guard(database_url, catalogs["1.1.0"], "1.1.0").level == 5
    with pytest.raises(GuardRefused, match=r"without patch change 3\.1"):
        guard(database_url, catalogs["1.1.1"], "1.1.1")
    done = migrator.migrate(engine, catalog, 5, release=catalog.release("1.1.1"))
    assert [a.change.code for a in done] == ["3.1"]
    with engine.connect() as conn:
        assert recorder.get_meta(conn, "format") == str(recorder.FORMAT) == "2"
    assert guard(database_url, catalogs["1.1.1"], "1.1.1").level == 5


def test_release_notes_name_the_patch_where_a_site_first_gets_it(
    catalogs: dict[str, Path],
) -> None:
    catalog = load_catalog(catalogs["1.1.1"])
    notes = release_notes(catalog, Version("1.1.0"), Version("1.1.1"))
    assert "`0003.1_fix_email_index` (offline)" in notes.split("## 1.1.1", 1)[1]
    notes = release_notes(catalog, Version("1.0.4"), Version("1.1.1"))
    assert notes.count("0003.1_fix_email_index") == 1
    assert "0003.1_fix_email_index" in notes.split("## 1.0.5", 1)[1].split("## 1.1.0")[0]


def test_new_change_writes_the_next_patch_of_a_change(catalogs: dict[str, Path]) -> None:
    root = catalogs["1.1.1"]
    code, out, err = stairway(
        "new", "change", "fix_team_index", "--patch-of", "3", "--phase", "expand",
        "--catalog", str(root), "--json",
    )  # fmt: skip
    assert code == 0, err
    said = json.loads(out)
    assert said["change"] == "3.2" and said["path"].endswith("schema/0003.2_fix_team_index.sql")
    assert '`patches = ["3.2"]`' in err
    code, _, err = stairway("new", "change", "fix", "--patch-of", "9", "--catalog", str(root))
    assert code == 2 and "change 9 is not in this catalog" in err
    assert not list((root / "schema").glob("0009*"))
