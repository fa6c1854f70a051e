"""The bookkeeping tables of Flyway, golang-migrate and dbmate, written as each tool leaves them
and created, when absent, with the tool's own DDL on PostgreSQL and SQLite.

golang-migrate and dbmate both default to a table named ``schema_migrations``; reading tells
them apart by its columns (golang-migrate's has ``dirty``).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.types import BigInteger

from stairway.schema.change import Change, HistoryTool, Origin
from stairway.schema.histories.ledger import Ledger, LedgerState
from stairway.schema.histories.sql_names import flyway_key

_FLYWAY_DDL = {
    "postgresql": [
        'CREATE TABLE {q} ("installed_rank" INT NOT NULL, "version" VARCHAR(50), '
        '"description" VARCHAR(200) NOT NULL, "type" VARCHAR(20) NOT NULL, '
        '"script" VARCHAR(1000) NOT NULL, "checksum" INTEGER, '
        '"installed_by" VARCHAR(100) NOT NULL, "installed_on" TIMESTAMP NOT NULL DEFAULT now(), '
        '"execution_time" INTEGER NOT NULL, "success" BOOLEAN NOT NULL)',
        'ALTER TABLE {q} ADD CONSTRAINT {pk} PRIMARY KEY ("installed_rank")',
        'CREATE INDEX {idx} ON {q} ("success")',
    ],
    "sqlite": [
        'CREATE TABLE {q} ("installed_rank" INT NOT NULL PRIMARY KEY, "version" VARCHAR(50), '
        '"description" VARCHAR(200) NOT NULL, "type" VARCHAR(20) NOT NULL, '
        '"script" VARCHAR(1000) NOT NULL, "checksum" INT, "installed_by" VARCHAR(100) NOT NULL, '
        "\"installed_on\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')), "
        '"execution_time" INT NOT NULL, "success" BOOLEAN NOT NULL)',
        'CREATE INDEX {idx} ON {q} ("success")',
    ],
}
_GOLANG_DDL = {
    "postgresql": [
        "CREATE TABLE IF NOT EXISTS {q} (version bigint not null primary key, "
        "dirty boolean not null)"
    ],
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS {q} (version uint64,dirty bool)",
        "CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON {q} (version)",
    ],
}
_DBMATE_DDL = ["create table if not exists {q} (version varchar(128) primary key)"]


def flyway_table(name: str) -> Table:
    """``flyway_schema_history`` as statements read and write it."""
    return Table(
        name,
        MetaData(),
        Column("installed_rank", Integer, primary_key=True),
        Column("version", String(50)),
        Column("description", String(200)),
        Column("type", String(20)),
        Column("script", String(1000)),
        Column("checksum", Integer),
        Column("installed_by", String(100)),
        Column("installed_on", String),
        Column("execution_time", Integer),
        Column("success", Boolean),
    )


def golang_table(name: str) -> Table:
    """golang-migrate's ``schema_migrations``: one row, the version and whether it is dirty."""
    return Table(
        name, MetaData(), Column("version", BigInteger, primary_key=True), Column("dirty", Boolean)
    )


def dbmate_table(name: str) -> Table:
    """dbmate's ``schema_migrations``: one row per applied version."""
    return Table(name, MetaData(), Column("version", String(128), primary_key=True))


def _create(conn: Connection, name: str, ddl: list[str]) -> None:
    """Create the table with the tool's own statements, unless it is there."""
    if conn.dialect.has_table(conn, name):
        return
    quote = conn.dialect.identifier_preparer.quote
    for statement in ddl:
        text = statement.format(q=quote(name), pk=quote(f"{name}_pk"), idx=quote(f"{name}_s_idx"))
        conn.exec_driver_sql(text)


def _origin(change: Change) -> Origin:
    assert change.origin is not None, "only a change of an adopted history has a ledger"
    return change.origin


class FlywayLedger:
    """``flyway_schema_history``: one row per migration run, ranked in the order they ran."""

    def read(self, conn: Connection, table: str) -> LedgerState:
        """The versions applied (their latest row is a successful run; an undo takes one
        back), the version of a ``BASELINE`` row, and a failed run as the problem."""
        t = flyway_table(table)
        query = select(t.c.version, t.c.type, t.c.success).order_by(t.c.installed_rank)
        applied: dict[str, None] = {}
        baseline, failed = None, None
        for version, kind, success in conn.execute(query):
            if version is None:  # a repeatable migration, or Flyway's schema creation
                continue
            if not success:
                failed = version
            elif kind == "BASELINE":
                baseline = version
            elif str(kind).startswith("UNDO"):
                applied.pop(version, None)
            else:
                applied[version] = None
        problem = _flyway_problem(failed, baseline)
        return LedgerState(tuple(applied), heads=False, problem=problem, baseline=baseline)

    def record(self, conn: Connection, change: Change, duration_ms: int) -> None:
        """The row ``flyway migrate`` inserts after a versioned SQL migration succeeded."""
        origin = _origin(change)
        flyway_row(
            conn,
            origin.table,
            origin.ident,
            origin.description,
            origin.script,
            origin.checksum,
            duration_ms,
        )

    def forget(self, conn: Connection, change: Change) -> None:
        """The migration's rows gone: Flyway then counts it as not applied."""
        origin = _origin(change)
        t = flyway_table(origin.table)
        conn.execute(delete(t).where(t.c.version == origin.ident, t.c.type != "BASELINE"))


def flyway_row(
    conn: Connection,
    table: str,
    version: str | None,
    description: str,
    script: str,
    checksum: int | None,
    duration_ms: int,
) -> None:
    """Insert the row ``flyway migrate`` inserts after a migration succeeded (``version`` None:
    a repeatable one), creating the table with Flyway's DDL when absent."""
    _create(conn, table, _FLYWAY_DDL[_dialect(conn)])
    t = flyway_table(table)
    rank = conn.execute(select(func.coalesce(func.max(t.c.installed_rank), 0))).scalar_one()
    row = {
        "installed_rank": rank + 1,
        "version": version,
        "description": description,
        "type": "SQL",
        "script": script,
        "checksum": checksum,
        "installed_by": _user(conn),
        "execution_time": duration_ms,
        "success": True,
    }
    conn.execute(insert(t).values(**row))


def _flyway_problem(failed: str | None, baseline: str | None) -> str | None:
    if failed is not None:
        return f"migration V{failed} failed (success = false)"
    try:
        flyway_key(baseline or "1")
    except ValueError:
        return f"its BASELINE version {baseline!r} is no Flyway version"
    return None


def _user(conn: Connection) -> str:
    """Who Flyway records as ``installed_by``: the database user; SQLite has none."""
    if conn.dialect.name == "postgresql":
        return str(conn.exec_driver_sql("SELECT current_user").scalar_one())
    return ""


def _dialect(conn: Connection) -> str:
    return "postgresql" if conn.dialect.name == "postgresql" else "sqlite"


class GolangMigrateLedger:
    """golang-migrate's ``schema_migrations``: the version last applied, and ``dirty`` while
    a migration is half-way (it failed, or is still running)."""

    def read(self, conn: Connection, table: str) -> LedgerState:
        """The one version the table holds; a problem when dirty or not golang-migrate's."""
        columns = {c["name"] for c in inspect(conn).get_columns(table)}
        if not {"version", "dirty"} <= columns:
            return LedgerState((), heads=True, problem=_not_ours(table, "golang-migrate", columns))
        t = golang_table(table)
        rows = conn.execute(select(t.c.version, t.c.dirty)).all()
        if len(rows) > 1:
            return LedgerState(
                (), heads=True, problem=f"{len(rows)} rows, where golang-migrate keeps one"
            )
        if rows and rows[0].dirty:
            problem = f"version {rows[0].version} is dirty: a migration failed half-way"
            return LedgerState((str(rows[0].version),), heads=True, problem=problem)
        return LedgerState(tuple(str(r.version) for r in rows), heads=True)

    def record(self, conn: Connection, change: Change, duration_ms: int) -> None:
        """The version of ``change``, clean, as ``migrate up`` leaves it."""
        self._write(conn, _origin(change).table, _origin(change).heads_after)

    def forget(self, conn: Connection, change: Change) -> None:
        """The version before ``change``; no row once the first migration is reverted."""
        self._write(conn, _origin(change).table, _origin(change).heads_before)

    def _write(self, conn: Connection, name: str, versions: tuple[str, ...]) -> None:
        _create(conn, name, _GOLANG_DDL[_dialect(conn)])
        t = golang_table(name)
        conn.execute(delete(t))
        if versions:
            conn.execute(insert(t).values(version=int(versions[0]), dirty=False))


class DbmateLedger:
    """dbmate's ``schema_migrations``: one row per applied migration's version."""

    def read(self, conn: Connection, table: str) -> LedgerState:
        """Every version the table holds; a problem when it is not dbmate's table."""
        columns = {c["name"] for c in inspect(conn).get_columns(table)}
        if "dirty" in columns or "version" not in columns:
            return LedgerState((), heads=False, problem=_not_ours(table, "dbmate", columns))
        t = dbmate_table(table)
        versions = conn.execute(select(t.c.version).order_by(t.c.version)).scalars()
        return LedgerState(tuple(versions), heads=False)

    def record(self, conn: Connection, change: Change, duration_ms: int) -> None:
        """The row ``dbmate up`` inserts."""
        origin = _origin(change)
        _create(conn, origin.table, _DBMATE_DDL)
        conn.execute(insert(dbmate_table(origin.table)).values(version=origin.ident))

    def forget(self, conn: Connection, change: Change) -> None:
        """The row ``dbmate rollback`` deletes."""
        origin = _origin(change)
        t = dbmate_table(origin.table)
        conn.execute(delete(t).where(t.c.version == origin.ident))


def _not_ours(table: str, tool: str, columns: set[str]) -> str:
    other = "golang-migrate's" if "dirty" in columns else "another tool's"
    return (
        f"its columns ({', '.join(sorted(columns))}) are not {tool}'s: it looks like {other} "
        f"table of the same name (set [history] table if {tool} keeps another)"
    )


LEDGERS: dict[HistoryTool, Ledger] = {
    HistoryTool.FLYWAY: FlywayLedger(),
    HistoryTool.GOLANG_MIGRATE: GolangMigrateLedger(),
    HistoryTool.DBMATE: DbmateLedger(),
}
