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
    assert "fresh backup" in said["backup_reason"]
    refusals = ((stale.id, f"backup {stale.id} holds 1.0.0 at schema level"), ("x", "no backup x"))
    for named, why in refusals:
        code, out, err = stairway("rehearse", "--from-backup", named, "--site", str(site))
        assert code == 2 and f"error: {why}" in err, err
        assert "hint:" in err and "Traceback" not in err
    steps = [s["step"] for s in said["steps"]]
    assert "schema 2.0.0 -> 3.0.0" in steps and not any("1.0.0 ->" in s for s in steps)
    html = report.read_text()
    assert "people 2.0.0 → 3.0.0: rehearsal" in html and "rehearsed 2.0.0 → 3.0.0" in html
    assert "Backup taken" not in html
    assert f"Restored backup <code>{said['backup']}</code> (release 2.0.0" in html
    markdown = report.with_suffix(".md").read_text()
    assert "Path: 2.0.0 → 3.0.0" in markdown


def test_a_rehearsal_from_a_chosen_backup_of_the_live_release_names_it(
    tmp_path: Path, sqlite_database: str, no_estimate: None
) -> None:
    site = build_site(tmp_path, sqlite_database, service=False)
    code, out, err = stairway("backup", "--json", "--site", str(site))
    assert code == 0, err
    latest = orjson.loads(out)["id"]
    args = ("rehearse", "--to", "2.0.0", "--from-backup", latest, "--site", str(site))
    code, out, err = stairway(*args)
    assert code == 0, err
    said = " ".join(out.split())
    assert f"rehearsed 1.0.0 -> 2.0.0 from backup {latest} (release 1.0.0)" in said


def shop_with_a_2_1_0_change(
    site_file: Path, catalog: Path, phase: str, name: str = "0007_drop_email"
) -> None:
    """The shop at 2.0.0, its 2.1.0 (marked rolling) given a change 0007 of ``phase``."""
    manifest = catalog / "stairway.toml"
    said = manifest.read_text("utf-8")
    manifest.write_text(said.replace("schema = 6\nrolling = true", "schema = 7\nrolling = true"))
    change = f"-- phase: {phase}\nALTER TABLE customers DROP COLUMN email;\n"
    (catalog / "schema" / f"{name}.sql").write_text(change, "utf-8")
    operations.init(context.open_context(site_file, None), "2.0.0")
    dispose_all()


def rolling_as_said(site_file: Path) -> tuple[dict[str, object], list[dict[str, object]]]:
    """What ``plan`` and ``verify`` say of the upgrade to 2.1.0, as JSON."""
    code, out, err = stairway("plan", "--to", "2.1.0", "--json", "--site", str(site_file))
    assert code == 0, err
    plan = orjson.loads(out)
    code, out, err = stairway("verify", "--to", "2.1.0", "--json", "--site", str(site_file))
    assert code == 0, err
    return plan, orjson.loads(out)["findings"]


def test_plan_and_verify_agree_a_path_with_an_offline_change_is_not_rolling_safe(
    site_file: Path, shop_catalog: Path
) -> None:
    shop_with_a_2_1_0_change(site_file, shop_catalog, "offline")
    plan, findings = rolling_as_said(site_file)
    assert plan["rolling_safe"] is False and plan["blocking_rolling"] == ["0007_drop_email"]
    warned = [f for f in findings if f["severity"] == "warning" and f["topic"] == "schema"]
    assert [f["message"] for f in warned] == [
        "rolling-safe: no (these changes need the product stopped: 0007_drop_email [offline])"
    ]
    code, out, _ = stairway("plan", "--to", "2.1.0", "--rolling", "--site", str(site_file))
    assert code == 3 and "rolling-safe: no (these changes need the product stopped" in out


def test_plan_and_verify_agree_a_deferred_contract_change_keeps_the_path_rolling_safe(
    site_file: Path, shop_catalog: Path
) -> None:
    shop_with_a_2_1_0_change(site_file, shop_catalog, "contract")
    plan, findings = rolling_as_said(site_file)
    assert plan["rolling_safe"] is True and plan["blocking_rolling"] == []
    schema = [f for f in findings if f["topic"] == "schema"]
    assert not [f for f in schema if f["severity"] != "info"], schema
    said = "rolling-safe: yes (0007_drop_email deferred until no older instance is left)"
    assert said in [f["message"] for f in schema]
    code, out, _ = stairway("plan", "--to", "2.1.0", "--site", str(site_file))
    assert code == 0 and said in " ".join(out.split())


LONG = "0007_drop_the_email_address_of_every_customer"


def whole_on_one_line(text: str, word: str) -> bool:
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, "drawn wider than 80 columns"
    return any(word in line for line in lines)


def test_plan_and_verify_keep_a_change_label_whole_at_80_columns(
    site_file: Path, shop_catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stairway.options import out

    monkeypatch.setattr(out, "_width", 80)
    shop_with_a_2_1_0_change(site_file, shop_catalog, "offline", LONG)
    for command in ("plan", "verify"):
        code, said, err = stairway(command, "--to", "2.1.0", "--site", str(site_file))
        assert code == 0, err
        assert whole_on_one_line(said, LONG), said
        assert f"{LONG} [offline]" in said, "a phase in brackets is text, not markup"
