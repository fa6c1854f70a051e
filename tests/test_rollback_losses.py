"""Rolling back a finished upgrade says what it loses and needs --yes, on SQLite and PostgreSQL:
rows per table (added, removed, changed; tables created or dropped; counted without a primary
key), files of the data directory, the audit entries since (carried over, not lost)."""

from __future__ import annotations

from pathlib import Path

import orjson
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from cli_runner import stairway
from conftest import PG_ADMIN
from stairway import audit, context, operations, rowdiff
from stairway.database import dispose_all
from stairway.errors import UpgradeError
from stairway.journal import Journal
from stairway.losses import LossReport, losses_since
from stairway.upgrade import rollback
from test_upgrade import build_site, fingerprint, stairway_stop


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Path:
    path = build_site(tmp_path, database_url)
    yield path
    stairway_stop(path)


def work_after_the_upgrade(site: Path) -> None:
    """What the new release's users did: rows, a file, an audit entry."""
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        conn.execute(text("INSERT INTO settings VALUES ('theme', 'dark'), ('lang', 'cs')"))
        conn.execute(text("UPDATE jobs SET name = 'hourly sync' WHERE id = 1"))
        audit.append(conn, "secret.set", {"name": "smtp"}, actor="ops")
    dispose_all()
    (site.parent / "data" / "avatar.png").write_bytes(b"a new face")


def finished_upgrades(site: Path) -> list[str | None]:
    return [h.ended for h in Journal(site.parent / "backups").history()]


def test_rollback_of_a_finished_upgrade_lists_the_losses_and_needs_yes(site: Path) -> None:
    before = fingerprint(site)
    assert stairway("upgrade", "--to", "2.0.0", "--site", str(site))[0] == 0
    work_after_the_upgrade(site)
    upgraded = fingerprint(site)

    code, out, err = stairway("rollback", "--site", str(site))
    assert code == 2 and "pass --yes" in err and "no terminal" in err, err
    assert "table settings: rows 2 added" in out
    assert fingerprint(site) == upgraded and finished_upgrades(site) == ["finished"]
    seen: list[LossReport] = []

    def decline(report: LossReport) -> bool:
        seen.append(report)
        return False

    with pytest.raises(UpgradeError, match="not confirmed: nothing was changed"):
        rollback(context.open_context(site, None), decline)
    assert seen[0].audit_since == 2, "the library's caller is shown the same report"
    assert fingerprint(site) == upgraded and finished_upgrades(site) == ["finished"]

    code, out, err = stairway("rollback", "--yes", "--site", str(site))
    assert code == 0 and "the site is at 1.0.0 again" in out, err
    assert "table settings: rows 2 added" in out
    assert "table jobs: rows 1 changed" in out
    assert "file data/avatar.png: changed since" in out
    assert "audit log: 2 entries since (site.upgrade, secret.set)" in out
    assert "carried over" in out
    assert fingerprint(site) == before
    assert finished_upgrades(site) == ["rolled-back"]

    with context.open_context(site, None).engine.connect() as conn:
        logged = audit.entries(conn)
        assert audit.verify(conn) == []
    actions = [e.action for e in logged]
    assert actions == ["site.upgrade", "secret.set", "site.restore", "site.rollback"]
    assert logged[0].data["backup"] == logged[2].data["backup"] is not None


def test_rollback_json_without_yes_reports_and_changes_nothing(site: Path) -> None:
    assert stairway("upgrade", "--to", "2.0.0", "--site", str(site))[0] == 0
    work_after_the_upgrade(site)
    upgraded = fingerprint(site)
    code, out, err = stairway("rollback", "--json", "--site", str(site))
    assert code == 2 and "pass --yes" in err
    said = orjson.loads(out)
    assert said["rolled_back"] is False
    settings = next(t for t in said["losses"]["tables"] if t["table"] == "settings")
    assert settings["added"] == 2 and settings["kind"] == "rows"
    assert said["losses"]["audit_since"] == 2
    assert fingerprint(site) == upgraded

    code, out, err = stairway("rollback", "--json", "--yes", "--site", str(site))
    assert code == 0, err
    said = orjson.loads(out)
    assert said["rolled_back"] is True and said["version"] == "1.0.0"
    files = {f["path"]: f["kind"] for f in said["losses"]["files"]}
    config = str(site.parent / "etc" / "app.toml")
    assert files == {"data/avatar.png": "changed", config: "changed"}, "the upgrade's too"


@pytest.fixture
def quiet_site(tmp_path: Path, database_url: str) -> Path:
    return build_site(tmp_path, database_url, service=False)


def test_the_report_tells_rows_tables_and_files_apart(quiet_site: Path) -> None:
    ctx = context.open_context(quiet_site, None)
    with ctx.engine.begin() as conn:
        conn.execute(text("CREATE TABLE tags (name TEXT, n INTEGER)"))  # no primary key
        conn.execute(text("INSERT INTO tags VALUES ('x', 1), ('y', 2), ('y', 2)"))
        conn.execute(text("CREATE TABLE old_notes (id INTEGER PRIMARY KEY, body TEXT)"))
        conn.execute(text("INSERT INTO old_notes VALUES (1, 'a'), (2, 'b')"))
    taken = operations.backup(ctx)
    with ctx.engine.begin() as conn:
        # keys Python and a locale collation order differently: "B" < "a" < "b" in bytes
        for oid in ("B-upper", "a-lower"):
            conn.execute(text("INSERT INTO objects VALUES (:o, 'User', '{}', '1.0.0')"), {"o": oid})
        conn.execute(text("DELETE FROM objects WHERE oid = 'user-0001'"))
        conn.execute(text("UPDATE objects SET data = '{}' WHERE oid = 'user-0002'"))
        conn.execute(text("ALTER TABLE jobs ADD COLUMN note TEXT"))  # no row differs by it
        conn.execute(text("DROP TABLE old_notes"))
        conn.execute(text("CREATE TABLE fresh (id INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO fresh VALUES (1), (2), (3), (4)"))
        conn.execute(text("INSERT INTO tags VALUES ('z', 3), ('z', 3)"))
    dispose_all()
    data = quiet_site.parent / "data"
    (data / "avatar.png").unlink()
    (data / "notes").mkdir()
    (data / "notes" / "new.txt").write_text("hello", "utf-8")

    report = losses_since(context.open_context(quiet_site, None), taken.id)
    tables = {t.table: t for t in report.tables}
    assert set(tables) == {"objects", "old_notes", "fresh", "tags"}, report.describe()
    objects = tables["objects"]
    assert (objects.kind, objects.added, objects.removed, objects.changed) == ("rows", 2, 1, 1)
    assert tables["old_notes"].kind == "dropped" and tables["old_notes"].rows_then == 2
    assert tables["fresh"].kind == "created" and tables["fresh"].rows_now == 4
    assert (tables["tags"].kind, tables["tags"].rows_then, tables["tags"].rows_now) == (
        "counted",
        3,
        5,
    )
    assert [(f.path, f.kind) for f in report.files] == [
        ("data/avatar.png", "removed"),
        ("data/notes/new.txt", "added"),
    ]
    text_of = "\n".join(report.describe())
    assert "table tags (no primary key to compare rows by): 3 rows then, 5 now" in text_of
    assert "table old_notes: dropped since (2 rows); it comes back" in text_of
    assert report.audit_since == 0 and "no entry since" in text_of
    assert not [p for p in (quiet_site.parent / "backups").iterdir() if p.name.startswith(".r")]
    if ctx.engine.dialect.name == "postgresql":
        with psycopg.connect(PG_ADMIN) as admin:
            left = admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                (f"{ctx.engine.url.database}%_losses_%",),
            ).fetchall()
        assert left == [], "the scratch copy is dropped"


def test_a_column_added_since_that_holds_values_is_named(quiet_site: Path) -> None:
    """Values in a column the backup does not have go with it (the upgrade's own display_name,
    or anything written into it since): the column is named with the rows holding a value."""
    ctx = context.open_context(quiet_site, None)
    taken = operations.backup(ctx)
    with ctx.engine.begin() as conn:
        conn.execute(text("ALTER TABLE jobs ADD COLUMN owner TEXT"))
        conn.execute(text("ALTER TABLE jobs ADD COLUMN note TEXT"))  # no value: nothing goes
        conn.execute(text("UPDATE jobs SET owner = 'ops' WHERE id = 1"))
    dispose_all()
    report = losses_since(context.open_context(quiet_site, None), taken.id)
    tables = {t.table: t for t in report.tables}
    assert tables["jobs"].new_columns == (("owner", 1),), report.describe()
    assert "table jobs: column owner added since, 1 row holding a value (they go)" in (
        "\n".join(report.describe())
    )


def test_a_live_database_that_cannot_be_read_is_reported_not_refused(
    quiet_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = operations.backup(context.open_context(quiet_site, None))

    def unreadable(*_args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("database disk image is malformed"))

    monkeypatch.setattr(rowdiff, "compare", unreadable)
    report = losses_since(context.open_context(quiet_site, None), taken.id)
    assert report.tables == () and not report.nothing_lost
    assert "tables: not known, the live database could not be read (database disk image" in (
        "\n".join(report.describe())
    )
