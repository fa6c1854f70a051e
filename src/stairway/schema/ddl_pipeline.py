"""A change's DDL sent to PostgreSQL without waiting for each reply (libpq's pipeline mode).

A revision that creates ten tables spends as long waiting for the server to build each one as it
spends in Python rendering the next: sent in pipeline mode, the server builds one table while
Python renders the next. Only the DDL SQLAlchemy compiles (``op.create_table``,
``op.add_column``, ...) is queued; any other statement (a query, a ``text()`` statement, an
``INSERT``) first waits for every queued reply, so it sees what the DDL before it did, and a
failure among them is raised there, before it runs. Leaving the block waits for all of them:
a change is done, or has failed, when its call returns, as without the pipeline.

Only inside a transaction: in autocommit, the statements between two waits would share one
implicit transaction, which ``CREATE INDEX CONCURRENTLY`` refuses and which would commit them
together instead of one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import psycopg
from sqlalchemy import Connection, event
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext
from sqlalchemy.exc import DBAPIError


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """Within the block, DDL executed on ``conn`` is queued instead of waited for, where
    ``conn`` is a PostgreSQL connection inside a transaction; elsewhere, nothing changes.

    Raises:
        DBAPIError: a queued statement failed (raised at the next statement that is not
            queued, or on leaving the block).
    """
    pg = _transactional_psycopg(conn)
    if pg is None:
        yield
        return
    queue = _Queue(pg)
    event.listen(conn, "before_cursor_execute", queue.before_execute)
    try:
        yield
        queue.wait()
    finally:
        event.remove(conn, "before_cursor_execute", queue.before_execute)
        queue.abandon()


def _transactional_psycopg(conn: Connection) -> psycopg.Connection[Any] | None:
    if conn.dialect.name != "postgresql" or not conn.in_transaction():
        return None
    pg = conn.connection.dbapi_connection
    if not isinstance(pg, psycopg.Connection) or pg.autocommit:
        return None
    return pg if psycopg.Pipeline.is_supported() else None


class _Queue:
    """The pipeline of one connection: entered at the first DDL, left (waiting for every reply)
    before any other statement."""

    def __init__(self, pg: psycopg.Connection[Any]) -> None:
        self._pg = pg
        self._pipeline: ExitStack | None = None  # holds the pipeline while one is open

    def before_execute(
        self,
        _conn: Connection,
        _cursor: DBAPICursor,
        _statement: str,
        _parameters: object,
        context: ExecutionContext | None,
        _executemany: bool,
    ) -> None:
        """Enter pipeline mode for DDL; wait for what is queued before anything else."""
        if context is not None and getattr(context, "isddl", False):
            if self._pipeline is None:
                self._pipeline = ExitStack()
                self._pipeline.enter_context(self._pg.pipeline())
            return
        self.wait()

    def wait(self) -> None:
        """Wait for every queued reply and leave pipeline mode."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            return
        try:
            pipeline.close()
        except psycopg.Error as failed:
            # As SQLAlchemy reports a failed statement, so callers tell it from a Python error
            raise DBAPIError.instance(
                "(DDL sent in pipeline mode)", None, failed, psycopg.Error
            ) from failed

    def abandon(self) -> None:
        """Leave pipeline mode after the block failed: what is queued is rolled back with the
        transaction, and the block's own error is the one to report."""
        with suppress(DBAPIError):
            self.wait()
