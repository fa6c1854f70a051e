"""The SQL an Alembic revision amounts to, rendered offline (``alembic upgrade --sql``) for
PostgreSQL: what the phase rules, data-loss rules, estimates and dry runs read.

A revision whose effect is not all in its operations cannot be read this way: one that reads or
writes rows through ``op.get_bind()`` or an ORM session says why, and its expand label cannot be
proven. A Python loop over fixed names renders like the operations it calls; a loop over rows
needs the connection, which is what marks the revision.
"""

from __future__ import annotations

import ast
import io
from pathlib import Path
from typing import TYPE_CHECKING

from stairway.schema.histories.spec import HistorySpec
from stairway.schema.sqltext import SqlSyntaxError, Statement, split_statements

if TYPE_CHECKING:
    from alembic.script import Script

Rendered = tuple[tuple[Statement, ...], str]  # the statements, or why there are none


def render_upgrade(spec: HistorySpec, script: Script) -> Rendered:
    """The SQL of the revision's ``upgrade()``, or () and why it cannot be rendered."""
    return render(spec, script, "upgrade")


def render(spec: HistorySpec, script: Script, direction: str) -> Rendered:
    """The SQL of ``direction()`` of the revision, rendered for PostgreSQL."""
    from stairway.schema.histories.alembic_runtime import environment

    path = Path(script.path)
    reason = opaque_reason(path, direction)
    if reason:
        return (), reason
    buffer = io.StringIO()
    options = {"as_sql": True, "output_buffer": buffer, "literal_binds": True}
    try:
        with environment(
            path.parent, dialect_name="postgresql", version_table=spec.table, **options
        ):
            getattr(script.module, direction)()
    except Exception as err:  # the product's code, run in offline mode
        return (), f"rendering it as SQL failed ({type(err).__name__}: {err})"
    try:
        return tuple(split_statements(buffer.getvalue())), ""
    except SqlSyntaxError as err:
        return (), f"the SQL Alembic renders for it does not parse ({err})"


def opaque_reason(path: Path, function: str) -> str:
    """Why ``function`` of the revision at ``path`` does more than its operations say: rows
    through the connection or an ORM session; empty when it does not."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    body = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None
    )
    if body is None:
        return ""
    for node in ast.walk(body):
        reason = _reason(node)
        if reason:
            return f"{function}() {reason} (line {getattr(node, 'lineno', body.lineno)})"
    return ""


def _reason(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute) and node.attr == "get_bind":
        return "works on the rows through the connection (get_bind())"
    if isinstance(node, ast.Name | ast.Attribute) and _name(node) in ("Session", "sessionmaker"):
        return "reads or writes rows through an ORM session"
    return ""


def _name(node: ast.Name | ast.Attribute) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr
