"""ALTER TABLE under the phase rules: what each action takes from the running release, and the
locks it holds. Actions sqlglot cannot parse are read from their tokens, one action at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp
from sqlglot.tokenizer_core import Token, TokenType

from stairway.schema import phase_findings as hits
from stairway.schema.loosening import loose_constraint
from stairway.schema.phase_findings import Hit
from stairway.schema.phase_locks import LockMode
from stairway.schema.phase_scope import (
    Scope,
    column_key,
    keyword,
    named_table,
    paren_depths,
    parse_tokens,
    sql_names,
    summary,
    table_key,
    token_list,
    top_level_words,
)
from stairway.schema.shape import set_not_null_is_noop, type_change_is_safe

_VOLATILE_FUNCTIONS = frozenset(
    {
        "clock_timestamp",
        "timeofday",
        "random",
        "random_normal",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuidv4",
        "uuidv7",
        "nextval",
    }
)
_VOLATILE_NODES = (exp.Rand, exp.Randn, exp.Uuid)
_SERIAL_TYPES = frozenset(
    {exp.DataType.Type.SERIAL, exp.DataType.Type.BIGSERIAL, exp.DataType.Type.SMALLSERIAL}
)
_GENERATED = (exp.GeneratedAsIdentityColumnConstraint, exp.ComputedColumnConstraint)
_VALIDATED = (exp.ForeignKey, exp.Reference, exp.CheckColumnConstraint)
_INDEXED = (exp.UniqueColumnConstraint, exp.PrimaryKey, exp.PrimaryKeyColumnConstraint)


def alter(tree: exp.Alter, scope: Scope) -> list[Hit]:
    """The hits of an ALTER statement sqlglot parsed; its locks entered in ``scope``."""
    kind = str(tree.args.get("kind") or "").upper()
    actions = list(tree.args.get("actions") or [])
    scope.table = table_key(tree.this, scope) if kind == "TABLE" else ""
    if kind == "TABLE":
        _alter_table_locks(actions, scope)
        if scope.table in scope.created:
            return []
    table = tree.this.sql(scope.dialect) if tree.this else ""
    found: list[Hit] = []
    for action in actions:
        found += _action(action, table, bool(tree.args.get("not_valid")), scope)
    return found


def _alter_table_locks(actions: Sequence[exp.Expression], scope: Scope) -> None:
    """ACCESS EXCLUSIVE for most actions; adding a foreign key takes SHARE ROW EXCLUSIVE on
    both tables instead (PostgreSQL's ALTER TABLE, "ADD table_constraint")."""
    references = [ref for action in actions for ref in action.find_all(exp.Reference)]
    for reference in references:
        scope.lock(table_key(reference.this, scope), LockMode.SHARE_ROW_EXCLUSIVE)
    foreign_keys_only = all(
        isinstance(action, exp.AddConstraint) and action.find(exp.ForeignKey) is not None
        for action in actions
    )
    mode = LockMode.SHARE_ROW_EXCLUSIVE if foreign_keys_only else LockMode.ACCESS_EXCLUSIVE
    scope.lock(scope.table, mode)


def _action(action: exp.Expression, table: str, not_valid: bool, scope: Scope) -> list[Hit]:
    if isinstance(action, exp.Drop):
        return _drop_action(action, scope)
    if isinstance(action, (exp.AlterRename, exp.RenameColumn)):
        return [hits.rename_hit(scope.statement)]
    if isinstance(action, exp.AlterColumn):
        return _alter_column(action, table, scope)
    if isinstance(action, exp.ColumnDef):
        return _add_column(action, table, scope)
    if isinstance(action, exp.AddConstraint) and scope.postgres:
        return _add_constraint(action, table, not_valid, scope)
    return []


def _drop_action(action: exp.Drop, scope: Scope) -> list[Hit]:
    """DROP COLUMN takes something away; dropping a foreign key or a check only loosens."""
    kind = str(action.args.get("kind") or "").upper()
    names = list(action.args.get("tables") or [])
    if kind == "CONSTRAINT" and names and all(loose_constraint(n.name) for n in names):
        return []
    return [hits.drop_hit(f"DROP {kind} {sql_names(names, scope)}")]


def _alter_column(action: exp.AlterColumn, table: str, scope: Scope) -> list[Hit]:
    column = action.this.sql(scope.dialect)
    if action.args.get("dtype"):
        if _only_widens(action, scope):
            return []
        rewrite = _rewrite_if(scope, f"changing the type of {table}.{column}", _TYPE_INSTEAD)
        return [hits.type_hit(column, table), *rewrite]
    if action.args.get("allow_null") is False:
        if _not_null_already(action, scope):
            return []
        scope.grow(f"scans {table} to check {column}")
        return [hits.set_not_null_hit(column, table)]
    if action.args.get("drop") and action.args.get("allow_null") is None:
        return [hits.drop_default_hit(column, table)]
    return []


def _only_widens(action: exp.AlterColumn, scope: Scope) -> bool:
    """Whether the new type only widens the column as earlier changes left it (or is the type
    it has): PostgreSQL then changes the catalog alone, and every value reads as before."""
    shape = scope.shape()
    dtype = action.args.get("dtype")
    if shape is None or not isinstance(dtype, exp.DataType):
        return False
    # sqlglot leaves False, not None, where the statement has no USING or COLLATE
    using, collate = action.args.get("using") or None, action.args.get("collate") or None
    return type_change_is_safe(shape, scope.table, action.this, dtype, using=using, collate=collate)


def _not_null_already(action: exp.AlterColumn, scope: Scope) -> bool:
    """Whether earlier changes left the column NOT NULL: SET NOT NULL then checks nothing."""
    shape = scope.shape()
    return shape is not None and set_not_null_is_noop(
        shape, scope.table, column_key(action.this, scope)
    )


def _add_column(column: exp.ColumnDef, table: str, scope: Scope) -> list[Hit]:
    kinds = [c.args.get("kind") for c in column.args.get("constraints") or []]
    name, found = column.this.sql(scope.dialect), []
    scope.added.setdefault(scope.table, set()).add(column_key(column.this, scope))
    if _not_null(kinds) and not _has_value(column, kinds):
        found.append(hits.not_null_hit(name, table))
    if scope.postgres and any(isinstance(kind, _VALIDATED + _INDEXED) for kind in kinds):
        found.append(hits.inline_constraint_hit(name, table))
    if _rewrites(column, kinds):
        found += _rewrite_if(scope, f"adding {name} with a value computed per row", _ADD_INSTEAD)
    return found


def _not_null(kinds: Sequence[exp.Expression | None]) -> bool:
    return any(
        isinstance(kind, exp.PrimaryKeyColumnConstraint)
        or (isinstance(kind, exp.NotNullColumnConstraint) and not kind.args.get("allow_null"))
        for kind in kinds
    )


def _has_value(column: exp.ColumnDef, kinds: Sequence[exp.Expression | None]) -> bool:
    """Whether existing rows and inserts that omit the column get a non-null value."""
    if _serial(column) or any(isinstance(kind, _GENERATED) for kind in kinds):
        return True
    return any(
        isinstance(kind, exp.DefaultColumnConstraint) and not isinstance(kind.this, exp.Null)
        for kind in kinds
    )


def _serial(column: exp.ColumnDef) -> bool:
    dtype = column.args.get("kind")
    return isinstance(dtype, exp.DataType) and dtype.this in _SERIAL_TYPES


def column_rewrites(column: exp.ColumnDef) -> bool:
    """Whether adding ``column`` makes PostgreSQL rewrite the table (a value computed per row)."""
    return _rewrites(column, [c.args.get("kind") for c in column.args.get("constraints") or []])


def _rewrites(column: exp.ColumnDef, kinds: Sequence[exp.Expression | None]) -> bool:
    if _serial(column) or any(isinstance(kind, _GENERATED) for kind in kinds):
        return True
    return any(
        isinstance(kind, exp.DefaultColumnConstraint) and _volatile(kind.this) for kind in kinds
    )


def _volatile(node: exp.Expression) -> bool:
    return any(
        isinstance(child, _VOLATILE_NODES)
        or (isinstance(child, exp.Anonymous) and child.name.lower() in _VOLATILE_FUNCTIONS)
        for child in node.walk()
    )


_TYPE_INSTEAD = (
    "no rewrite happens only when the old type is binary-coercible to the new one (varchar(n) "
    "to text or to a longer varchar); otherwise add a new column and backfill it in batches"
)
_ADD_INSTEAD = (
    "add the column without a default (or with a constant one), then set the default and "
    "backfill existing rows in batches in a background change"
)


def _rewrite_if(scope: Scope, what: str, instead: str) -> list[Hit]:
    scope.grow("rewrites the table")
    return [hits.rewrite_hit(what, instead)] if scope.postgres else []


def _add_constraint(
    action: exp.AddConstraint, table: str, not_valid: bool, scope: Scope
) -> list[Hit]:
    found: list[Hit] = []
    for item in action.expressions:
        what = summary(f"ADD {item.sql(scope.dialect)}")
        for kind in item.expressions if isinstance(item, exp.Constraint) else [item]:
            hit = _constraint_hit(kind, what, table, not_valid)
            found += [hit] if hit else []
    if found:
        scope.grow(f"checks every row of {table}")
    return found


def _constraint_hit(kind: exp.Expression, what: str, table: str, not_valid: bool) -> Hit | None:
    if isinstance(kind, _INDEXED):
        return hits.constraint_hit(hits.UNIQUE, what, table)
    if isinstance(kind, exp.ExcludeColumnConstraint):
        return hits.constraint_hit(hits.EXCLUDE, what, table)
    if isinstance(kind, _VALIDATED) and not not_valid:
        return hits.constraint_hit(hits.NOT_VALID, what, table)
    return None


# --- statements sqlglot cannot parse: leading keywords of the token stream -----------------


def scan_words(words: Sequence[str], what: str) -> list[Hit]:
    """DROP, RENAME or TRUNCATE among top-level words; DROP NOT NULL relaxes and is fine."""
    if words[0] == "TRUNCATE":
        return [hits.truncate_hit(what)]
    if "RENAME" in words:
        return [hits.rename_hit(what)]
    drops = [i for i, word in enumerate(words) if word == "DROP"]
    if any(words[i + 1 : i + 3] != ["NOT", "NULL"] for i in drops):
        return [hits.drop_hit(what)]
    return []


def table_actions(text: str, tokens: Sequence[Token]) -> list[str]:
    """``ALTER TABLE name action`` for each comma-separated action, so each parses on its own."""
    start = _after_table_name(tokens)
    if start >= len(tokens):
        return [text]
    header, depths = text[: tokens[start].start], paren_depths(tokens)
    commas = [i for i in range(start, len(tokens)) if _is_comma(tokens[i]) and not depths[i]]
    firsts, lasts = [start, *(c + 1 for c in commas)], [*(c - 1 for c in commas), len(tokens) - 1]
    spans = zip(firsts, lasts, strict=True)
    return [header + text[tokens[a].start : tokens[b].end + 1] for a, b in spans if a <= b]


def _is_comma(token: Token) -> bool:
    return bool(token.token_type == TokenType.COMMA)


def _after_table_name(tokens: Sequence[Token]) -> int:
    return _after_name(tokens, _name_start(tokens))


def _name_start(tokens: Sequence[Token]) -> int:
    """Where the table name of ``ALTER TABLE [IF EXISTS] [ONLY] name`` starts."""
    index = 2
    if index < len(tokens) and keyword(tokens[index]) == "IF":
        index += 2
    if index < len(tokens) and keyword(tokens[index]) == "ONLY":
        index += 1
    return index


def _after_name(tokens: Sequence[Token], index: int) -> int:
    """The token after the (possibly qualified) name starting at ``index``."""
    index += 1
    while index + 1 < len(tokens) and tokens[index].token_type == TokenType.DOT:
        index += 2
    if index < len(tokens) and tokens[index].token_type == TokenType.STAR:
        index += 1
    return index


def alter_piece(text: str, scope: Scope) -> list[Hit]:
    """The hits of ``ALTER TABLE name action``, one action of a statement sqlglot could not
    parse whole."""
    scope.statement = summary(text)
    tokens = token_list(text, scope.dialect)
    trees = parse_tokens(text, tokens, scope.dialect)
    if trees and isinstance(trees[0], exp.Alter):
        return alter(trees[0], scope)
    return _unparsed_action(text, tokens, scope)


def _unparsed_action(text: str, tokens: Sequence[Token], scope: Scope) -> list[Hit]:
    """An ALTER TABLE action sqlglot cannot parse: VALIDATE, unnamed ADD CHECK, and the rest
    (taken to hold ACCESS EXCLUSIVE, as most ALTER TABLE actions do)."""
    start, end = _name_start(tokens), _after_table_name(tokens)
    if end > len(tokens) or start >= end:
        return scan_words(top_level_words(tokens), scope.statement)
    table = text[tokens[start].start : tokens[end - 1].end + 1]
    key, action = named_table(table, scope), top_level_words(tokens[end:])
    if action[:1] == ["VALIDATE"]:
        scope.lock(key, LockMode.SHARE_UPDATE_EXCLUSIVE)
        scope.grow(f"checks every row of {table}")
        return []
    scope.lock(key, LockMode.ACCESS_EXCLUSIVE)
    if key in scope.created:
        return []
    if action[:2] == ["ADD", "CHECK"]:
        return _unnamed_check(action, table, scope)
    return scan_words(top_level_words(tokens), scope.statement)


def _unnamed_check(action: Sequence[str], table: str, scope: Scope) -> list[Hit]:
    """``ADD CHECK (...)`` without a constraint name, which sqlglot does not parse."""
    not_valid = any(action[i : i + 2] == ["NOT", "VALID"] for i in range(len(action)))
    if not_valid or not scope.postgres:
        return []
    scope.grow(f"checks every row of {table}")
    what = summary(scope.statement[scope.statement.upper().find(" ADD ") + 1 :])
    return [hits.constraint_hit(hits.NOT_VALID, what, table)]
