"""What the operator's screens say is what ran: a rehearsal's report names the path its steps
walked and the backup it restored; ``plan`` and ``verify`` agree on rolling safety; ids stay
whole at 80 columns; the web UI shows an error as an error."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from cli_runner import stairway
from stairway import context, operations
from stairway.database import dispose_all
from stairway.upgrade import upgrade
from test_upgrade import build_site


@pytest.fixture
def no_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rehearsal without the estimate it is shown against: calibrating one takes seconds."""
    monkeypatch.setattr("stairway.report.documents.predicted", lambda *_: None)


def test_a_rehearsal_after_an_upgrade_rehearses_from_the_live_release_and_says_so(
    tmp_path: Path, sqlite_database: str, no_estimate: None
) -> None:
    site = build_site(tmp_path, sqlite_database, service=False)
    upgrade(context.open_context(site, None), "2.0.0")
    dispose_all()
    stale = operations.backups(context.open_context(site, None))[-1].manifest
    assert stale.version == "1.0.0", "the upgrade's own backup is taken before it"
    report = tmp_path / "rehearsal.html"
    code, out, err = stairway(
        "rehearse", "--to", "3.0.0", "--json", "--report", str(report), "--site", str(site)
    )
    assert code == 0, err
    said = orjson.loads(out)
    assert said["backup"] != stale.id and said["backup_taken"]
    assert said["backup_release"] == "2.0.0" and said["path"] == ["2.0.0", "3.0.0"]
    assert "1.0.0" in said["backup_reason"] and stale.id in said["backup_reason"]
    steps = [s["step"] for s in said["steps"]]
    assert "schema 2.0.0 -> 3.0.0" in steps and not any("1.0.0 ->" in s for s in steps)
    html = report.read_text()
    assert "people 2.0.0 → 3.0.0: rehearsal" in html and "rehearsed 2.0.0 → 3.0.0" in html
    assert "Backup taken" not in html
    assert f"Restored backup <code>{said['backup']}</code> (release 2.0.0" in html
    markdown = report.with_suffix(".md").read_text()
    assert "Path: 2.0.0 → 3.0.0" in markdown


def test_a_rehearsal_reuses_a_backup_of_the_live_release_and_names_it(
    tmp_path: Path, sqlite_database: str, no_estimate: None
) -> None:
    site = build_site(tmp_path, sqlite_database, service=False)
    code, out, err = stairway("backup", "--json", "--site", str(site))
    assert code == 0, err
    latest = orjson.loads(out)["id"]
    code, out, err = stairway("rehearse", "--to", "2.0.0", "--site", str(site))
    assert code == 0, err
    said = " ".join(out.split())
    assert f"rehearsed 1.0.0 -> 2.0.0 from backup {latest} (release 1.0.0)" in said
