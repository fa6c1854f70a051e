"""Schema snapshots of the example product: written from a site at a release, a new site built
from one is the site replaying every change would build, and a snapshot that lies is refused."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from cli_runner import stairway
from optuna_sites import schema_dump
from snapshot_sites import declare, site_maker
from stairway import operations

EXAMPLE = Path(operations.__file__).parent.parent / "examples" / "identity_sync" / "upgrades"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture(params=["sqlite", "postgresql"])
def make_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """``make_site(name, catalog)``: a site.toml on a new database of the parametrised engine."""
    with ExitStack() as stack:
        yield site_maker(request.param, tmp_path, stack)


def test_init_from_a_snapshot_builds_what_replaying_builds(catalog: Path, make_site) -> None:
    source, _ = make_site("source", catalog)
    assert stairway("init", "--version", "2.0.0", "--replay", "--site", str(source))[0] == 0
    code, out, err = stairway("snapshot", "--release", "2.0.0", "--site", str(source))
    assert code == 0, err
    assert 'snapshot = "snapshots/2.0.0"' in out  # not declared yet: it says how
    declare(catalog, "2.0.0")

    built, built_url = make_site("built", catalog)
    code, out, err = stairway("init", "--version", "2.0.0", "--site", str(built))
    assert code == 0, err
    assert "changes 1..8 built from the snapshot of 2.0.0" in " ".join(out.split())
    replayed, replayed_url = make_site("replayed", catalog)
    code, out, _ = stairway("init", "--version", "2.0.0", "--replay", "--site", str(replayed))
    assert "every change replayed" in out
    assert schema_dump(built_url) == schema_dump(replayed_url)

    # the site built from the snapshot upgrades like any other
    code, _, err = stairway("upgrade", "--to", "2.1.0", "--site", str(built))
    assert code == 0, err
    assert stairway("migrate", "--to", "2.1.0", "--site", str(replayed))[0] == 0
    assert schema_dump(built_url) == schema_dump(replayed_url)
    code, out, _ = stairway("status", "--strict", "--site", str(built))
    assert code == 0 and "2.1.0" in out


@pytest.mark.parametrize("make_site", ["sqlite"], indirect=True)
def test_a_later_release_builds_from_the_snapshot_below_it(catalog: Path, make_site) -> None:
    source, _ = make_site("source", catalog)
    stairway("init", "--version", "2.0.0", "--replay", "--site", str(source))
    stairway("snapshot", "--release", "2.0.0", "--site", str(source))
    declare(catalog, "2.0.0")
    built, built_url = make_site("built", catalog)
    code, out, _ = stairway("init", "--version", "2.1.0", "--site", str(built), "--json")
    assert code == 0
    assert '"kind": "snapshot"' in out and '"level": 8' in out
    assert out.count('"number"') == 3  # changes 9..11 ran after it
    replayed, replayed_url = make_site("replayed", catalog)
    stairway("init", "--version", "2.1.0", "--replay", "--site", str(replayed))
    assert schema_dump(built_url) == schema_dump(replayed_url)
    # 1.0.4 lies below the snapshot: it replays
    older, _ = make_site("older", catalog)
    code, out, _ = stairway("init", "--version", "1.0.4", "--site", str(older))
    assert code == 0 and "every change replayed" in out


def _snapshot(catalog: Path, tmp_path: Path) -> Path:
    site = tmp_path / "s.toml"
    site.write_text(
        f'[site]\ndatabase = "sqlite:///{tmp_path / "s.db"}"\ncatalog = "{catalog}"\n',
        encoding="utf-8",
    )
    stairway("init", "--version", "2.0.0", "--replay", "--site", str(site))
    assert stairway("snapshot", "--release", "2.0.0", "--site", str(site))[0] == 0
    declare(catalog, "2.0.0")
    return catalog / "snapshots" / "2.0.0"


def _set(path: Path, key: str, value: str) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text), encoding="utf-8")


@pytest.mark.parametrize("lie", ["ddl", "level", "release", "digest"])
def test_a_lying_snapshot_is_refused_when_the_catalog_loads(
    catalog: Path, tmp_path: Path, lie: str
) -> None:
    snapshots = _snapshot(catalog, tmp_path)
    manifest = snapshots / "sqlite.toml"
    if lie == "ddl":
        with (snapshots / "sqlite.sql").open("a", encoding="utf-8") as ddl:
            ddl.write("CREATE INDEX users_created ON users (created_at);\n")
    elif lie == "level":
        _set(manifest, "level", "7")
    elif lie == "release":
        _set(manifest, "release", '"2.1.0"')
    else:
        _set(manifest, "sha256", '"' + "0" * 64 + '"')
    site = tmp_path / "new.toml"
    site.write_text(
        f'[site]\ndatabase = "sqlite:///{tmp_path / "new.db"}"\ncatalog = "{catalog}"\n',
        encoding="utf-8",
    )
    code, _, err = stairway("init", "--version", "2.0.0", "--site", str(site))
    assert code == 2
    assert "error:" in err and "hint:" in err and "Traceback" not in err
    assert "sqlite.toml" in err
    assert not (tmp_path / "new.db").exists() or (tmp_path / "new.db").stat().st_size == 0
    code, out, _ = stairway("check", "--catalog", str(catalog), "--json")
    assert code == 2 and "sqlite.toml" in out


def test_a_snapshot_that_does_not_build_leaves_nothing(catalog: Path, tmp_path: Path) -> None:
    snapshots = _snapshot(catalog, tmp_path)
    ddl = snapshots / "sqlite.sql"
    text = ddl.read_text(encoding="utf-8") + "CREATE INDEX broken ON no_such_table (x);\n"
    ddl.write_text(text, encoding="utf-8")
    _set(snapshots / "sqlite.toml", "sha256", f'"{hashlib.sha256(text.encode()).hexdigest()}"')
    site = tmp_path / "new.toml"
    site.write_text(
        f'[site]\ndatabase = "sqlite:///{tmp_path / "new.db"}"\ncatalog = "{catalog}"\n',
        encoding="utf-8",
    )
    code, _, err = stairway("init", "--version", "2.0.0", "--site", str(site))
    assert code == 2 and "sqlite.sql" in err and "init --replay" in err
    assert schema_dump(f"sqlite:///{tmp_path / 'new.db'}") == []
    code, out, _ = stairway("init", "--version", "2.0.0", "--replay", "--site", str(site))
    assert code == 0 and "every change replayed" in out


def test_snapshot_refuses_a_site_not_at_the_release_or_altered(
    catalog: Path, tmp_path: Path
) -> None:
    site = tmp_path / "s.toml"
    url = f"sqlite:///{tmp_path / 's.db'}"
    site.write_text(f'[site]\ndatabase = "{url}"\ncatalog = "{catalog}"\n', encoding="utf-8")
    stairway("init", "--version", "1.0.4", "--site", str(site))
    for release, said in (("2.0.0", "at 1.0.4, not at release 2.0.0"), ("9.9", "no release")):
        code, _, err = stairway("snapshot", "--release", release, "--site", str(site))
        assert code == 2 and said in err and "hint:" in err
    import sqlite3

    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("CREATE INDEX by_hand ON users (full_name)")
    code, _, err = stairway("snapshot", "--release", "1.0.4", "--site", str(site))
    assert code == 2 and "index by_hand on users" in err
    assert not (catalog / "snapshots").exists()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("DROP INDEX by_hand")
    change = catalog / "schema" / "0004_sync_runs_state.sql"
    change.write_text(change.read_text(encoding="utf-8") + "-- edited\n", encoding="utf-8")
    code, _, err = stairway("snapshot", "--release", "1.0.4", "--site", str(site))
    assert code == 2 and "drift" in err
    assert not (catalog / "snapshots").exists()
