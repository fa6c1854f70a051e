"""Which columns an UPDATE sets only where they are NULL: filling missing values, not changing
values the running release wrote.

An UPDATE changes rows the running release reads, which an ``expand`` change may not do. One that
sets a column only on rows where that column IS NULL does not overwrite anything that release
wrote: it fills what is missing, as a backfill does. The restriction counts when it is part of
the WHERE (joined by AND), written

- on the updated table itself: ``UPDATE t SET c = ... WHERE c IS NULL``;
- in a subquery of the same table the WHERE takes the rows from:
  ``WHERE t.id IN (SELECT id FROM t WHERE c IS NULL LIMIT 500)``;
- in a WITH query or FROM subquery of the same table the WHERE joins to on the same column:
  ``WITH batch AS (SELECT id FROM t WHERE c IS NULL LIMIT 500) UPDATE t SET c = ... FROM batch
  WHERE t.id = batch.id``.

The column joined on is taken to identify a row, as the primary key of a batched backfill does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlglot import exp

from stairway.schema.phase_scope import Scope, column_key, table_key


def null_filled(update: exp.Update, scope: Scope) -> set[str]:
    """The columns (folded names) ``update`` changes only on rows where they are NULL."""
    target = update.this
    if not isinstance(target, exp.Table):
        return set()
    names = {_folded(target.alias_or_name, scope)}
    sources = _sources(update, scope)
    bare = not update.args.get("from_")  # an unqualified column is the target's only then
    found: set[str] = set()
    for condition in _conjuncts(update.args.get("where")):
        found |= _null_columns(condition, names, bare, scope)
        found |= _by_key(condition, _Target(target, names, bare), sources, scope)
    return found


def _folded(name: str, scope: Scope) -> str:
    return column_key(exp.to_identifier(name), scope)


def _conjuncts(node: exp.Expression | None) -> Iterator[exp.Expression]:
    """The conditions ANDed together in a WHERE (or any condition)."""
    if isinstance(node, exp.Where):
        node = node.this
    if isinstance(node, exp.Paren):
        yield from _conjuncts(node.this)
    elif isinstance(node, exp.And):
        yield from _conjuncts(node.this)
        yield from _conjuncts(node.expression)
    elif node is not None:
        yield node


def _null_columns(condition: exp.Expression, names: set[str], bare: bool, scope: Scope) -> set[str]:
    """``column IS NULL`` on a column of the table called one of ``names``."""
    if not isinstance(condition, exp.Is) or condition.args.get("negate"):
        return set()
    column = condition.this
    if not isinstance(condition.expression, exp.Null) or not isinstance(column, exp.Column):
        return set()
    ours = _folded(column.table, scope) in names if column.table else bare
    return {column_key(column.this, scope)} if ours else set()


def _restricted(query: exp.Expression, target: exp.Table, scope: Scope) -> tuple[str, set[str]]:
    """For ``SELECT key FROM target WHERE ...``: the key it returns (folded) and the columns
    its WHERE restricts to NULL; ("", set()) for any other query."""
    if not isinstance(query, exp.Select) or len(query.expressions) != 1 or query.args.get("joins"):
        return "", set()
    source, key = query.args.get("from_"), query.expressions[0]
    table = source.this if source else None
    if (
        not isinstance(table, exp.Table)
        or table.args.get("joins")
        or not isinstance(key, exp.Column)
    ):
        return "", set()
    if table_key(table, scope) != table_key(target, scope):
        return "", set()
    names = {_folded(table.alias_or_name, scope)}
    where = query.args.get("where")
    nulls = {c for cond in _conjuncts(where) for c in _null_columns(cond, names, True, scope)}
    return column_key(key.this, scope), nulls


def _sources(update: exp.Update, scope: Scope) -> dict[str, exp.Expression]:
    """The queries the UPDATE's FROM names, by the name its WHERE calls them: WITH queries
    and subqueries (a table of the FROM hides a WITH query of its name)."""
    ctes = {_folded(cte.alias, scope): cte.this for cte in _ctes(update)}
    found: dict[str, exp.Expression] = {}
    source = update.args.get("from_")
    items = [source.this, *(j.this for j in source.this.args.get("joins") or [])] if source else []
    for item in items:
        name = _folded(item.alias_or_name, scope)
        if isinstance(item, exp.Subquery):
            found[name] = item.this
        elif isinstance(item, exp.Table) and not item.db and _folded(item.name, scope) in ctes:
            found[name] = ctes[_folded(item.name, scope)]
    return found


def _ctes(update: exp.Update) -> list[exp.CTE]:
    with_ = update.args.get("with_")
    return list(with_.expressions) if isinstance(with_, exp.With) else []


@dataclass(frozen=True)
class _Target:
    """The updated table, the names its columns are qualified with, and whether an
    unqualified column is its (no FROM list)."""

    table: exp.Table
    names: set[str]
    bare: bool

    def column(self, node: exp.Expression, scope: Scope) -> str:
        """The folded name of ``node`` when it is a column of the target, else ""."""
        if not isinstance(node, exp.Column):
            return ""
        ours = _folded(node.table, scope) in self.names if node.table else self.bare
        return column_key(node.this, scope) if ours else ""


def _by_key(
    condition: exp.Expression, target: _Target, sources: dict[str, exp.Expression], scope: Scope
) -> set[str]:
    """Columns restricted to NULL by the rows of a subquery the condition takes the target's
    rows from, matched on the same key column."""
    if isinstance(condition, exp.In) and isinstance(condition.args.get("query"), exp.Subquery):
        return _keyed(
            target.column(condition.this, scope), condition.args["query"].this, target, scope
        )
    if not isinstance(condition, exp.EQ):
        return set()
    pairs = [(condition.this, condition.expression), (condition.expression, condition.this)]
    for mine, theirs in pairs:
        query = (
            sources.get(_folded(theirs.table, scope)) if isinstance(theirs, exp.Column) else None
        )
        if query is not None and isinstance(theirs, exp.Column):
            key = target.column(mine, scope)
            if key == column_key(theirs.this, scope):
                return _keyed(key, query, target, scope)
    return set()


def _keyed(key: str, query: exp.Expression, target: _Target, scope: Scope) -> set[str]:
    """The columns ``query`` restricts to NULL when it returns the target's column ``key``."""
    returned, nulls = _restricted(query, target.table, scope)
    return nulls if key and returned == key else set()
