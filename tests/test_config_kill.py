"""A config-file migration killed with SIGKILL leaves every file whole, and a rerun finishes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stairway import context, operations

CATALOG = Path(__file__).parent / "catalogs" / "people"
FILES = 150
ORIGINAL = "# instance {n}\n[server]\nport = {n}  # kept\nlegacy_ui = true\n"
MIGRATED = '# instance {n}\n[server]\nlisten_port = {n}  # kept\n\n[sessions]\nstore = "redis"\n'


@pytest.fixture
def site(tmp_path: Path, sqlite_database: str) -> Path:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    text = (
        (catalog / "config.toml")
        .read_text("utf-8")
        .replace('file = "app.toml"', 'file = "app-*.toml"')
    )
    (catalog / "config.toml").write_text(text, "utf-8")
    etc = tmp_path / "etc"
    etc.mkdir()
    for n in range(FILES):
        (etc / f"app-{n:03d}.toml").write_text(ORIGINAL.format(n=n), "utf-8")
    files = ", ".join(f'"etc/app-{n:03d}.toml"' for n in range(FILES))
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "{sqlite_database}"\ncatalog = "{catalog}"\n'
        f"config_files = [{files}]\n",
        "utf-8",
    )
    operations.init(context.open_context(path, None), "1.0.0")
    return path


def run(site: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "stairway", "config", "migrate", "--to", "3.0.0"]
    return subprocess.Popen(
        [*command, "--site", str(site)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def states(etc: Path) -> list[str]:
    """For each file: 'old' or 'new'; anything else fails the test."""
    found = []
    for n in range(FILES):
        text = (etc / f"app-{n:03d}.toml").read_text("utf-8")
        assert text in (ORIGINAL.format(n=n), MIGRATED.format(n=n)), f"app-{n:03d} is torn"
        found.append("old" if text == ORIGINAL.format(n=n) else "new")
        copy = etc / f"app-{n:03d}.toml.before-3.0.0"
        if copy.exists():
            assert copy.read_text("utf-8") == ORIGINAL.format(n=n), "the kept copy is the original"
    return found


def kill_after(site: Path, copies: int) -> None:
    """Start a run and SIGKILL it once ``copies`` originals have been kept: mid-way, for sure."""
    etc = site.parent / "etc"
    child = run(site)
    deadline = time.monotonic() + 60
    while len(list(etc.glob("*.before-3.0.0"))) < copies and child.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.002)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()


def test_a_killed_config_migration_leaves_whole_files_and_a_rerun_finishes(site: Path) -> None:
    etc = site.parent / "etc"
    kill_after(site, 10)
    first = states(etc)
    assert 0 < first.count("new") < FILES, "the kill must land mid-way"
    kill_after(site, first.count("new") + 20)
    second = states(etc)
    assert first.count("new") <= second.count("new") < FILES
    finished = run(site)
    assert finished.wait(timeout=120) == 0
    assert states(etc) == ["new"] * FILES
    assert not list(etc.glob(".*.tmp")), "no temporary file is left behind"
