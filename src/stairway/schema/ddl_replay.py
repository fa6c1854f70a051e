"""Running a schema snapshot's DDL on a connection, statement by statement, inside the caller's
transaction: a statement that fails leaves nothing once the caller rolls back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection

from stairway.errors import SchemaError
from stairway.schema.sqltext import SqlSyntaxError, split_statements


def replay_ddl(conn: Connection, ddl: str, source: Path) -> int:
    """Run every statement of ``ddl`` (read from ``source``) on ``conn``; how many ran.

    Raises:
        SchemaError: the DDL does not read, or a statement fails; names the file and line.
    """
    try:
        statements = split_statements(ddl)
    except SqlSyntaxError as err:
        raise _refused(f"{source}:{err.line} does not read as SQL: {err}") from None
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
    return len(statements)


def _refused(message: str) -> SchemaError:
    return SchemaError(
        f"the schema snapshot does not build: {message}; nothing was changed",
        hint="`stairway init --replay` replays every change instead; write the snapshot again "
        "from a site at its release with `stairway snapshot`",
    )
