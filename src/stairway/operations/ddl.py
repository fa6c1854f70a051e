"""A database's schema as plain DDL that replays through a normal connection: what a schema
snapshot holds. Stairway's own ``stairway_*`` tables are left out, and the tables a caller names
(an adopted tool's bookkeeping table, which ``init`` stamps instead).

PostgreSQL: ``pg_dump --schema-only --no-owner --no-privileges``, without what only psql or a
restore session needs: psql's backslash meta-commands, the ``SET`` statements and the
``set_config`` of ``search_path`` (every name pg_dump writes is schema-qualified already).
SQLite: the ``sqlite_master`` SQL, tables first (in the order they were created), then views,
indexes and triggers, so that each statement finds what it depends on.
"""

from __future__ import annotations

import subprocess
from collections.abc import Collection

from sqlalchemy import Engine, text

from stairway.backup.database import client_tool, libpq_of
from stairway.errors import BackupError
from stairway.schema.sqltext import Statement, split_statements

OWN_TABLES = "stairway_*"
_NOISE = ("SET ", "SELECT pg_catalog.set_config(")
_SQLITE_ORDER = {"table": 0, "view": 1, "index": 2, "trigger": 3}
_SQLITE = text(
    "SELECT type, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
    "AND name NOT LIKE 'sqlite_%' AND tbl_name NOT LIKE 'stairway_%' ORDER BY rowid"
)


def schema_ddl(engine: Engine, leave_out: Collection[str] = ()) -> list[str]:
    """The statements that build the database's schema (without Stairway's tables and those
    in ``leave_out``, with their indexes and constraints) anew."""
    if engine.dialect.name == "postgresql":
        return replayable(_pg_dump(engine, leave_out))
    with engine.connect() as conn:
        found = conn.execute(_SQLITE)
        rows = [(str(kind), str(sql)) for kind, table, sql in found if table not in leave_out]
    ordered = sorted(enumerate(rows), key=lambda item: (_SQLITE_ORDER.get(item[1][0], 4), item[0]))
    return [sql.strip() for _, (_, sql) in ordered]


def replayable(dump: str) -> list[str]:
    """The statements of a pg_dump script that a normal connection runs: no meta-commands, no
    session settings. Split on SQL tokens, so a ``SET`` inside a function body stays."""
    lines = [line for line in dump.splitlines() if not line.startswith("\\")]
    statements = split_statements("\n".join(lines))
    return [s.text.strip() for s in statements if not _session_setting(s)]


def _session_setting(statement: Statement) -> bool:
    return statement.text.lstrip().startswith(_NOISE)


def _pg_dump(engine: Engine, leave_out: Collection[str]) -> str:
    pg_dump = client_tool("pg_dump", engine)
    conninfo, env = libpq_of(engine.url)
    command = [
        pg_dump,
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-publications",
        "--no-subscriptions",
        f"--exclude-table={OWN_TABLES}",
        *(f"--exclude-table={exactly(name)}" for name in leave_out),
        f"--dbname={conninfo}",
    ]
    return dumped(command, env, "the site's database")


def dumped(command: list[str], env: dict[str, str], database: str) -> str:
    """What the pg_dump ``command`` printed; its last line of complaint, naming ``database``'s
    reachability as the fix, when it fails."""
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(
            f"pg_dump failed: {said[-1] if said else f'exit {done.returncode}'}",
            hint=f"check that {database} answers and that pg_dump can reach it",
        )
    return done.stdout


def exactly(name: str) -> str:
    """A pg_dump pattern matching ``name`` only: quoted, so case, dots and stars are kept."""
    return '"' + name.replace('"', '""') + '"'
