"""``stairway status`` ends by saying what to run next: finish an interrupted upgrade, put the
schema in order, take a newer release from the catalog or from the last release check, or
nothing; ``--json`` says it as ``next``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from cli_runner import stairway
from stairway import context, operations, release_feed
from stairway.context import backup_dir
from stairway.database import dispose_all
from stairway.journal import Journal
from stairway.next_step import NextStep, Site, next_step
from stairway.release_index import Availability, IndexedRelease
from stairway.site import load_site
from stairway.steps import Step, StepKind
from stairway.versions import Version

LATEST = "2.1.0"  # the shop catalog's newest release


def _status(site: Path) -> tuple[str, dict[str, object]]:
    code, out, err = stairway("status", "--site", str(site))
    assert code == 0, err
    code, said, err = stairway("status", "--site", str(site), "--json")
    assert code == 0, err
    words = " ".join(out.split())  # as said, however the terminal wrapped it
    return "next: " + words.rsplit("next: ", 1)[-1], json.loads(said)["next"]


def _at(site: Path, release: str, backups: bool = False) -> context.Context:
    if backups:
        text = site.read_text()
        site.write_text(text.replace("[site]\n", '[site]\nbackup_dir = "backups"\n', 1))
    ctx = context.open_context(site, None)
    operations.init(ctx, release)
    return ctx


def test_a_site_at_the_newest_release_has_nothing_to_do(site_file: Path) -> None:
    _at(site_file, LATEST)
    dispose_all()
    last, said = _status(site_file)
    assert last == "next: nothing to do (up to date)"
    assert said == {"commands": [], "why": "up to date", "nothing_to_do": True}


def test_a_newer_release_in_the_catalog_is_the_upgrade_to_run(site_file: Path) -> None:
    _at(site_file, "1.0.0")
    dispose_all()
    last, said = _status(site_file)
    assert last == f"next: stairway upgrade --to {LATEST} (the catalog has {LATEST})"
    assert said["commands"] == [f"stairway upgrade --to {LATEST}"]
    assert said["nothing_to_do"] is False


def test_a_newer_release_the_last_check_found_is_fetched_then_taken(site_file: Path) -> None:
    _at(site_file, LATEST)
    dispose_all()
    found = Availability(
        Version(LATEST), IndexedRelease(version="3.0.0"), None, 1, datetime.now(UTC)
    )
    state = release_feed.state_file(load_site(site_file))
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_bytes(orjson.dumps({"seen": {}, "last_check": found.as_json()}))
    last, said = _status(site_file)
    assert last == (
        "next: stairway release fetch 3.0.0, then stairway upgrade --to 3.0.0"
        " (the last release check found 3.0.0)"
    )
    assert said["commands"] == ["stairway release fetch 3.0.0", "stairway upgrade --to 3.0.0"]


@pytest.mark.parametrize(
    ("rolled", "command"), [(False, "stairway upgrade --resume"), (True, "stairway rollback")]
)
def test_an_interrupted_upgrade_comes_first(site_file: Path, rolled: bool, command: str) -> None:
    ctx = _at(site_file, "1.0.0", backups=True)
    journal = Journal(backup_dir(ctx))
    steps = [Step(StepKind.BACKUP), Step(StepKind.SCHEMA, "2.0.0", "1.0.0")]
    journal.start("u1", {"from": "1.0.0", "to": "2.0.0", "steps": [s.as_json() for s in steps]})
    journal.begin(0)
    if rolled:
        journal.record("rollback-begin")
    dispose_all()
    last, said = _status(site_file)
    assert last == f"next: {command} (an upgrade was interrupted)"
    assert said["commands"] == [command]


QUIET = Site("1.0.0", catalog_latest="1.0.0")
WORKER = "stairway background run"


@pytest.mark.parametrize(
    ("site", "commands"),
    [
        (QUIET, ()),
        (Site("1.0.0", interrupted="stairway rollback", drifted=True), ("stairway rollback",)),
        (Site("1.0.0", drifted=True, pending=True), ("stairway repair",)),
        (Site("1.0.0", pending=True, catalog_latest="2.0.0"), ("stairway migrate",)),
        (Site("1.0.0", unknown=True, catalog_latest="2.0.0"), ()),
        (Site(None, catalog_latest="2.0.0"), ("stairway init 2.0.0",)),
        (Site(None, unadopted=True, catalog_latest="2.0.0"), ()),
        (Site("1.0", catalog_latest="1.1", index_newest="2.0"), ("stairway upgrade --to 1.1",)),
        (Site("2.0.0", catalog_latest="2.0.0", index_newest="1.5.0"), ()),
        (Site("2.0.0", catalog_latest="2.1.0", background=(WORKER,)), (WORKER,)),
        (Site("2.0.0", pending=True, background=(WORKER,)), ("stairway migrate",)),
    ],
)  # fmt: skip
def test_the_most_urgent_step_comes_first(site: Site, commands: tuple[str, ...]) -> None:
    step = next_step(site)
    assert step.commands == commands
    assert step.done == (site == QUIET or site.index_newest == "1.5.0")
    assert step.describe().startswith("next: ") and step.why in step.describe()


def test_a_step_without_a_command_says_what_to_do_instead_of_nothing() -> None:
    unknown = next_step(Site("1.0.0", unknown=True))
    assert not unknown.done and "nothing to do" not in unknown.describe()
    assert NextStep((), "up to date", True).describe() == "next: nothing to do (up to date)"
