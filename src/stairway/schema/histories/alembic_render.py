"""The SQL an Alembic revision amounts to, rendered offline (``alembic upgrade --sql``) for
PostgreSQL: what the phase rules, data-loss rules, estimates and dry runs read.

A revision whose effect is not all in its operations cannot be read this way: one that reads or
writes rows through ``op.get_bind()`` or an ORM session says why, and its expand label cannot be
proven. A Python loop over fixed names renders like the operations it calls; a loop over rows
needs the connection, which is what marks the revision.
"""

from __future__ import annotations

import ast
import functools
import io
from pathlib import Path
from types import ModuleType

from stairway.schema.change import Change
from stairway.schema.dataloss import loses_data
from stairway.schema.sqltext import SqlSyntaxError, Statement, split_statements

Rendered = tuple[tuple[Statement, ...], str]  # the statements, or why there are none
Functions = dict[str, ast.FunctionDef]  # the revision module's functions, by name


def functions_of(path: Path) -> Functions:
    """The top-level functions of the revision file at ``path``, read without running it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def render(
    path: Path, module: ModuleType, table: str, direction: str, functions: Functions
) -> Rendered:
    """The SQL of ``direction()`` of the revision at ``path``, rendered for PostgreSQL."""
    from stairway.schema.histories.alembic_runtime import environment

    reason = opaque_reason(functions, direction)
    if reason:
        return (), reason
    buffer = io.StringIO()
    options = {"as_sql": True, "output_buffer": buffer, "literal_binds": True}
    try:
        with environment(path.parent, dialect_name="postgresql", version_table=table, **options):
            getattr(module, direction)()
    except Exception as err:  # the product's code, run in offline mode
        return (), f"rendering it as SQL failed ({type(err).__name__}: {err})"
    try:
        return tuple(split_statements(buffer.getvalue())), ""
    except SqlSyntaxError as err:
        return (), f"the SQL Alembic renders for it does not parse ({err})"


@functools.cache
def upgrade_sql(change: Change) -> Rendered:
    """The SQL of the revision's ``upgrade()``, rendered on first use."""
    from stairway.schema.histories.alembic_runtime import revision_module

    table = change.origin.table if change.origin else "alembic_version"
    module = revision_module(change.path, change.checksum)
    return render(change.path, module, table, "upgrade", functions_of(change.path))


def loses(change: Change) -> str | None:
    """What the revision's ``downgrade()`` loses, read from its rendered SQL (docs/catalog.md's
    rules); unknown, and so treated as a loss, when it cannot be rendered. Rendered only when a
    downgrade is asked for."""
    from stairway.schema.histories.alembic_runtime import revision_module

    table = change.origin.table if change.origin else "alembic_version"
    module = revision_module(change.path, change.checksum)
    statements, opaque = render(change.path, module, table, "downgrade", functions_of(change.path))
    if opaque:
        return f"unknown: {opaque}"
    losing = loses_data(statements)
    return f"its downgrade() runs {losing.describe()}" if losing else None


def autocommits(path: Path, text: str) -> bool:
    """Whether the revision's code opens an autocommit block
    (``op.get_context().autocommit_block()``), which commits part-way: such a revision cannot
    run as one transaction. ``text`` is the file's text; it is parsed only when it names one."""
    if "autocommit_block" not in text:
        return False
    tree = ast.parse(text, filename=str(path))
    nodes = ast.walk(tree)
    return any(isinstance(n, ast.Attribute) and n.attr == "autocommit_block" for n in nodes)


def opaque_reason(functions: Functions, function: str) -> str:
    """Why ``function`` of the revision does more than its operations say: rows through the
    connection or an ORM session; empty when it does not."""
    body = functions.get(function)
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
