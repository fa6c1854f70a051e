"""At 80 columns, ``plan``, ``verify``, ``status`` and ``backups`` keep every identifier an
operator copies whole on one line (change labels, releases, backup ids, commands' versions),
draw no table wider than the terminal and crop none at its edge. ``quickstart`` is tried at 80
columns in test_quickstart."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from cli_runner import stairway
from stairway import context, operations
from stairway.database import dispose_all
from test_truthful_outputs import at_80_columns, lines_at_most_80

LONG = "0007_index_the_orders_of_every_customer_by_status"  # with a phase warning
INDEX = "-- phase: offline\nCREATE INDEX orders_by_status ON orders (customer_id, status);\n"


def identifiers(text: str, catalog: Path) -> set[str]:
    """The change labels and releases named anywhere in ``text``, however it was wrapped."""
    flat = re.sub(r"[\s│┃]+", "", text)  # every line and table border joined up
    names = {path.stem for path in (catalog / "schema").iterdir()}
    names |= set(re.findall(r'version = "([^"]+)"', (catalog / "stairway.toml").read_text()))
    return {name for name in names if name in flat}


def split(text: str, words: set[str]) -> set[str]:
    """The ``words`` that appear on no single line of ``text``."""
    lines = lines_at_most_80(text)
    return {word for word in words if not any(word in line for line in lines)}


@pytest.fixture
def old_site(site_file: Path, shop_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shop at 1.0.0 with a backup directory, in an 80-column terminal; its 2.1.0 has a
    change with a long label and a phase warning."""
    at_80_columns(monkeypatch)
    manifest = shop_catalog / "stairway.toml"
    text = manifest.read_text("utf-8")
    manifest.write_text(text.replace("schema = 6\nrolling = true", "schema = 7"), "utf-8")
    (shop_catalog / "schema" / f"{LONG}.sql").write_text(INDEX, "utf-8")
    text = site_file.read_text()
    site_file.write_text(text.replace("[site]\n", '[site]\nbackup_dir = "backups"\n', 1))
    operations.init(context.open_context(site_file, None), "1.0.0")
    dispose_all()
    return site_file


@pytest.mark.parametrize("command", ["plan", "verify", "status"])
def test_labels_and_releases_stay_whole(old_site: Path, shop_catalog: Path, command: str) -> None:
    code, out, err = stairway(command, "--site", str(old_site))
    assert code == 0, err
    named = identifiers(out, shop_catalog)
    assert "2.1.0" in named and (command == "status" or LONG in named), out
    assert split(out, named) == set(), out


def test_a_phase_warning_is_said_under_its_change_in_words_not_letters(old_site: Path) -> None:
    code, out, err = stairway("plan", "--site", str(old_site))
    assert code == 0, err
    lines = lines_at_most_80(out)
    warned = [i for i, line in enumerate(lines) if line.startswith(f"{LONG}: line 2: warning")]
    assert warned, out
    prose = " ".join(lines[warned[0] :])
    assert "[index-without-concurrently] CREATE INDEX without CONCURRENTLY" in prose
    for word in ("CONCURRENTLY", "blocking", "contract", "offline"):
        assert not any(line.rstrip().endswith(word[:4]) for line in lines), (word, out)


def test_the_next_command_of_status_stays_whole(old_site: Path) -> None:
    code, out, err = stairway("status", "--site", str(old_site))
    assert code == 0, err
    command = orjson.loads(stairway("status", "--json", "--site", str(old_site))[1])["next"]
    assert split(out, set(command["commands"])) == set(), out


def test_backup_ids_stay_whole_beside_each_other(old_site: Path) -> None:
    made = []
    for _ in range(2):
        code, out, err = stairway("backup", "--site", str(old_site), "--json")
        assert code == 0, err
        made.append(orjson.loads(out)["id"])
    code, out, err = stairway("backups", "--site", str(old_site))
    assert code == 0, err
    assert split(out, set(made)) == set(), out
