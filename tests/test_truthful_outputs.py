"""What commands say is what is so: an unknown release is an error everywhere, a delta that
needs a hand is shown before and after an upgrade, every command speaks JSON, counts agree,
estimates admit what they do not know, and ids survive a narrow terminal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
import typer
from sqlalchemy import inspect, text

from cli_runner import stairway
from stairway import audit, context, operations
from stairway.cli import app
from stairway.database import dispose_all
from test_upgrade import build_site, stairway_stop

TARGETED = [
    ("plan",),
    ("plan", "--estimate"),
    ("verify",),
    ("migrate",),
    ("migrate", "--dry-run"),
    ("config", "migrate"),
    ("config", "migrate", "--dry-run"),
    ("rehearse",),
    ("upgrade",),
    ("licence", "check"),
    ("notes",),
    ("test-paths",),
]


Path_ = tuple[str, ...]


def _commands(group: Any, prefix: Path_ = ()) -> dict[Path_, click.Command]:
    found: dict[Path_, click.Command] = {}
    for name, command in group.commands.items():
        found[(*prefix, name)] = command
        if getattr(command, "commands", None):  # a group (typer's own click may differ)
            found.update(_commands(command, (*prefix, name)))
    return found


def every_command() -> dict[tuple[str, ...], click.Command]:
    return _commands(typer.main.get_group(app))


def runs_itself(command: click.Command) -> bool:
    """A command, or a group that does something without a subcommand (`export`)."""
    return not getattr(command, "commands", None) or bool(
        getattr(command, "invoke_without_command", False)
    )


def options(command: click.Command) -> set[str]:
    return {name for p in command.params for name in p.opts}


# `--to` of these names something other than a release: `plugin rollback --to` a plug-in's
# version (tests/test_plugins.py tries an unknown one).
NOT_A_RELEASE = {("plugin", "rollback")}


def test_every_command_that_takes_a_target_is_tried_here() -> None:
    taking = {path for path, c in every_command().items() if "--to" in options(c)} - NOT_A_RELEASE
    assert taking == {t[:2] if t[0] in ("config", "licence") else t[:1] for t in TARGETED}


@pytest.mark.parametrize("words", TARGETED, ids=" ".join)
def test_an_unknown_target_release_is_an_error_naming_the_known_ones(
    site_file: Path, words: tuple[str, ...]
) -> None:
    operations.init(context.open_context(site_file, None), "1.0.0")
    code, out, err = stairway(*words, "--to", "9.9.9", "--site", str(site_file))
    assert code == 2, out + err
    assert "no release 9.9.9" in err and "1.0.0, 1.0.4, 1.1.0, 2.0.0, 2.1.0" in err
    assert "pass one of the known releases to --to" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("words", [("notes",), ("config", "migrate", "--dry-run")], ids=" ".join)
def test_an_unknown_starting_release_is_an_error_too(
    site_file: Path, words: tuple[str, ...]
) -> None:
    operations.init(context.open_context(site_file, None), "1.0.0")
    code, _, err = stairway(*words, "--from", "0.9", "--site", str(site_file))
    assert code == 2 and "no release 0.9" in err and "--from" in err


@pytest.fixture
def people_site(tmp_path: Path, database_url: str) -> Iterator[Path]:
    site = build_site(tmp_path, database_url)
    yield site
    stairway_stop(site)


def test_a_delta_an_operator_changed_is_shown_by_verify_and_the_upgrade_exits_3(
    people_site: Path,
) -> None:
    ctx = context.open_context(people_site, None)
    with ctx.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE objects SET data = :d WHERE oid = 'policy-password'",
            ),
            {"d": orjson.dumps({"name": "Password policy", "minLength": 10}).decode()},
        )
    dispose_all()
    site = str(people_site)
    skip = 'stairway deltas skip policy-password-2.0 --reason "..."'

    code, out, err = stairway("verify", "--to", "3.0.0", "--site", site, "--json")
    assert code == 0, err
    found = orjson.loads(out)
    [said] = found["needs_operator"]
    [hint] = [f["hint"] for f in found["findings"] if f["needs_hand"]]
    assert skip in hint and "stairway deltas apply" in hint
    assert said.startswith("delta policy-password-2.0 will need an operator")
    assert said.endswith("minLength is 10, the release shipped 8")
    code, out, err = stairway("verify", "--to", "3.0.0", "--site", site)
    flat = " ".join(out.split())
    assert "1 item(s) above will need an operator" in flat

    code, out, err = stairway("rehearse", "--to", "3.0.0", "--site", site)
    said = " ".join(err.split())
    assert code == 3, out + err
    assert "the rehearsed upgrade to 3.0.0 works, but it leaves 1 item(s)" in said
    assert skip in said and "the live site was not touched" in said
    dispose_all()

    code, out, err = stairway("upgrade", "--to", "3.0.0", "--site", site)
    said = " ".join(err.split())
    assert code == 3, out + err
    assert "upgraded 1.0.0 -> 3.0.0" in out
    assert "the upgrade to 3.0.0 is complete and kept, but 1 item(s)" in said
    assert "delta policy-password-2.0: " in said
    assert "minLength is 10, the release shipped 8" in said
    assert skip in said
    assert str(context.current_version(context.open_context(people_site, None))) == "3.0.0"
    dispose_all()
    code, _, err = stairway("deltas", "apply", "--site", site)
    assert code == 3 and skip in " ".join(err.split()), "deltas apply names the id to skip"


def test_an_upgrade_in_json_that_leaves_a_config_item_exits_3_and_says_so(
    people_site: Path,
) -> None:
    app_toml = people_site.parent / "etc" / "app.toml"
    app_toml.write_text("[server]\nport = 8080\nlisten_port = 9090\n", "utf-8")  # both keys
    code, out, err = stairway("upgrade", "--to", "3.0.0", "--site", str(people_site), "--json")
    assert code == 3, out + err
    report = orjson.loads(out)
    assert report["needs_operator"] is True
    [item] = [i for i in report["attention"] if "server.port" in i["reason"]]
    assert item["what"] == f"config file {app_toml}" and "both" in item["reason"]
    assert item["command"] == f"edit {app_toml} by hand as described"
    dispose_all()


WITHOUT_JSON = {("quickstart",), ("serve",), ("agent", "run"), ("secrets", "get")}


def test_every_command_takes_json_but_those_the_readme_names() -> None:
    runnable = {p: c for p, c in every_command().items() if runs_itself(c)}
    lacking = {path for path, c in runnable.items() if "--json" not in options(c)}
    assert lacking == WITHOUT_JSON
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text("utf-8").split())
    for path in WITHOUT_JSON:
        assert f"`{' '.join(path)}`" in readme


def test_notes_audit_verify_and_deltas_skip_speak_json(site_file: Path) -> None:
    operations.init(context.open_context(site_file, None), "1.0.0")
    code, out, err = stairway("notes", "--to", "2.0.0", "--site", str(site_file), "--json")
    assert code == 0, err
    notes = orjson.loads(out)
    assert notes["markdown"].startswith("# shop 1.0.0 → 2.0.0") and notes["written"] is None
    code, out, err = stairway("audit", "verify", "--site", str(site_file), "--json")
    assert code == 0, err
    nothing_signed = {"anchored": False, "checkpoint": None, "key": None}
    assert orjson.loads(out) == {"whole": True, "entries": 0, "problems": []} | nothing_signed
    code, out, err = stairway("licence", "check", "--site", str(site_file), "--json")
    assert code == 0 and orjson.loads(out) == {"version": "1.0.0", "findings": []}, err


def test_export_and_export_verify_count_the_same_chunks(tmp_path: Path, people_site: Path) -> None:
    ctx = context.open_context(people_site, None)
    with ctx.engine.begin() as conn:
        audit.append(conn, "test.entry", {"n": 1})
    dispose_all()
    target = tmp_path / "site.export.zst"
    code, out, err = stairway("export", "--out", str(target), "--site", str(people_site))
    assert code == 0, err
    said = " ".join(out.split())
    objects = len(exported(target))
    assert f"exported {objects:,} objects and 1 audit entry in 2 chunks to" in said
    code, out, err = stairway("export", "verify", str(target))
    assert code == 0, err
    assert f"{objects:,} objects and 1 audit entry in 2 chunks" in " ".join(out.split())
    code, out, _ = stairway("export", "verify", str(target), "--json")
    assert orjson.loads(out)["chunks"] == 2


def exported(path: Path) -> list[bytes]:
    from test_export import exported_ids

    return [i.encode() for i in exported_ids(path)]


def test_an_estimate_with_steps_without_a_basis_does_not_pretend_a_total(
    site_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_80_columns(monkeypatch)
    operations.init(context.open_context(site_file, None), "1.0.0")
    code, out, err = stairway("plan", "--estimate", "--to", "2.0.0", "--site", str(site_file))
    assert code == 0, err
    assert any("0004_backfill_email " in line for line in lines_at_most_80(out))
    said = " ".join(out.split())
    assert "s in all" not in said
    assert "predicted: total unknown:" in said and "start, health" in said
    assert "a partial sum and not the upgrade's time" in said
    code, out, err = stairway(
        "plan", "--estimate", "--to", "2.0.0", "--site", str(site_file), "--json"
    )
    found = orjson.loads(out)
    assert found["total_s"] is None and found["downtime_s"] is None
    assert {"stop", "start", "health"} <= set(found["unknown_steps"])
    assert found["known_s"] >= 0
    unknown = [s for s in found["steps"] if s["step"] in found["unknown_steps"]]
    assert all(s["seconds"] is None and s["basis"] == "unknown" for s in unknown)


def at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from stairway.options import out

    monkeypatch.setattr(out, "_width", 80)


def lines_at_most_80(text: str) -> list[str]:
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, "the table was drawn wider than 80 columns"
    drawn = [line.rstrip() for line in lines if line[:1] in BORDERS]
    assert all(line[-1] in BORDERS for line in drawn), "a table cropped at the right edge"
    return lines


BORDERS = "┏┃┡│└┌├┗"  # the first character of a Rich table's lines
BORDERS += "┓┃┩│┘┐┤┛"  # and the last


def test_backup_ids_stay_whole_at_80_columns(
    people_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_80_columns(monkeypatch)
    site = str(people_site)
    code, out, err = stairway("backup", "--site", site, "--json")
    assert code == 0, err
    backup_id = orjson.loads(out)["id"]
    assert len(backup_id) > 20
    code, out, err = stairway("backups", "--site", site)
    assert code == 0, err
    assert any(backup_id in line for line in lines_at_most_80(out)), out


def test_status_keeps_change_labels_whole_and_strict_exits_3_on_drift(
    site_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_80_columns(monkeypatch)
    operations.init(context.open_context(site_file, None), "1.0.0")
    code, _, err = stairway("status", "--strict", "--site", str(site_file))
    assert code == 0, err
    schema = site_file.parent / "catalog" / "schema"  # the fixture's private copy
    old = schema / "0002_orders.sql"
    old.write_text(old.read_text("utf-8").replace("DEFAULT 0", "DEFAULT 1"), "utf-8")
    code, out, err = stairway("status", "--site", str(site_file))
    assert code == 0, "without --strict, status only reports"
    assert any("0002_orders:" in line for line in lines_at_most_80(out)), out
    code, out, err = stairway("status", "--strict", "--site", str(site_file), "--json")
    assert code == 3 and orjson.loads(out)["drifted"], err
    said = " ".join(err.split())
    assert "drifted: 0002_orders: file changed since it was applied" in said
    assert "stairway repair" in said


def test_init_at_an_unknown_release_names_the_known_ones(site_file: Path) -> None:
    code, _, err = stairway("init", "--version", "7.0", "--site", str(site_file))
    assert code == 2 and "--version 7.0" in err and "known releases: 1.0.0, 1.0.4" in err
    assert "pass one of the known releases to --version" in err


def test_verify_judges_deltas_without_creating_their_log(people_site: Path) -> None:
    ctx = context.open_context(people_site, None)
    with ctx.engine.begin() as conn:
        conn.execute(text("DROP TABLE stairway_deltas"))
    dispose_all()
    code, out, err = stairway("verify", "--to", "3.0.0", "--site", str(people_site), "--json")
    assert code == 0, err
    assert orjson.loads(out)["needs_operator"] == []
    ctx = context.open_context(people_site, None)
    with ctx.engine.connect() as conn:
        assert not inspect(conn).has_table("stairway_deltas"), "verify only reads"
    dispose_all()


def test_items_left_for_an_operator_are_read_from_old_and_new_journal_records() -> None:
    from stairway.handwork import HandItem, delta_item, left_for_operator, recorded

    new = {"reported": ["d1"], "hand": [delta_item("d1", "x is 3").as_json()]}
    old = {"reported": ["d2"]}  # written before each item carried its reason
    items = recorded([new, old, {"changed": []}])
    assert [i.what for i in items] == ["delta d1", "delta d2"]
    assert items[0] == HandItem("delta d1", "x is 3", items[0].command)
    assert 'stairway deltas skip d2 --reason "..."' in items[1].command and items[1].reason
    error = left_for_operator("3.0.0", items)
    assert error.exit_code == 3 and "complete and kept" in error.message
    assert "stairway deltas skip d1" in error.hint and "stairway deltas skip d2" in error.hint
