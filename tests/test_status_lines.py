"""``stairway status`` says what is under way on a site: an interrupted upgrade (where it stopped
and what to run), background migrations, and the agents of its control plane by release."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import insert

from cli_runner import stairway
from stairway import context, operations
from stairway.context import backup_dir
from stairway.database import dispose_all
from stairway.fleet.tables import agents_table, ensure_tables
from stairway.fleet.tokens import now
from stairway.journal import Journal
from stairway.steps import Step, StepKind
from test_background import fill, items_site


def with_backups(site: Path) -> Path:
    text = site.read_text()
    site.write_text(text.replace("[site]\n", '[site]\nbackup_dir = "backups"\n', 1))
    return site


def status(site: Path) -> tuple[str, dict[str, object]]:
    code, out, err = stairway("status", "--site", str(site))
    assert code == 0, err
    code, said, err = stairway("status", "--site", str(site), "--json")
    assert code == 0, err
    return " ".join(out.split()), json.loads(said)  # the lines as said, whatever the width


def test_a_quiet_site_says_nothing_of_upgrades_or_agents(site_file: Path) -> None:
    operations.init(context.open_context(site_file, None), "1.0.0")
    dispose_all()
    out, said = status(site_file)
    assert "interrupted" not in out and "agents" not in out
    assert said["interrupted_upgrade"] is None and said["agents"] is None


def test_an_interrupted_upgrade_is_shown_with_its_step_and_what_to_run(
    site_file: Path,
) -> None:
    with_backups(site_file)
    ctx = context.open_context(site_file, None)
    operations.init(ctx, "1.0.0")
    steps = [Step(StepKind.BACKUP), Step(StepKind.SCHEMA, "2.0.0", "1.0.0"), Step(StepKind.START)]
    journal = Journal(backup_dir(ctx))
    record = {"from": "1.0.0", "to": "2.0.0", "steps": [s.as_json() for s in steps]}
    journal.start("shop-1.0.0-to-2.0.0-x", record)
    journal.begin(0)
    journal.done(0)
    journal.begin(1)
    dispose_all()
    out, said = status(site_file)
    assert "upgrade shop-1.0.0-to-2.0.0-x was interrupted at step 2 of 3: schema" in out
    assert "`stairway upgrade --resume` finishes it, `stairway rollback` undoes it" in out
    assert said["interrupted_upgrade"] == {
        "upgrade_id": "shop-1.0.0-to-2.0.0-x",
        "at": "step 2 of 3: schema 1.0.0 -> 2.0.0",
        "settle": "`stairway upgrade --resume` finishes it, `stairway rollback` undoes it",
    }


def test_a_rollback_under_way_says_to_finish_the_rollback(site_file: Path) -> None:
    with_backups(site_file)
    ctx = context.open_context(site_file, None)
    operations.init(ctx, "1.0.0")
    journal = Journal(backup_dir(ctx))
    journal.start("u1", {"from": "1.0.0", "to": "2.0.0", "steps": [Step(StepKind.STOP).as_json()]})
    journal.begin(0)
    journal.record("rollback-begin")
    dispose_all()
    out, _ = status(site_file)
    assert "its rollback was under way: `stairway rollback` finishes it" in out


def test_running_background_migrations_are_listed(tmp_path: Path, sqlite_database: str) -> None:
    site = items_site(tmp_path, sqlite_database, batch=10)
    fill(site, 30)
    out, said = status(site)
    assert "background migration 0002_double: queued, 0% done" in out
    assert [job["change"] for job in said["background"]] == ["0002_double"]  # type: ignore[union-attr]


def test_the_agents_are_counted_by_release(site_file: Path, database_url: str) -> None:
    ctx = context.open_context(site_file, None)
    operations.init(ctx, "1.0.0")
    with ctx.engine.begin() as conn:
        ensure_tables(conn)
        agents = [("a", "1.0.0", True), ("b", "2.0.0", True), ("c", "2.0.0", False)]
        agents += [("d", None, False), ("e", "10.0.0", True)]
        for agent, version, on in agents:
            row = {"agent_id": agent, "version": version, "state": "online", "connected": on}
            conn.execute(insert(agents_table).values(**row, message="", enrolled=now().isoformat()))
    dispose_all()
    out, said = status(site_file)
    assert (
        "agents by version: not heard from: 1 (0 connected), 1.0.0: 1 (1 connected), "
        "2.0.0: 2 (1 connected), 10.0.0: 1 (1 connected)"
    ) in out
    assert said["agents"][2] == {"version": "2.0.0", "enrolled": 2, "connected": 1}  # type: ignore[index]


def test_a_control_plane_with_no_agent_says_none_enrolled(site_file: Path) -> None:
    ctx = context.open_context(site_file, None)
    operations.init(ctx, "1.0.0")
    with ctx.engine.begin() as conn:
        ensure_tables(conn)
    dispose_all()
    out, said = status(site_file)
    assert "agents by version: none enrolled" in out and said["agents"] == []
