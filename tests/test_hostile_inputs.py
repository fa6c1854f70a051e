"""Mutated inputs fed to the CLI: a site.toml, a catalog TOML file, config files in each format
and export files, each with bits flipped, bytes cut or inserted, values nested deep and lines
given twice. Whatever comes in, the command ends in a clean refusal (exit 2, ``error:``) or does
its work; it never shows a traceback, and it never leaves anything half-written.

The commands run in-process through ``cli_runner``, which maps Stairway's errors to exit codes
as the console script does and lets every other exception through: a traceback fails the test.
"""

from __future__ import annotations

import io
import os
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from lxml import etree
from ruamel.yaml import YAML
from sqlalchemy import text

from cli_runner import stairway
from stairway import context, operations
from stairway.configfiles.jsontext import strict_loads
from stairway.database import dispose_all
from stairway.transfer.format import records

CATALOG = Path(__file__).parent / "catalogs" / "people"
CONFIGS = Path(__file__).parent / "configs"
EXAMPLES = settings(
    max_examples=int(os.environ.get("STAIRWAY_HOSTILE_EXAMPLES", "40")), deadline=None
)
CONFIG_FILES = {
    "app.toml": b"# people server settings\n[server]\nport = 8080  # behind the proxy\n"
    b"legacy_ui = true\n\n[ldap]\nbind_password = 'x'\n",
    "logging.yaml": b"version: 1\nhandlers:\n  file:\n"
    b"    filename: /var/log/people.log  # rotated\n",
    "ui.json": b'{\n  "title": "People",\n  "limits": {"page": 50, "ratio": 0.5},\n'
    b'  "tags": []\n}\n',
    "standalone.xml": (CONFIGS / "standalone.xml").read_bytes(),
}
# Where a new value goes in each format so that its parser reaches it (a line's start, just
# inside the first object or element), and how it is written there.
PLACES = {
    ".toml": (b"\n", b"zz = %s\n"),
    ".yaml": (b"\n", b"zz: %s\n"),
    ".json": (b"{", b'"zz": %s, '),
    ".xml": (b">", b"<zz>%s</zz>"),
    ".zst": (b"\n", b'{"kind":"object","id":"x","type":"User","data":{"a":%s}}\n'),
}
# Numbers some formats cannot hold, or Python cannot read: infinite, not a number, too long.
NUMBERS = [b"1e999999", b"-1e400", b"NaN", b"-Infinity", b"9" * 5000, b"1.5"]


def deep(suffix: str, depth: int) -> bytes:
    return b"<zz>" * depth + b"</zz>" * depth if suffix == ".xml" else b"[" * depth + b"]" * depth


def insert_value(found: bytearray, at: int, suffix: str, value: bytes) -> None:
    after, template = PLACES[suffix]
    place = found.find(after, at)
    place = len(found) if place < 0 else place + 1
    found[place:place] = template % value


def mutate(data: st.DataObject, original: bytes, suffix: str) -> bytes:
    """``original`` with one to three damages."""
    found = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3), label="damages")):
        kinds = ["flip", "cut", "insert", "nest", "number", "twice"]
        kind = data.draw(st.sampled_from(kinds), label="kind")
        at = data.draw(st.integers(0, len(found)), label="at")
        if kind == "flip":
            bit = 1 << data.draw(st.integers(0, 7), label="bit")
            found[at : at + 1] = bytes(b ^ bit for b in found[at : at + 1])  # none at the end
        elif kind == "cut":
            end = data.draw(st.integers(at, len(found)), label="end")
            del found[at : end if data.draw(st.booleans(), label="middle") else len(found)]
        elif kind == "insert":
            found[at:at] = data.draw(st.binary(min_size=1, max_size=24), label="bytes")
        elif kind == "nest":
            depth = data.draw(st.sampled_from([3, 120, 300, 1_100, 5_000, 100_000]), label="depth")
            insert_value(found, at, suffix, deep(suffix, depth))
        elif kind == "number":
            insert_value(found, at, suffix, data.draw(st.sampled_from(NUMBERS), label="number"))
        elif kind == "twice":  # a line given twice: a key defined twice, in the keyed formats
            lines = bytes(found).split(b"\n")
            index = min(at, len(lines) - 1)
            found = bytearray(b"\n".join([*lines[: index + 1], *lines[index:]]))
    return bytes(found)


def run(*args: str) -> tuple[int, str]:
    code, _, err = stairway(*args)
    dispose_all()
    event(f"exit {code}")
    assert "Traceback" not in err, err
    if code == 2:
        assert "error:" in err, err
    return code, err


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site at 1.0.0 with a config file of each format, a pristine copy of it, and an export
    of another site's objects."""
    root = tmp_path_factory.mktemp("hostile")
    site = root / "site"
    shutil.copytree(CATALOG, site / "catalog", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "etc").mkdir()
    for name, content in CONFIG_FILES.items():
        (site / "etc" / name).write_bytes(content)
    names = ", ".join(f'"etc/{name}"' for name in CONFIG_FILES)
    (site / "site.toml").write_text(
        '# the people site\n[site]\ndatabase = "sqlite:///app.db"\ncatalog = "catalog"\n'
        f'config_files = [{names}]\nbackup_dir = "backups"\n\n[service]\nhealth_timeout = 5.0\n',
        "utf-8",
    )
    operations.init(context.open_context(site / "site.toml", None), "1.0.0")
    source = root / "source"
    shutil.copytree(CATALOG, source / "catalog", ignore=shutil.ignore_patterns("__pycache__"))
    (source / "site.toml").write_text(
        '[site]\ndatabase = "sqlite:///source.db"\ncatalog = "catalog"\n', "utf-8"
    )
    operations.init(context.open_context(source / "site.toml", None), "1.0.0")
    _fill(source / "site.toml", 30)
    operations.export(context.open_context(source / "site.toml", None), root / "good.zst", 10)
    dispose_all()
    shutil.copytree(site, root / "pristine")
    return site


def _fill(site: Path, count: int) -> None:
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        rows = [
            {"o": f"u{n:03d}", "d": f'{{"fullName": "User {n}", "n": {n}}}'} for n in range(count)
        ]
        conn.execute(text("INSERT INTO objects VALUES (:o, 'User', :d, '1.0.0')"), rows)


def reset(site: Path) -> dict[str, bytes]:
    """The site as it was made; returns its files."""
    dispose_all()
    shutil.rmtree(site)
    shutil.copytree(site.parent / "pristine", site)
    return snapshot(site)


@EXAMPLES
@given(data=st.data())
def test_a_mutated_site_toml_is_read_or_refused(world: Path, data: st.DataObject) -> None:
    before = reset(world)
    site = world / "site.toml"
    site.write_bytes(mutate(data, before["site.toml"], ".toml"))
    code, _ = run("status", "--site", str(site))
    assert code in (0, 2)
    after = snapshot(world)
    assert {k: after.get(k) for k in before if k != "site.toml"} == {
        k: v for k, v in before.items() if k != "site.toml"
    }, "status changes nothing"


@EXAMPLES
@given(data=st.data(), name=st.sampled_from(["stairway.toml", "config.toml", "objects.toml"]))
def test_a_mutated_catalog_file_is_read_or_refused(
    world: Path, data: st.DataObject, name: str
) -> None:
    before = reset(world)
    target = world / "catalog" / name
    target.write_bytes(mutate(data, before[f"catalog/{name}"], ".toml"))
    code, _ = run("status", "--site", str(world / "site.toml"))
    assert code in (0, 2)
    after = snapshot(world)
    assert {k: after.get(k) for k in before if k != f"catalog/{name}"} == {
        k: v for k, v in before.items() if k != f"catalog/{name}"
    }, "status changes nothing"


READERS: dict[str, Callable[[bytes], object]] = {
    ".json": lambda raw: strict_loads(raw.decode("utf-8")),
    ".toml": lambda raw: tomllib.loads(raw.decode("utf-8")),
    ".yaml": lambda raw: YAML(typ="safe").load(io.BytesIO(raw)),
    ".xml": lambda raw: etree.fromstring(raw),
}


@pytest.mark.heavy
@pytest.mark.timeout(900)  # 40 whole CLI runs: minutes on a loaded machine
@EXAMPLES
@given(data=st.data(), name=st.sampled_from(sorted(CONFIG_FILES)))
def test_a_mutated_config_file_is_migrated_whole_or_left_alone(
    world: Path, data: st.DataObject, name: str
) -> None:
    reset(world)
    path = world / "etc" / name
    original = mutate(data, CONFIG_FILES[name], path.suffix)
    assume(original != CONFIG_FILES[name])
    path.write_bytes(original)
    before = snapshot(world / "etc")
    code, err = run("config", "migrate", "--to", "3.0.0", "--site", str(world / "site.toml"))
    # 3: migrated, and an item needs a hand (a rename whose old and new key are both set)
    assert code in (0, 2) or (code == 3 and "need a hand" in err), err
    after = snapshot(world / "etc")
    if code == 2:
        assert after == before, "a refusal writes nothing"
    elif after[name] != original:
        assert after[f"{name}.before-3.0.0"] == original, "the original is kept whole"
        READERS[path.suffix](after[name])  # the written file is whole and valid


@pytest.fixture(scope="module")
def export_lines(world: Path) -> list[bytes]:
    return [raw for _, raw in records(world.parent / "good.zst")]


def damaged_export(data: st.DataObject, good: Path, lines: list[bytes]) -> bytes:
    """Damage on the way: to the compressed bytes, or to the records before compressing them
    again (with their chunk records and trailer as they were)."""
    if data.draw(st.booleans(), label="compressed"):
        return mutate(data, good.read_bytes(), ".zst")
    plain = mutate(data, b"\n".join(lines) + b"\n", ".zst")
    return zstandard.ZstdCompressor().compress(plain)


@EXAMPLES
@given(data=st.data())
def test_a_damaged_export_is_imported_whole_or_refused_with_nothing_written(
    world: Path, export_lines: list[bytes], data: st.DataObject
) -> None:
    reset(world)
    good = world.parent / "good.zst"
    path = world.parent / "damaged.zst"
    path.write_bytes(damaged_export(data, good, export_lines))
    assume(path.read_bytes() != good.read_bytes())
    path.with_name("damaged.zst.rejects.ndjson").unlink(missing_ok=True)
    before = snapshot(world)
    code, err = run("import", str(path), "--site", str(world / "site.toml"))
    assert code in (0, 2), err
    if code == 2:
        assert snapshot(world) == before, "a refused import writes nothing"
        assert not path.with_name("damaged.zst.rejects.ndjson").exists()
