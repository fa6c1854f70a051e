"""``stairway config migrate`` on a site's files, config findings in ``verify``, bad config.toml."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import orjson
import pytest

from cli_runner import stairway
from stairway import context, operations
from stairway.catalog import load_catalog
from stairway.errors import CatalogError
from stairway.verify import verify

CATALOG = Path(__file__).parent / "catalogs" / "people"
CONFIGS = Path(__file__).parent / "configs"

APP_TOML = """\
# people server settings
[server]
port = 8080  # behind the proxy
legacy_ui = true

[sync]
scripted_hooks = ["hooks/nightly.py"]
"""
LOGGING_YAML = "version: 1\nhandlers:\n  file:\n    filename: /var/log/people.log  # rotated\n"
UI_JSON = '{\n  "title": "People"\n}\n'


@pytest.fixture
def site(tmp_path: Path, sqlite_database: str) -> Path:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "app.toml").write_text(APP_TOML, "utf-8")
    (etc / "logging.yaml").write_text(LOGGING_YAML, "utf-8")
    (etc / "ui.json").write_text(UI_JSON, "utf-8")
    shutil.copy(CONFIGS / "standalone.xml", etc / "standalone.xml")
    files = ", ".join(f'"{etc / n}"' for n in ("app.toml", "logging.yaml", "ui.json"))
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "{sqlite_database}"\ncatalog = "{catalog}"\n'
        f'config_files = [{files}, "etc/standalone.xml"]\n',
        "utf-8",
    )
    operations.init(context.open_context(path, None), "1.0.0")
    return path


def etc_bytes(site: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((site.parent / "etc").iterdir())}


def test_dry_run_prints_the_diff_and_writes_nothing(site: Path) -> None:
    before = etc_bytes(site)
    code, out, err = stairway(
        "config", "migrate", "--to", "3.0.0", "--dry-run", "--site", str(site)
    )
    assert code == 3, "the manual item is still reported"
    assert "-port = 8080" in out and "+listen_port = 8080" in out
    assert (
        '-        <extension module="org.wildfly.extension.microprofile.config-smallrye"/>' in out
    )
    assert "would change 4 file(s)" in out
    assert "scripted hooks are gone" in err
    assert etc_bytes(site) == before


def test_migrate_writes_keeps_originals_and_a_second_run_changes_nothing(site: Path) -> None:
    etc = site.parent / "etc"
    (etc / "app.toml").chmod(0o600)
    before = etc_bytes(site)
    code, _, err = stairway("config", "migrate", "--to", "3.0.0", "--site", str(site))
    assert code == 3 and "sync.scripted_hooks" in err and "need a hand" in err
    app = (etc / "app.toml").read_text("utf-8")
    assert app == (
        "# people server settings\n[server]\nlisten_port = 8080  # behind the proxy\n\n"
        '[sync]\nscripted_hooks = ["hooks/nightly.py"]\n\n[sessions]\nstore = "redis"\n'
    )
    assert stat.S_IMODE((etc / "app.toml").stat().st_mode) == 0o600
    assert b"smallrye" not in (etc / "standalone.xml").read_bytes()
    assert "path: /var/log/people.log" in (etc / "logging.yaml").read_text("utf-8")
    for name, original in before.items():
        assert (etc / f"{name}.before-3.0.0").read_bytes() == original
    migrated = etc_bytes(site)

    code, out, _ = stairway("config", "migrate", "--to", "3.0.0", "--site", str(site))
    assert code == 3 and "changed 0 file(s)" in out
    assert etc_bytes(site) == migrated, "a second run must not touch files or kept originals"


def test_done_by_hand_the_run_exits_zero(site: Path) -> None:
    stairway("config", "migrate", "--to", "3.0.0", "--site", str(site))
    app = site.parent / "etc" / "app.toml"
    app.write_text(app.read_text("utf-8").replace('scripted_hooks = ["hooks/nightly.py"]\n', ""))
    code, out, err = stairway("config", "migrate", "--to", "3.0.0", "--site", str(site), "--json")
    assert code == 0, err
    report = orjson.loads(out)
    assert report["written"] and all(not f["attention"] for f in report["files"])


def test_only_the_migrations_up_to_the_target_apply(site: Path) -> None:
    code, _, err = stairway("config", "migrate", "--to", "2.0.0", "--site", str(site))
    assert code == 0, err
    etc = site.parent / "etc"
    assert "listen_port = 8080" in (etc / "app.toml").read_text("utf-8")
    assert "legacy_ui" in (etc / "app.toml").read_text("utf-8"), "removed only from 3.0.0"
    assert b"smallrye" in (etc / "standalone.xml").read_bytes()
    assert not (etc / "standalone.xml.before-2.0.0").exists()


def test_a_file_that_does_not_parse_stops_the_run_with_every_file_untouched(site: Path) -> None:
    etc = site.parent / "etc"
    (etc / "ui.json").write_text('{\n  "title": "People",\n}\n', "utf-8")
    before = etc_bytes(site)
    code, _, err = stairway("config", "migrate", "--to", "3.0.0", "--site", str(site))
    assert code == 2
    assert f"{etc / 'ui.json'}:3: does not parse as JSON" in err
    assert "left untouched" in err
    assert etc_bytes(site) == before, "no file written, no original copied"


def test_a_missing_file_is_refused(site: Path) -> None:
    (site.parent / "etc" / "logging.yaml").unlink()
    code, _, err = stairway("config", "migrate", "--site", str(site))
    assert code == 2 and "logging.yaml: config file not found" in err and "site.toml" in err


def test_verify_reports_changes_manual_items_and_broken_files(site: Path) -> None:
    ctx = context.open_context(site, None)
    found = [f for f in verify(ctx, "3.0.0").findings if f.topic == "config"]
    assert sorted(f.severity for f in found) == ["info"] * 4 + ["warning"]
    manual = next(f for f in found if f.severity == "warning")
    assert "sync.scripted_hooks" in manual.message and not manual.blocking

    (site.parent / "etc" / "standalone.xml").write_text("<server>\n<extensions>\n</server>\n")
    found = [f for f in verify(ctx, "3.0.0").findings if f.topic == "config"]
    assert [(f.severity, f.blocking) for f in found] == [("critical", True)]
    assert "standalone.xml:3" in found[0].message
    code, _, _ = stairway("verify", "--to", "3.0.0", "--site", str(site))
    assert code == 2


def test_verify_has_no_config_finding_when_nothing_applies(site: Path) -> None:
    ctx = context.open_context(site, None)
    assert not [f for f in verify(ctx, "1.0.0").findings if f.topic == "config"]


# --- a malformed config.toml is refused with its line ---------------------------------------------

BAD = [
    ('file = "a.toml"\nsince = "2.0.0"\nop = "set-text"\nkey = "a"', "does not apply to TOML"),
    ('file = "a.toml"\nsince = "2.0.0"\nop = "rename"\nkey = "a"', "`to` is required"),
    ('file = "a.toml"\nsince = "2.0.0"\nop = "remove"', "`key` is required"),
    ('file = "a.toml"\nsince = "2.0.0"\nop = "remove"\nkey = "a..b"', "empty segment"),
    ('file = "a.toml"\nsince = "2.0.0"\nop = "rename"\nkey = "a"\nto = "a.b"', "outside"),
    ('file = "a.toml"\nsince = "2.0.0"\nop = "set-default"\nkey = "a"', "`value` is required"),
    ('file = "a.conf"\nsince = "2.0.0"\nop = "remove"\nkey = "a"', "cannot tell the format"),
    ('file = "s.xml"\nsince = "2.0.0"\nop = "remove"\nxpath = "//x["', "xpath"),
    ('file = "s.xml"\nsince = "2.0.0"\nop = "remove"\nxpath = "//q:x"', "Undefined namespace"),
    ('file = "s.xml"\nsince = "2.0.0"\nop = "remove"\nkey = "a"\nxpath = "//x"', "`key`"),
    (
        'file = "s.xml"\nsince = "2.0.0"\nop = "set-attribute"\nxpath = "//x"\nvalue = "1"',
        "`attribute` is required",
    ),
    ('file = "s.xml"\nsince = "2.0.0"\nop = "rename"\nxpath = "//x"', "does not apply to XML"),
    ('file = "a.toml"\nsince = "two"\nop = "remove"\nkey = "a"', "since"),
    (
        'file = "a.toml"\nsince = "2.0.0"\nop = "remove"\nkey = "a"\nwhen = 1',
        "unknown key 'migration[2].when'",
    ),
]


@pytest.mark.parametrize(("entry", "message"), BAD)
def test_malformed_config_migration_is_refused_with_its_line(
    tmp_path: Path, entry: str, message: str
) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    good = '[[migration]]\nfile = "ok.toml"\nsince = "2.0.0"\nop = "remove"\nkey = "x"\n\n'
    (catalog / "config.toml").write_text(good + "[[migration]]\n" + entry + "\n", "utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog)
    assert message in str(caught.value)
    assert caught.value.path.endswith("config.toml") and caught.value.line is not None
    assert caught.value.line >= 7, "the line of the second entry, not the first"


def test_config_migration_since_an_unknown_release_is_refused(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    (catalog / "config.toml").write_text(
        '[[migration]]\nfile = "a.toml"\nsince = "2.5.0"\nop = "remove"\nkey = "a"\n', "utf-8"
    )
    with pytest.raises(CatalogError, match=r"since 2\.5\.0, which is no release"):
        load_catalog(catalog)


def test_a_migration_that_undoes_an_earlier_one_is_refused(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    (catalog / "config.toml").write_text(
        '[[migration]]\nfile = "app.toml"\nsince = "2.0.0"\nop = "remove"\nkey = "server"\n\n'
        '[[migration]]\nfile = "app.toml"\nsince = "3.0.0"\nop = "set-default"\n'
        'key = "server.port"\nvalue = 80\n',
        "utf-8",
    )
    with pytest.raises(CatalogError, match=r"undoes app\.toml#1") as caught:
        load_catalog(catalog)
    assert "server.port" in caught.value.hint
