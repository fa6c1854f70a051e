"""Each kind of bad input is refused through the CLI: exit 2, ``error:`` and ``hint:`` on stderr,
no traceback, and nothing written (files byte for byte, the site's database as it was)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli_runner import stairway
from stairway import context, operations
from stairway.database import dispose_all

CATALOG = Path(__file__).parent / "catalogs" / "people"
CONFIGS = Path(__file__).parent / "configs"
DEEP_TOML = "\ndeep = " + "[" * 5000 + "]" * 5000 + "\n"
FILES = {
    "app.toml": "[server]\nport = 8080  # behind the proxy\n",
    "logging.yaml": "version: 1\nhandlers:\n  file:\n    filename: /var/log/people.log\n",
    "ui.json": '{\n  "title": "People"\n}\n',
}


@pytest.fixture
def site(tmp_path: Path, sqlite_database: str) -> Path:
    """A site at 1.0.0 with one config file of each format; the config migrations go to 3.0.0."""
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    etc = tmp_path / "etc"
    etc.mkdir()
    for name, text in FILES.items():
        (etc / name).write_text(text, "utf-8")
    shutil.copy(CONFIGS / "standalone.xml", etc / "standalone.xml")
    names = ", ".join(f'"etc/{name}"' for name in [*FILES, "standalone.xml"])
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "{sqlite_database}"\ncatalog = "catalog"\n'
        f'config_files = [{names}]\nbackup_dir = "backups"\n',
        "utf-8",
    )
    operations.init(context.open_context(path, None), "1.0.0")
    dispose_all()
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, the SQLite database included, byte for byte."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def refused(args: list[str], root: Path, *said: str) -> str:
    """Run ``stairway args``; assert a clean refusal that changed nothing under ``root``."""
    before = snapshot(root)
    code, _, err = stairway(*args)
    dispose_all()
    assert code == 2, err
    assert "error:" in err and "hint:" in err and "Traceback" not in err, err
    for text in said:
        assert text in err, err
    assert snapshot(root) == before
    return err


COMMANDS = [["status"], ["migrate"], ["backup"], ["upgrade", "--to", "2.0.0"], ["plan"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_unreachable_postgresql_is_refused_naming_it_without_its_password(
    site: Path, command: list[str]
) -> None:
    text = site.read_text("utf-8").replace(
        site.read_text("utf-8").split('"')[1], "postgresql://people:sekrit@127.0.0.1:1/people"
    )
    site.write_text(text, "utf-8")
    err = refused([*command, "--site", str(site)], site.parent, "127.0.0.1:1", "cannot connect")
    assert "sekrit" not in err
    assert not (site.parent / "backups").exists()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_sqlite_database_in_a_missing_directory_is_refused(
    site: Path, command: list[str]
) -> None:
    text = site.read_text("utf-8").replace(
        site.read_text("utf-8").split('"')[1], "sqlite:///missing/people.db"
    )
    site.write_text(text, "utf-8")
    refused([*command, "--site", str(site)], site.parent, "directory does not exist")
    assert not (site.parent / "missing").exists()


def test_a_file_that_is_not_a_sqlite_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "people.db").write_bytes(b"not a database, only text\n" * 100)
    site = tmp_path / "site.toml"
    site.write_text(f'[site]\ndatabase = "sqlite:///people.db"\ncatalog = "{CATALOG}"\n', "utf-8")
    refused(["status", "--site", str(site)], tmp_path, "not a database")


def test_a_deeply_nested_site_toml_is_refused(site: Path) -> None:
    with site.open("a", encoding="utf-8") as out:
        out.write(DEEP_TOML)
    refused(["status", "--site", str(site)], site.parent, "site.toml", "nested too deep")


def test_an_integer_too_long_to_read_in_site_toml_is_refused(site: Path) -> None:
    with site.open("a", encoding="utf-8") as out:
        out.write("\n[fleet]\nheartbeat = " + "7" * 5000 + "\n")
    refused(["status", "--site", str(site)], site.parent, "site.toml", "more than 4,300 digits")


@pytest.mark.parametrize("name", ["stairway.toml", "config.toml", "objects.toml"])
def test_a_deeply_nested_catalog_toml_is_refused(site: Path, name: str) -> None:
    with (site.parent / "catalog" / name).open("a", encoding="utf-8") as out:
        out.write(DEEP_TOML)
    refused(["status", "--site", str(site)], site.parent, name, "nested too deep")


def test_a_site_toml_that_is_a_directory_or_not_utf8_is_refused(site: Path) -> None:
    refused(["status", "--site", str(site.parent)], site.parent, "cannot read")
    site.write_bytes(b'[site]\ndatabase = "\xff\xfe"\n')
    refused(["status", "--site", str(site)], site.parent, "not valid UTF-8")


def migrate_refused(site: Path, name: str, content: bytes, *said: str) -> str:
    (site.parent / "etc" / name).write_bytes(content)
    args = ["config", "migrate", "--to", "3.0.0", "--site", str(site)]
    return refused(args, site.parent, f"etc/{name}", *said)


def test_a_deeply_nested_toml_config_file_is_refused(site: Path) -> None:
    migrate_refused(site, "app.toml", FILES["app.toml"].encode() + DEEP_TOML.encode(), "nested")


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deep"),
        (b'{\n  "title": "People",\n  "n": ' + b"9" * 5000 + b"\n}\n", "ui.json:3"),
        (b'{\n  "title": "People",\n  "title": "Staff"\n}\n', "ui.json:3: the key 'title'"),
        (b'{\n  "a": {"b": 1,\n        "b": 2},\n  "title": "P"\n}\n', "ui.json:3: the key 'b'"),
        (b'{\n  "title": "People",\n  "timeout": 1e999999\n}\n', "ui.json:3: the number 1e999999"),
        (b'{\n  "title": "People",\n  "ratio": NaN\n}\n', "ui.json:3: NaN is not a JSON value"),
        (b'{\n  "title": "People",\n  "ratio": -Infinity\n}\n', "ui.json:3: -Infinity"),
        (b'{"title": "\\ud800"}\n', "lone surrogate"),
        (b'{"title": "\xff\xfePeople"}\n', "not valid UTF-8"),
        (b"\x00\x01\x02\x03" * 1000, "does not parse as JSON"),
    ],
    ids=[
        "deep",
        "long-integer",
        "duplicate",
        "nested-duplicate",
        "infinite",
        "nan",
        "minus-infinity",
        "surrogate",
        "not-utf8",
        "binary",
    ],
)
def test_a_json_config_file_that_cannot_be_kept_as_written_is_refused(
    site: Path, content: bytes, said: str
) -> None:
    migrate_refused(site, "ui.json", content, said)


def test_a_yaml_config_file_with_a_key_twice_or_nested_too_deep_is_refused(site: Path) -> None:
    twice = b"version: 1\nversion: 2\nhandlers: {}\n"
    migrate_refused(site, "logging.yaml", twice, "logging.yaml:2", 'duplicate key "version"')
    deep = b"version: 1\nx: " + b"[" * 5000 + b"]" * 5000 + b"\n"
    migrate_refused(site, "logging.yaml", deep, "nested too deep")
    migrate_refused(site, "logging.yaml", b"created: 2001-13-45\n", "month must be in 1..12")


def test_a_toml_config_file_with_a_key_twice_is_refused(site: Path) -> None:
    twice = b"[server]\nport = 8080\nport = 8081\n"
    migrate_refused(site, "app.toml", twice, "app.toml:3", "already exists")


def test_a_deeply_nested_xml_config_file_is_refused(site: Path) -> None:
    deep = b"<server>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</server>\n"
    migrate_refused(site, "standalone.xml", deep, "Excessive depth")
