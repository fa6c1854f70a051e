"""``[[check]]`` entries of an environment kind: a program's version, free memory, free disk,
the database engine and its version. Each passes and fails through ``verify``; a probe that
cannot answer is a finding; a critical one stops the upgrade with exit 2 before anything is
touched; a malformed one is refused when the catalog is loaded."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from cli_runner import stairway
from stairway import context, operations
from stairway.catalog.manifest import parse_size
from stairway.database import dispose_all
from stairway.journal import ACTIVE
from stairway.verify.environment import first_version, meets

PY = sys.executable.replace("\\", "/")
CHECKS = {
    "command fits": f'command = ["{PY}", "--version"]\nversion = ">=3.8"',
    "command too old": f'command = "{PY} --version"\nversion = ">=99"',
    "command missing": 'command = ["no-such-program-for-stairway", "-version"]\nversion = ">=17"',
    "command hangs": f'command = ["{PY}", "-c", "import time; time.sleep(5)"]\n'
    'version = ">=1"\ntimeout = 0.3',
    "command says no version": f'command = ["{PY}", "-c", "print(\'hello\')"]\nversion = ">=1"',
    "command fails": f'command = ["{PY}", "-c", "raise SystemExit(3)"]\nversion = ">=1"',
    "memory fits": 'memory = "1KiB"',
    "memory short": 'memory = "1000TiB"',
    "disk fits": 'disk = 1\npath = "."',
    "disk short": 'disk = "1000 TiB"\npath = "{tmp}"',
    "engine fits": 'database = { sqlite = ">=3", postgresql = ">=10" }',
    "engine unsupported": 'database = { postgresql = ">=10" }',
    "engine too old": 'database = { sqlite = ">=99", postgresql = ">=99" }',
}


def write_checks(catalog: Path, checks: dict[str, str], severity: str, tmp: Path) -> None:
    with (catalog / "stairway.toml").open("a", encoding="utf-8") as out:
        for name, body in checks.items():
            out.write(
                f'\n[[check]]\nname = "{name}"\n{body.replace("{tmp}", str(tmp))}\n'
                f'severity = "{severity}"\nhint = "fix: {name}"\n'
            )


def make_site(root: Path, database_url: str, catalog: Path) -> Path:
    (root / "data").mkdir()
    site = root / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\ndata_dir = "data"\n'
        'backup_dir = "backups"\n',
        "utf-8",
    )
    operations.init(context.open_context(site, None), "1.0.0")
    dispose_all()
    return site


def environment(site: Path) -> tuple[int, dict[str, dict[str, object]]]:
    code, out, err = stairway("verify", "--to", "2.0.0", "--site", str(site), "--json")
    assert "Traceback" not in out + err
    found = orjson.loads(out)["findings"]
    return code, {f["message"].split(":")[0]: f for f in found if f["topic"] == "environment"}


def test_each_kind_passes_and_fails_with_its_severity_and_fix(
    tmp_path: Path, sqlite_database: str, shop_catalog: Path
) -> None:
    write_checks(shop_catalog, CHECKS, "warning", tmp_path)
    site = make_site(tmp_path, sqlite_database, shop_catalog)
    code, found = environment(site)
    assert code == 0, "warnings do not block"
    assert set(found) == set(CHECKS)
    fits = {name for name, f in found.items() if f["severity"] == "info"}
    assert fits == {"command fits", "memory fits", "disk fits", "engine fits"}
    for name in set(CHECKS) - fits:
        assert found[name]["severity"] == "warning" and not found[name]["blocking"]
        assert found[name]["hint"] == f"fix: {name}"
    message = {name: str(f["message"]) for name, f in found.items()}
    assert "meets >=3.8" in message["command fits"]
    assert "the release needs >=99" in message["command too old"]
    assert "`no-such-program-for-stairway` was not found" in message["command missing"]
    assert "did not answer within 0.3 s" in message["command hangs"]
    assert "printed no version" in message["command says no version"]
    assert "exited with 3" in message["command fails"]
    assert "GB of free memory, the release needs" in message["memory short"]
    assert f"disk at {tmp_path}" in message["disk short"]
    assert (
        "sqlite" in message["engine unsupported"]
        and "not supported" in message["engine unsupported"]
    )
    assert "the release needs sqlite >=99" in message["engine too old"]


def test_the_engine_check_reads_postgresql_too(
    tmp_path: Path, pg_database: str, shop_catalog: Path
) -> None:
    checks = {k: v for k, v in CHECKS.items() if k.startswith("engine")}
    write_checks(shop_catalog, checks, "warning", tmp_path)
    site = make_site(tmp_path, pg_database, shop_catalog)
    _, found = environment(site)
    assert found["engine fits"]["severity"] == "info"
    assert "postgresql" in str(found["engine fits"]["message"])
    assert found["engine unsupported"]["severity"] == "info", "postgresql is listed there"
    assert "the release needs postgresql >=99" in str(found["engine too old"]["message"])


def test_a_critical_failure_blocks_the_upgrade_before_anything_is_touched(
    tmp_path: Path, sqlite_database: str, shop_catalog: Path
) -> None:
    chosen = ("command fits", "command missing", "memory short")
    write_checks(shop_catalog, {k: CHECKS[k] for k in chosen}, "critical", tmp_path)
    site = make_site(tmp_path, sqlite_database, shop_catalog)
    database = Path(sqlite_database.removeprefix("sqlite:///"))
    before = database.read_bytes()
    code, found = environment(site)
    assert code == 2 and found["command missing"]["blocking"] and found["memory short"]["blocking"]
    code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 2 and "2 finding(s) block" in err and "no-such-program" in err, err
    assert "nothing was changed" in err
    assert database.read_bytes() == before
    backups = tmp_path / "backups"
    assert not list(backups.glob("*.tar.zst")) and not (backups / ACTIVE).exists()
    assert str(context.current_version(context.open_context(site, None))) == "1.0.0"


MALFORMED = [
    ('query = "SELECT 1"\nexpect = 1\nmemory = "1GiB"', "exactly one of"),
    ('hint = "nothing to probe"', "exactly one of"),
    ('command = ["java", "-version"]', "needs `version`"),
    ('command = ["java", "-version"]\nversion = "seventeen"', "not a version specifier"),
    ('command = []\nversion = ">=17"', "command"),
    ('memory = "2 parsecs"', "not a size"),
    ("memory = -1", "not a size"),
    ('memory = "1GiB"\npath = "/tmp"', "`path` applies to a `disk` check"),
    ('memory = "1GiB"\nversion = ">=1"', "`version` applies to a `command` check"),
    ("database = {}", "name at least one engine"),
    ('database = { mysql = ">=8" }', "database.mysql"),
    ('database = { sqlite = "new" }', "not a version specifier"),
    ('command = "java"\nversion = ">=1"\ntimeout = 0', "timeout"),
    ('query = "SELECT 1"', "needs `expect`"),
]


def test_every_malformed_check_is_refused_at_load(shop_catalog: Path) -> None:
    with (shop_catalog / "stairway.toml").open("a", encoding="utf-8") as out:
        for entry, _ in MALFORMED:
            out.write(f'\n[[check]]\nname = "broken"\n{entry}\n')
    code, out, err = stairway("check", "--catalog", str(shop_catalog), "--json")
    assert code == 2 and "Traceback" not in out + err
    causes = [p["cause"] for p in orjson.loads(out)["problems"]]
    for number, (_, message) in enumerate(MALFORMED, start=1):
        assert any(f"check[{number}]" in c and message in c for c in causes), (number, causes)


def test_versions_and_sizes_are_read_as_products_print_them() -> None:
    assert first_version('openjdk version "17.0.9" 2023-10-17\nOpenJDK 64-Bit') == "17.0.9"
    assert first_version('java version "1.8.0_292"') == "1.8.0"
    assert first_version("Python 3.11.2") == "3.11.2"
    assert first_version("openjdk 21 2023-09-19") == "21"
    assert first_version("no digits here") is None
    assert meets("17.0.9", ">=11,<18") and not meets("21", ">=11,<18")
    assert meets("17.0.9", "") and not meets("1.8.0", ">=11")
    assert parse_size("2GiB") == 2 * 2**30 and parse_size("512 MB") == 512 * 10**6
    assert parse_size(1024) == 1024 and parse_size("1.5kb") == 1500
