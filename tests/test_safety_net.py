"""The running service is part of the state: rollback and restore stop the product and show it
down before swapping anything, then start the old release and check that it serves what the
database holds. Against the example product with its real service, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from example_sites import ExampleSite, ExampleSites, example_sites
from stairway.quickstart import demo_catalog


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def sites(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExampleSites]:
    yield from example_sites(request, tmp_path_factory)


@pytest.fixture
def site(sites: ExampleSites, request: pytest.FixtureRequest) -> Iterator[ExampleSite]:
    made = sites.new(request.node.name.replace("[", "-").rstrip("]"))
    yield made
    made.stop()


def _edit(site: ExampleSite, old: str, new: str) -> None:
    text = site.site.read_text("utf-8")
    assert old in text
    site.site.write_text(text.replace(old, new), "utf-8")


def _failing_smoke_catalog(site: ExampleSite) -> None:
    catalog = site.root / "catalog"
    shutil.copytree(demo_catalog(), catalog, ignore=shutil.ignore_patterns("__pycache__"))
    with (catalog / "stairway.toml").open("a", encoding="utf-8") as out:
        out.write('\n[[smoke]]\nname = "never true"\nquery = "SELECT 1"\nexpect = 2\n')
    _edit(site, f'catalog = "{demo_catalog()}"', f'catalog = "{catalog}"')


def _backup(site: ExampleSite) -> str:
    taken = site.cli("backup", "--json")
    assert taken.returncode == 0, taken.stderr
    return str(orjson.loads(taken.stdout)["id"])


def _serving(site: ExampleSite) -> tuple[str, int]:
    said = site.health()
    assert said is not None, "the product does not answer"
    assert said["maintenance"] is False
    return str(said["release"]), int(said["schema"])


def test_a_failed_smoke_check_leaves_the_old_release_serving_the_restored_database(
    site: ExampleSite,
) -> None:
    _failing_smoke_catalog(site)
    before = site.state()
    done = site.cli("upgrade", "--to", "2.0.0")
    assert done.returncode == 1, done.stderr
    assert "Rolled back" in done.stderr and "Traceback" not in done.stderr
    assert site.state() == before
    assert _serving(site) == ("1.0.0", 3), "the old release serves the restored database"
    assert site.stale_holders() == [], "no process holds a replaced database file"
    pid = int((site.root / "identity-sync.pid").read_text())
    assert b"identity_sync" in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_restore_stops_the_product_and_starts_the_release_the_backup_holds(
    site: ExampleSite,
) -> None:
    backup_id = _backup(site)
    before = site.state()
    assert site.cli("upgrade", "--to", "2.0.0").returncode == 0
    assert _serving(site) == ("2.0.0", 8)
    restored = site.cli("restore", backup_id, "--yes")
    assert restored.returncode == 0, restored.stderr
    after = {k: v for k, v in site.state().items() if ".before-" not in k}  # kept originals
    assert after == before
    assert _serving(site) == ("1.0.0", 3)
    assert site.stale_holders() == []


def test_restore_swaps_nothing_under_a_product_that_does_not_stop(site: ExampleSite) -> None:
    backup_id = _backup(site)
    stop = f'stop = "{sys.executable} -m stairway.examples.identity_sync stop --site {site.site}"'
    _edit(site, stop, 'stop = "/bin/true"\nstop_timeout = 2')
    before = site.state()
    refused = site.cli("restore", backup_id, "--yes")
    assert refused.returncode == 3, refused.stderr
    assert "still up" in refused.stderr and "Traceback" not in refused.stderr
    assert "still answers" in refused.stderr
    if site.database.startswith("sqlite"):
        assert f"pid {(site.root / 'identity-sync.pid').read_text()}" in refused.stderr
    assert site.state() == before, "nothing was swapped"
    assert _serving(site) == ("1.0.0", 3)


def test_an_old_process_still_answering_fails_the_upgrade_instead_of_passing_for_the_new(
    site: ExampleSite,
) -> None:
    """Started by hand, outside the runner: stop cannot end it and the upgrade must not
    report success while the old release answers."""
    site.stop()
    port = str(site.port)
    serve = [sys.executable, "-m", "stairway.examples.identity_sync", "serve"]
    by_hand = subprocess.Popen(
        [*serve, "--site", str(site.site), "--port", port],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(100):
            if site.health() is not None:
                break
            time.sleep(0.1)
        start = f'start = "{sys.executable} -m stairway.examples.identity_sync start'
        _edit(site, start, 'stop_timeout = 2\nstart = "' + start.split('"', 1)[1])
        before = site.state()
        done = site.cli("upgrade", "--to", "2.0.0")
        assert done.returncode == 1, done.stderr
        assert "still answers" in done.stderr and "Rolled back" in done.stderr
        assert site.state() == before
        assert _serving(site) == ("1.0.0", 3)
    finally:
        by_hand.terminate()
        by_hand.wait(10)
        os.environ.pop("STAIRWAY_FAULT", None)


@pytest.mark.parametrize("point", ["between:data-swap", "after:db-swap", "after:config-swap#1"])
def test_a_restore_killed_while_it_swaps_is_finished_by_running_it_again(
    site: ExampleSite, point: str
) -> None:
    backup_id = _backup(site)
    before = site.state()
    assert site.cli("upgrade", "--to", "2.0.0").returncode == 0
    killed = site.cli("restore", backup_id, "--yes", fault=point)
    assert killed.returncode == -9
    refused = site.cli("upgrade", "--to", "2.0.0")
    assert refused.returncode == 2 and f"stairway restore {backup_id} --yes" in refused.stderr
    again = site.cli("restore", backup_id, "--yes")
    assert again.returncode == 0, again.stderr
    assert {k: v for k, v in site.state().items() if ".before-" not in k} == before
    assert _serving(site) == ("1.0.0", 3)
    assert site.stale_holders() == []
    # the upgrade's entry, written after the backup, is carried over by the restore run again,
    # though the first run had already swapped the live log away
    entries = orjson.loads(site.cli("audit", "show", "--json").stdout)
    carried = [e["action"] for e in entries if "carried" in e["data"]]
    assert "site.upgrade" in carried, [e["action"] for e in entries]
    assert site.cli("audit", "verify").returncode == 0
