"""The audit log outlives a restore: entries written after the backup are carried over into the
restored log, marked and chained on, on SQLite and PostgreSQL; a live log that cannot be read
does not stop the restore, which says what it could not keep."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from cli_runner import stairway
from stairway import audit, audit_carry, context, operations
from stairway.backup import BackupManifest
from stairway.database import dispose_all
from test_upgrade import build_site, stairway_stop

LATER = [
    ("site.upgrade", {"upgrade": "u-1", "from": "1.0.0", "to": "2.0.0"}, "stairway"),
    ("agent.upgrade_run", {"agent": "relay-a"}, "policy"),
    ("secret.set", {"name": "smtp", "note": "é"}, "ops"),
]


@pytest.fixture
def quiet_site(tmp_path: Path, database_url: str) -> Path:
    """A people site without a service: restore and audit need no running product."""
    return build_site(tmp_path, database_url, service=False)


def write(site: Path, items: list[tuple[str, dict[str, object], str]]) -> None:
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        for action, data, actor in items:
            audit.append(conn, action, data, actor=actor)
    dispose_all()


def logged(site: Path) -> list[audit.Entry]:
    with context.open_context(site, None).engine.connect() as conn:
        found = audit.entries(conn)
    dispose_all()
    return found


def test_entries_written_after_the_backup_are_carried_over_and_the_chain_is_whole(
    quiet_site: Path,
) -> None:
    write(quiet_site, [("secret.set", {"name": "db"}, "ops")])
    taken = operations.backup(context.open_context(quiet_site, None))
    assert taken.manifest.audit_head is not None and taken.manifest.audit_head.id == 1
    write(quiet_site, LATER)
    originals = logged(quiet_site)

    code, _, err = stairway("restore", taken.id, "--yes", "--site", str(quiet_site))
    assert code == 0, err
    found = logged(quiet_site)
    assert [e.action for e in found] == [
        "secret.set",
        "site.upgrade",
        "agent.upgrade_run",
        "secret.set",
        "site.restore",
    ]
    assert found[0] == originals[0], "the backup's own entry is as it was"
    for copy, original in zip(found[1:4], originals[1:4], strict=True):
        assert copy.actor == original.actor and copy.action == original.action
        mark = copy.data.pop("carried")
        assert copy.data == original.data
        assert mark == {"id": original.id, "at": original.at, "hash": original.hash}
    assert found[4].data["carried_over"] == 3 and found[4].data["since"] == "entry 1"
    assert found[4].data["backup"] == taken.id and "warning" not in found[4].data

    code, out, err = stairway("audit", "verify", "--site", str(quiet_site))
    assert code == 0 and "whole" in out and "5 entries" in out, err
    code, out, _ = stairway("audit", "show", "--site", str(quiet_site))
    assert code == 0 and "carried over: was entry 2 of" in out
    assert out.count("carried over") == 3


def test_a_carried_entry_changed_afterwards_is_named_by_verify(quiet_site: Path) -> None:
    taken = operations.backup(context.open_context(quiet_site, None))
    write(quiet_site, LATER)
    assert stairway("restore", taken.id, "--yes", "--site", str(quiet_site))[0] == 0
    with context.open_context(quiet_site, None).engine.begin() as conn:
        conn.execute(text("UPDATE stairway_audit SET actor = 'someone' WHERE id = 3"))
    dispose_all()
    code, _, err = stairway("audit", "verify", "--site", str(quiet_site))
    assert code == 2 and "entry 3 (secret.set) was changed" in err


def test_restoring_twice_carries_each_entry_once(quiet_site: Path) -> None:
    taken = operations.backup(context.open_context(quiet_site, None))
    write(quiet_site, LATER[:2])
    operations.restore(context.open_context(quiet_site, None), taken.id)
    write(quiet_site, LATER[2:])
    operations.restore(context.open_context(quiet_site, None), taken.id)
    found = logged(quiet_site)
    actions = [e.action for e in found]
    assert actions == [
        "site.upgrade",
        "agent.upgrade_run",
        "site.restore",
        "secret.set",
        "site.restore",
    ]
    assert found[0].data["carried"]["before"]["id"] == 1, "carried twice: both marks kept"
    assert found[2].data["carried"]["id"] == 3 and found[4].data["carried_over"] == 4
    with context.open_context(quiet_site, None).engine.connect() as conn:
        assert audit.verify(conn) == []


def test_a_backup_without_an_audit_head_carries_by_time(
    quiet_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backups made before the manifest named the log's head: the time it was taken decides,
    and an entry of that very second found in the restored log is not appended twice."""
    write(quiet_site, [("secret.set", {"name": "db"}, "ops")])
    taken = operations.backup(context.open_context(quiet_site, None))
    write(quiet_site, LATER)
    read = audit_carry.read_pending

    def headless(engine: object, manifest: BackupManifest) -> audit_carry.Pending:
        return read(engine, manifest.model_copy(update={"audit_head": None}))  # type: ignore[arg-type]

    monkeypatch.setattr(audit_carry, "read_pending", headless)
    operations.restore(context.open_context(quiet_site, None), taken.id)
    found = logged(quiet_site)
    assert [e.action for e in found][1:] == [a for a, _, _ in LATER] + ["site.restore"]
    assert found[0].action == "secret.set" and "carried" not in found[0].data
    assert found[-1].data["since"].startswith("time ")
    with context.open_context(quiet_site, None).engine.connect() as conn:
        assert audit.verify(conn) == []


def test_a_live_log_that_cannot_be_read_does_not_stop_the_restore(quiet_site: Path) -> None:
    write(quiet_site, [("secret.set", {"name": "db"}, "ops")])
    taken = operations.backup(context.open_context(quiet_site, None))
    write(quiet_site, LATER)
    with context.open_context(quiet_site, None).engine.begin() as conn:
        conn.execute(text("ALTER TABLE stairway_audit RENAME COLUMN hash TO damaged"))
    dispose_all()
    code, out, err = stairway("restore", taken.id, "--yes", "--site", str(quiet_site))
    assert code == 0 and "restored" in out, err
    assert "could not be carried over" in err
    found = logged(quiet_site)
    assert [e.action for e in found] == ["secret.set", "site.restore"]
    assert found[1].data["carried_over"] == 0 and "could not be carried" in found[1].data["warning"]
    assert stairway("audit", "verify", "--site", str(quiet_site))[0] == 0


def test_a_failing_upgrade_keeps_what_was_logged_during_it(
    tmp_path: Path, database_url: str
) -> None:
    site = build_site(tmp_path, database_url)
    script = tmp_path / "smoke.py"
    script.write_text(
        "from stairway import audit\nfrom stairway.database import engine_for\n"
        f"with engine_for({database_url!r}).begin() as conn:\n"
        "    audit.append(conn, 'agent.enroll', {'agent': 'relay-b'}, actor='ops')\n"
        "raise SystemExit(4)\n",
        "utf-8",
    )
    manifest = site.parent / "catalog" / "stairway.toml"
    with manifest.open("a", encoding="utf-8") as out:
        out.write(f'\n[[smoke]]\nname = "logs and fails"\ncommand = "{sys.executable} {script}"\n')
    try:
        code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
        assert code == 1 and "Rolled back" in err
        found = logged(site)
        assert [e.action for e in found] == ["agent.enroll", "site.restore", "site.rollback"]
        assert found[0].actor == "ops" and found[0].data["carried"]["id"] == 1
        assert found[1].data["carried_over"] == 1
        assert stairway("audit", "verify", "--site", str(site))[0] == 0
    finally:
        stairway_stop(site)


def test_the_upgrade_entry_names_its_backup(tmp_path: Path, database_url: str) -> None:
    site = build_site(tmp_path, database_url)
    try:
        code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
        assert code == 0, err
        entry = logged(site)[-1]
        assert entry.action == "site.upgrade"
        backups = [b.id for b in operations.backups(context.open_context(site, None))]
        assert entry.data["backup"] is not None and entry.data["backup"] in backups
    finally:
        stairway_stop(site)


def test_entries_already_broken_in_the_live_log_are_carried_as_found_and_named(
    quiet_site: Path,
) -> None:
    write(quiet_site, [("secret.set", {"name": "db"}, "ops")])
    taken = operations.backup(context.open_context(quiet_site, None))
    write(quiet_site, LATER)
    with context.open_context(quiet_site, None).engine.begin() as conn:
        conn.execute(text("UPDATE stairway_audit SET actor = 'someone' WHERE id = 3"))
    dispose_all()
    code, _, err = stairway("restore", taken.id, "--yes", "--site", str(quiet_site))
    assert code == 0 and "already broken" in err and "entry 3 (agent.upgrade_run)" in err
    found = logged(quiet_site)
    assert found[2].actor == "someone" and found[2].data["carried"]["id"] == 3
    assert "entry 3 (agent.upgrade_run) was changed" in found[-1].data["warning"]
