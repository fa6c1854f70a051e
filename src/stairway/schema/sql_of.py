"""The SQL a change amounts to, for what reads changes as SQL (warnings, estimates, dry runs):
a SQL change's statements, or the SQL Alembic renders for a revision, rendered on first use
(reading a catalog renders only what an expand label needs proven)."""

from __future__ import annotations

from stairway.schema.change import Change, ChangeKind
from stairway.schema.sqltext import Statement


def sql_of(change: Change) -> tuple[Statement, ...]:
    """The statements ``change`` runs, as far as they can be known without running it; () for
    a Python change, or a revision whose effect cannot be rendered (``opaque_sql``)."""
    if change.kind == ChangeKind.ALEMBIC and not change.statements:
        from stairway.schema.histories.alembic_render import upgrade_sql

        return upgrade_sql(change)[0]
    return change.statements


def opaque_sql(change: Change) -> str:
    """Why the change's SQL cannot be known without running it; empty when it can."""
    if change.kind == ChangeKind.PYTHON:
        return "a Python change"
    if change.kind == ChangeKind.ALEMBIC and not change.statements:
        from stairway.schema.histories.alembic_render import upgrade_sql

        return upgrade_sql(change)[1]
    return change.opaque
