"""The hash-chained audit log: whole when untouched, and every edit or removal named."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from cli_runner import stairway
from stairway import audit
from stairway.database import engine_for


@pytest.fixture
def logged(database_url: str) -> str:
    with engine_for(database_url).begin() as conn:
        for n in range(5):
            audit.append(conn, "site.backup", {"n": n, "note": "é"}, actor="ops")
    return database_url


def test_an_untouched_log_verifies(logged: str) -> None:
    with engine_for(logged).connect() as conn:
        assert audit.verify(conn) == []
        found = audit.entries(conn)
    assert [e.id for e in found] == [1, 2, 3, 4, 5]
    assert found[0].previous == audit.GENESIS and found[1].previous == found[0].hash
    assert found[2].data == {"n": 2, "note": "é"} and found[2].actor == "ops"


def test_entries_appended_together_chain_on_from_the_log_and_each_other(logged: str) -> None:
    items = [("agent.upgrade_run", {"agent": f"a{n}"}) for n in range(3)]
    with engine_for(logged).begin() as conn:
        made = audit.append_many(conn, items, actor="policy")
        audit.append(conn, "site.backup", {"n": 9})
    with engine_for(logged).connect() as conn:
        assert audit.verify(conn) == []
        found = audit.entries(conn)
    assert [e.id for e in made] == [6, 7, 8] and made[0].previous == found[4].hash
    assert [e.data["agent"] for e in found[5:8]] == ["a0", "a1", "a2"]
    assert found[8].previous == made[2].hash and found[8].action == "site.backup"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (
            "UPDATE stairway_audit SET data = '{\"n\": 9}' WHERE id = 3",
            "entry 3 (site.backup) was changed",
        ),
        (
            "UPDATE stairway_audit SET actor = 'someone' WHERE id = 2",
            "entry 2 (site.backup) was changed",
        ),
        ("DELETE FROM stairway_audit WHERE id = 3", "entries 3..3 are missing"),
        ("UPDATE stairway_audit SET previous = hash WHERE id = 4", "entry 4 does not follow"),
    ],
)
def test_an_edited_or_removed_entry_is_named(logged: str, tamper: str, message: str) -> None:
    with engine_for(logged).begin() as conn:
        conn.execute(text(tamper))
    with engine_for(logged).connect() as conn:
        problems = audit.verify(conn)
    assert any(message in p for p in problems), problems


def test_audit_verify_command_exits_2_on_a_broken_chain(tmp_path: Path, logged: str) -> None:
    site = tmp_path / "site.toml"
    catalog = Path(__file__).parent / "catalogs" / "people"
    site.write_text(f'[site]\ndatabase = "{logged}"\ncatalog = "{catalog}"\n', "utf-8")
    code, out, _ = stairway("audit", "verify", "--site", str(site))
    assert code == 0 and "5 entries" in out
    with engine_for(logged).begin() as conn:
        conn.execute(text("UPDATE stairway_audit SET action = 'nothing' WHERE id = 1"))
    code, _, err = stairway("audit", "verify", "--site", str(site))
    assert code == 2 and "entry 1 (nothing) was changed" in err
