"""``stairway test-paths`` on the example product: every default path passes; a snapshot with an
index the history never creates fails, naming the index and the path; fixture data goes in."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from cli_runner import stairway
from conftest import PG_ADMIN, require_postgres
from stairway import operations
from stairway.pathtests import default_sources
from stairway.versions import Release, Version

EXAMPLE = Path(operations.__file__).parent.parent / "examples" / "identity_sync" / "upgrades"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_default_sources_are_lts_releases_and_each_series_last() -> None:
    releases = [
        Release(Version("1.0.0"), 3, lts=True),
        Release(Version("1.0.4"), 4),
        Release(Version("1.1.0"), 5),
        Release(Version("1.1.2"), 5),
        Release(Version("2.0.0"), 8, lts=True),
        Release(Version("2.1.0"), 11),
    ]
    found = default_sources(releases, Version("2.1.0"))
    assert [str(v) for v in found] == ["1.0.0", "1.0.4", "1.1.2", "2.0.0"]
    assert [str(v) for v in default_sources(releases, Version("1.1.2"))] == ["1.0.0", "1.0.4"]


def test_every_default_path_of_the_example_passes(catalog: Path) -> None:
    code, out, err = stairway("test-paths", "--catalog", str(catalog), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    paths = [(p["from"], p["to"], p["engine"]) for p in report["paths"]]
    assert paths == [(v, "2.1.0", "sqlite") for v in ("1.0.0", "1.0.4", "2.0.0")]


@pytest.mark.postgres
def test_a_path_passes_on_postgresql(catalog: Path) -> None:
    require_postgres()
    args = ["--from", "2.0.0", "--engine", "postgresql", "--postgres", PG_ADMIN]
    code, out, err = stairway("test-paths", "--catalog", str(catalog), *args)
    assert code == 0, err
    assert "2.0.0 -> 2.1.0 (postgresql)" in out and "passed" in out


def index_the_history_never_creates(catalog: Path, tmp_path: Path) -> None:
    """Give ``catalog``'s 2.1.0 a snapshot with an index ``connectors_name`` no change creates."""
    site = tmp_path / "s.toml"
    site.write_text(
        f'[site]\ndatabase = "sqlite:///{tmp_path / "s.db"}"\ncatalog = "{catalog}"\n',
        encoding="utf-8",
    )
    stairway("init", "--version", "2.1.0", "--site", str(site))
    assert stairway("snapshot", "--release", "2.1.0", "--site", str(site))[0] == 0
    ddl = catalog / "snapshots" / "2.1.0" / "sqlite.sql"
    text = ddl.read_text(encoding="utf-8") + "CREATE INDEX connectors_name ON connectors (name);\n"
    ddl.write_text(text, encoding="utf-8")
    manifest = ddl.with_suffix(".toml")
    digest = hashlib.sha256(text.encode()).hexdigest()
    said = re.sub(r'(?m)^sha256 = ".*"$', f'sha256 = "{digest}"', manifest.read_text())
    manifest.write_text(said, encoding="utf-8")
    toml = catalog / "stairway.toml"
    toml.write_text(
        toml.read_text().replace(
            'version = "2.1.0"\n', 'version = "2.1.0"\nsnapshot = "snapshots/2.1.0"\n'
        )
    )


def test_a_snapshot_with_an_index_the_history_never_creates_fails(
    catalog: Path, tmp_path: Path
) -> None:
    index_the_history_never_creates(catalog, tmp_path)
    code, out, err = stairway("test-paths", "--catalog", str(catalog), "--from", "2.0.0")
    assert code == 2
    flat = " ".join(out.split())
    assert "2.0.0 -> 2.1.0 (sqlite)" in flat and "failed" in flat
    assert "connectors_name" in flat
    assert "error:" in err and "hint:" in err
    code, out, _ = stairway("test-paths", "--catalog", str(catalog), "--from", "2.0.0", "--json")
    (path,) = json.loads(out)["paths"]
    assert code == 2 and path["from"] == "2.0.0" and not path["ok"]
    assert path["findings"] == [
        "index connectors_name on connectors: only in the new site at 2.1.0: (name)"
    ]


FIXTURES = """
from sqlalchemy import text


def load(conn, release):
    with open({seen!r}, "a") as seen:
        seen.write(release + "\\n")
    name = "full_name" if release.startswith("1.") else "display_name"
    conn.execute(text(f"INSERT INTO users (id, username, {{name}}) VALUES (1, 'ada', 'Ada')"))
    if {broken!r}:
        raise RuntimeError("no fixtures today")
"""


@pytest.mark.parametrize("broken", [False, True])
def test_fixture_data_is_loaded_before_each_upgrade(
    catalog: Path, tmp_path: Path, broken: bool
) -> None:
    seen = tmp_path / "seen.txt"
    (catalog / "fixtures.py").write_text(FIXTURES.format(seen=str(seen), broken=broken))
    with (catalog / "stairway.toml").open("a", encoding="utf-8") as toml:
        toml.write('\n[test_paths]\nfixtures = "fixtures.py:load"\n')
    code, out, _ = stairway("test-paths", "--catalog", str(catalog), "--json")
    report = json.loads(out)
    if broken:
        assert code == 2
        assert all("fixtures.py:load failed" in p["findings"][0] for p in report["paths"])
    else:
        assert code == 0 and report["ok"]
    assert seen.read_text().split() == ["1.0.0", "1.0.4", "2.0.0"]


def test_bad_inputs_are_refused(catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STAIRWAY_POSTGRES", raising=False)
    for args, said in (
        (["--engine", "postgresql"], "needs a server"),
        (["--from", "7.0"], "no release 7.0"),
        (["--to", "1.0.0", "--from", "2.0.0"], "older"),
    ):
        code, _, err = stairway("test-paths", "--catalog", str(catalog), *args)
        assert code == 2 and said in err and "hint:" in err, (args, err)
        assert "Traceback" not in err
