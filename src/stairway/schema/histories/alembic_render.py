"""The SQL an Alembic revision amounts to, rendered offline (``alembic upgrade --sql``) for the
site's database (PostgreSQL or SQLite): what the phase rules, data-loss rules, estimates and dry
runs read.

On SQLite, Alembic's batch mode rebuilds a table it cannot alter in place: a copy is created and
filled, the table dropped and the copy renamed. Rendered with the table given (``copy_from``),
that is the SQL, whose ``DROP TABLE`` the phase rules refuse as expand; without it Alembic cannot
render the rebuild offline, and the revision says it rebuilds the table.

A revision whose effect is not all in its operations cannot be read this way: one that reads or
writes rows through ``op.get_bind()`` or an ORM session says why, and its expand label cannot be
proven. A Python loop over fixed names renders like the operations it calls; a loop over rows
needs the connection, which is what marks the revision.
"""

from __future__ import annotations

import ast
import functools
import io
import re
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
    path: Path,
    module: ModuleType,
    table: str,
    direction: str,
    functions: Functions,
    dialect: str = "postgresql",
) -> Rendered:
    """The SQL of ``direction()`` of the revision at ``path``, rendered for ``dialect``."""
    from stairway.schema.histories.alembic_runtime import environment

    reason = opaque_reason(functions, direction)
    if reason:
        return (), reason
    buffer = io.StringIO()
    options = {"as_sql": True, "output_buffer": buffer, "literal_binds": True}
    try:
        with environment(path.parent, dialect_name=dialect, version_table=table, **options):
            getattr(module, direction)()
    except Exception as err:  # the product's code, run in offline mode
        failed = f"rendering it as SQL failed ({type(err).__name__}: {err})"
        return (), _rebuilds(err, direction) or failed
    try:
        return tuple(split_statements(buffer.getvalue())), ""
    except SqlSyntaxError as err:
        return (), f"the SQL Alembic renders for it does not parse ({err})"


# Alembic's refusal to render a batch rebuild offline without the table (``copy_from``)
_REBUILD = re.compile(
    r"batch mode with dialect (\w+) requires a live database connection with "
    r'which to reflect the table "([^"]+)"'
)
_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _rebuilds(err: Exception, direction: str) -> str:
    """What the revision does when Alembic could not render its batch rebuild offline; empty
    for any other failure."""
    found = _REBUILD.search(str(err))
    if found is None:
        return ""
    dialect, table = _NAMES.get(found.group(1), found.group(1)), found.group(2)
    verdict = ": a rebuild is not expand" if direction == "upgrade" else ""
    return (
        f"on {dialect}, its batch operations rebuild table {table} (a copy created and filled, "
        f"the table dropped, the copy renamed; Alembic renders that offline only when given "
        f"the table as copy_from){verdict}"
    )


@functools.cache
def upgrade_sql(change: Change) -> Rendered:
    """The SQL of the revision's ``upgrade()``, rendered on first use."""
    from stairway.schema.histories.alembic_runtime import revision_module

    table = change.origin.table if change.origin else "alembic_version"
    module = revision_module(change.path, change.checksum)
    functions = functions_of(change.path)
    return render(change.path, module, table, "upgrade", functions, change.dialect)


def loses(change: Change) -> str | None:
    """What the revision's ``downgrade()`` loses, read from its rendered SQL (docs/catalog.md's
    rules); unknown, and so treated as a loss, when it cannot be rendered. Rendered only when a
    downgrade is asked for."""
    from stairway.schema.histories.alembic_runtime import revision_module

    table = change.origin.table if change.origin else "alembic_version"
    module = revision_module(change.path, change.checksum)
    functions = functions_of(change.path)
    statements, opaque = render(change.path, module, table, "downgrade", functions, change.dialect)
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
