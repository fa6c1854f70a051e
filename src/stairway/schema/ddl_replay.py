"""Running a schema snapshot's DDL and then its rows on a connection, statement by statement,
inside the caller's transaction: a statement that fails leaves nothing once the caller rolls
back.

The rows file may only put rows back: ``INSERT`` into a table the DDL just built, a sequence's
``setval`` (PostgreSQL) or an ``AUTOINCREMENT`` counter (SQLite). Anything else, or rows for a
table the DDL lacks, is refused before a single row goes in.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import Connection, inspect

from stairway.errors import SchemaError
from stairway.schema.sqltext import SqlSyntaxError, Statement, split_statements

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_INSERT = re.compile(rf"INSERT\s+INTO\s+(?:{_NAME}\.)?({_NAME})", re.IGNORECASE)
_COUNTER = re.compile(r"(DELETE\s+FROM|INSERT\s+INTO)\s+sqlite_sequence\b", re.IGNORECASE)
_SETVAL = re.compile(r"SELECT\s+pg_catalog\.setval\(", re.IGNORECASE)


def replay_ddl(conn: Connection, ddl: str, source: Path) -> int:
    """Run every statement of ``ddl`` (read from ``source``) on ``conn``; how many ran.

    Raises:
        SchemaError: the DDL does not read, or a statement fails; names the file and line.
    """
    statements = _statements(ddl, source)
    _run(conn, statements, source)
    return len(statements)


def replay_rows(conn: Connection, rows: str, source: Path) -> int:
    """Put back the rows of ``rows`` (read from ``source``) into the tables the snapshot's DDL
    built on ``conn``; how many statements ran.

    Raises:
        SchemaError: a statement is not a row, names a table the DDL lacks, or fails.
    """
    statements = _statements(rows, source)
    tables = set(inspect(conn).get_table_names())
    for statement in statements:
        _refuse_not_a_row(statement, tables, source)
    if conn.dialect.name == "sqlite":  # rows go in table by table; their references hold at commit
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    _run(conn, statements, source)
    return len(statements)


def _refuse_not_a_row(statement: Statement, tables: set[str], source: Path) -> None:
    said = statement.text.lstrip()
    if _COUNTER.match(said) or _SETVAL.match(said):
        return
    insert = _INSERT.match(said)
    if insert is None:
        raise _refused(f"{source}:{statement.line} is not a row ({statement.describe()})")
    table = _unquoted(insert.group(1))
    if table not in tables:
        raise _refused(
            f"{source}:{statement.line} holds rows for table {table}, which the snapshot's DDL "
            "does not create"
        )


def _unquoted(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


def _statements(text: str, source: Path) -> list[Statement]:
    try:
        return split_statements(text)
    except SqlSyntaxError as err:
        raise _refused(f"{source}:{err.line} does not read as SQL: {err}") from None


def _run(conn: Connection, statements: list[Statement], source: Path) -> None:
    cursor = conn.connection.cursor()
    try:
        for statement in statements:
            try:  # the DBAPI cursor, with no parameters, sends the text as written
                cursor.execute(statement.text)
            except Exception as err:
                said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise _refused(
                    f"{source}:{statement.line} failed ({statement.describe()}): {said}"
                ) from None
    finally:
        cursor.close()


def _refused(message: str) -> SchemaError:
    return SchemaError(
        f"the schema snapshot does not build: {message}; nothing was changed",
        hint="`stairway init --replay` replays every change instead; write the snapshot again "
        "from a site at its release with `stairway snapshot`",
    )
