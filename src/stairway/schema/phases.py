"""Checking a change's declared phase against what its statements actually do.

An ``expand`` change must leave the running release working, so statements that remove, rename
or tighten what that release uses contradict the label: those findings are blocking. Statements
that are compatible but hold heavy PostgreSQL locks are reported as warnings in every phase.

Statements are read with sqlglot's parser. What it cannot parse (it falls back to ``Command``)
is read from its token stream instead, so strings and dollar-quoted bodies are never looked into.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.tokenizer_core import Token, TokenType

from stairway.schema.change import Phase
from stairway.schema.sqltext import Statement

_NOT_KEYWORDS = frozenset(
    {
        TokenType.STRING,
        TokenType.IDENTIFIER,
        TokenType.HEREDOC_STRING,
        TokenType.NATIONAL_STRING,
        TokenType.RAW_STRING,
        TokenType.BIT_STRING,
        TokenType.HEX_STRING,
        TokenType.BYTE_STRING,
        TokenType.UNICODE_STRING,
    }
)
# PostgreSQL functions marked VOLATILE: a column default calling one is evaluated per row, so
# ADD COLUMN must rewrite the table. now() and CURRENT_TIMESTAMP are STABLE and do not.
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


@dataclass(frozen=True)
class PhaseFinding:
    """What one statement does that its change's phase does not allow (or should know about)."""

    rule: str
    blocking: bool
    line: int
    message: str

    def describe(self) -> str:
        """The finding as one line: its line, ``error`` or ``warning``, its rule and its message."""
        level = "error" if self.blocking else "warning"
        return f"line {self.line}: {level} [{self.rule}] {self.message}"


@dataclass(frozen=True)
class _Hit:
    rule: str
    blocking: bool
    message: str


@dataclass
class _Scope:
    dialect: str
    postgres: bool
    # Tables created earlier in the same change: the running release cannot be using them yet.
    created: set[str] = field(default_factory=set)
    statement: str = ""  # the statement (or ALTER TABLE action) being read, for messages


def check_phase(
    statements: Sequence[Statement], phase: Phase, dialect: str = "postgres"
) -> list[PhaseFinding]:
    """Findings for ``statements`` labelled ``phase``; blocking ones only for ``expand``."""
    name = "postgres" if dialect == "postgresql" else dialect
    scope = _Scope(name, postgres=isinstance(Dialect.get_or_raise(name), Postgres))
    findings: list[PhaseFinding] = []
    for statement in statements:
        for hit in _inspect(statement.text, scope):
            if hit.blocking and phase != Phase.EXPAND:
                continue
            findings.append(PhaseFinding(hit.rule, hit.blocking, statement.line, hit.message))
    return findings


def _inspect(text: str, scope: _Scope) -> list[_Hit]:
    tokens = _tokens(text, scope.dialect)
    if not tokens:
        return []
    scope.statement = _summary(text)
    if _keyword(tokens[0]) in ("VACUUM", "CLUSTER"):
        return _maintenance(tokens, scope)
    trees = _parse(text, tokens, scope.dialect)
    if trees is None or any(isinstance(tree, exp.Command) for tree in trees):
        return _fallback(text, tokens, scope)
    return [hit for tree in trees for hit in _tree(tree, scope)]


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    # DO blocks and function bodies routinely fall back to Command, and the token fallback
    # handles them; sqlglot would log a warning for each one.
    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _parse(text: str, tokens: list[Token], dialect: str) -> list[exp.Expression] | None:
    # The tokens are already at hand: tokenizing the text again would double the cost.
    try:
        with _quiet_sqlglot():
            trees = Dialect.get_or_raise(dialect).parser().parse(tokens, text)
    except SqlglotError:
        return None
    return [tree for tree in trees if isinstance(tree, exp.Expression)]


def _tokens(text: str, dialect: str) -> list[Token]:
    try:
        return list(Dialect.get_or_raise(dialect).tokenize(text))
    except SqlglotError:
        return []


def _keyword(token: Token) -> str:
    """The token as an upper-case word, or "" for strings and quoted identifiers."""
    return "" if token.token_type in _NOT_KEYWORDS else token.text.upper()


def _depths(tokens: Sequence[Token]) -> list[int]:
    """Parenthesis depth at each token: actions and options live at depth 0."""
    depths, depth = [], 0
    for token in tokens:
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
        depths.append(depth)
    return depths


def _top_level_words(tokens: Sequence[Token]) -> list[str]:
    return [_keyword(t) for t, depth in zip(tokens, _depths(tokens), strict=True) if depth == 0]


# --- statements sqlglot parses -------------------------------------------------------------


def _tree(tree: exp.Expression, scope: _Scope) -> list[_Hit]:
    deletes = [node for node in tree.find_all(exp.Delete) if not node.args.get("where")]
    hits = [_delete_all(delete, scope) for delete in deletes]
    if isinstance(tree, exp.Drop):
        hits += _drop(tree, scope)
    elif isinstance(tree, exp.Alter):
        hits += _alter(tree, scope)
    elif isinstance(tree, exp.TruncateTable):
        hits.append(_truncate(tree, scope))
    elif isinstance(tree, exp.Create):
        hits += _create(tree, scope)
    return hits


def _table_key(node: exp.Expression | None, scope: _Scope) -> str:
    if isinstance(node, exp.Schema):
        node = node.this
    if not isinstance(node, exp.Table):
        return ""
    return str(normalize_identifiers(node.copy(), dialect=scope.dialect).sql(scope.dialect))


def _names(nodes: Sequence[exp.Expression], scope: _Scope) -> str:
    return ", ".join(node.sql(scope.dialect) for node in nodes)


def _drop(tree: exp.Drop, scope: _Scope) -> list[_Hit]:
    tables = list(tree.args.get("tables") or [])
    kind = str(tree.args.get("kind") or "").upper()
    if kind == "TABLE" and tables and all(_table_key(t, scope) in scope.created for t in tables):
        return []
    return [_drop_hit(f"DROP {kind} {_names(tables, scope)}".strip())]


def _drop_hit(what: str) -> _Hit:
    return _Hit(
        "drop",
        True,
        f"{what} removes something the running release may still use; stop using it in the "
        "code first, then drop it in a contract change",
    )


def _truncate(tree: exp.TruncateTable, scope: _Scope) -> _Hit:
    return _Hit(
        "truncate",
        True,
        f"TRUNCATE {_names(tree.expressions, scope)} deletes every row the running release may "
        "still read; remove data in a contract change once no code needs it",
    )


def _delete_all(delete: exp.Delete, scope: _Scope) -> _Hit:
    return _Hit(
        "delete-without-where",
        True,
        f"DELETE FROM {delete.this.sql(scope.dialect)} without WHERE deletes every row the "
        "running release may still read; delete only the rows meant, with a WHERE clause, in "
        "a background change, or remove the data in a contract change",
    )


def _create(tree: exp.Create, scope: _Scope) -> list[_Hit]:
    kind = str(tree.args.get("kind") or "").upper()
    if kind == "TABLE":
        scope.created.add(_table_key(tree.this, scope))
        return []
    if kind != "INDEX" or tree.args.get("concurrently") or not scope.postgres:
        return []
    table = tree.this.args.get("table") if isinstance(tree.this, exp.Index) else None
    if _table_key(table, scope) in scope.created:
        return []
    return [_index_hit(table.sql(scope.dialect) if table else "its table")]


def _index_hit(table: str) -> _Hit:
    return _Hit(
        "index-without-concurrently",
        False,
        f"CREATE INDEX without CONCURRENTLY holds a SHARE lock on {table}, blocking writes for "
        "the whole build; use CREATE INDEX CONCURRENTLY, alone in a change marked "
        "`-- transaction: none`",
    )


def _alter(tree: exp.Alter, scope: _Scope) -> list[_Hit]:
    kind = str(tree.args.get("kind") or "").upper()
    if kind == "TABLE" and _table_key(tree.this, scope) in scope.created:
        return []
    table = tree.this.sql(scope.dialect) if tree.this else ""
    hits: list[_Hit] = []
    for action in tree.args.get("actions") or []:
        hits += _action(action, table, bool(tree.args.get("not_valid")), scope)
    return hits


def _action(action: exp.Expression, table: str, not_valid: bool, scope: _Scope) -> list[_Hit]:
    if isinstance(action, exp.Drop):
        kind = str(action.args.get("kind") or "").upper()
        return [_drop_hit(f"DROP {kind} {_names(action.args.get('tables') or [], scope)}")]
    if isinstance(action, (exp.AlterRename, exp.RenameColumn)):
        return [_rename_hit(scope.statement)]
    if isinstance(action, exp.AlterColumn):
        return _alter_column(action, table, scope)
    if isinstance(action, exp.ColumnDef):
        return _add_column(action, table, scope)
    if isinstance(action, exp.AddConstraint) and scope.postgres:
        return _add_constraint(action, table, not_valid, scope)
    return []


def _rename_hit(what: str) -> _Hit:
    return _Hit(
        "rename",
        True,
        f"{what} renames something the running release still uses by its old name; add the "
        "new name alongside the old one (a new column kept in sync, or a view), move the code "
        "to it, and remove the old name in a contract change",
    )


def _alter_column(action: exp.AlterColumn, table: str, scope: _Scope) -> list[_Hit]:
    column = action.this.sql(scope.dialect)
    if action.args.get("dtype"):
        rewrite = _rewrite_if(scope, f"changing the type of {table}.{column}", _TYPE_INSTEAD)
        return [_type_hit(column, table), *rewrite]
    if action.args.get("allow_null") is False:
        return [_set_not_null_hit(column, table)]
    if action.args.get("drop") and action.args.get("allow_null") is None:
        return [_drop_default_hit(column, table)]
    return []


def _type_hit(column: str, table: str) -> _Hit:
    return _Hit(
        "type-change",
        True,
        f"changing the type of {table}.{column} changes what the running release reads and "
        "writes; add a column of the new type, backfill it in a background change, move the "
        "code to it, then drop the old column in a contract change",
    )


def _set_not_null_hit(column: str, table: str) -> _Hit:
    return _Hit(
        "set-not-null",
        True,
        f"SET NOT NULL on {table}.{column} makes inserts from the running release fail when they "
        "omit the column, and scans the table under ACCESS EXCLUSIVE; backfill, then SET NOT "
        "NULL in a contract change (a validated CHECK (column IS NOT NULL) lets PostgreSQL 12+ "
        "skip the scan)",
    )


def _drop_default_hit(column: str, table: str) -> _Hit:
    return _Hit(
        "drop",
        True,
        f"DROP DEFAULT on {table}.{column} changes what the running release gets when it omits "
        "the column (NULL, or a failed insert); drop the default in a contract change",
    )


def _add_column(column: exp.ColumnDef, table: str, scope: _Scope) -> list[_Hit]:
    kinds = [c.args.get("kind") for c in column.args.get("constraints") or []]
    name, hits = column.this.sql(scope.dialect), []
    if _not_null(kinds) and not _has_value(column, kinds):
        hits.append(_not_null_hit(name, table))
    if scope.postgres and any(isinstance(kind, _VALIDATED + _INDEXED) for kind in kinds):
        hits.append(_inline_constraint_hit(name, table))
    if _rewrites(column, kinds):
        hits += _rewrite_if(scope, f"adding {name} with a value computed per row", _ADD_INSTEAD)
    return hits


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


def parse_statement(text: str, dialect: str = "postgres") -> list[exp.Expression] | None:
    """sqlglot's trees for one statement; None when it cannot read it as SQL."""
    tokens = _tokens(text, dialect)
    trees = _parse(text, tokens, dialect) if tokens else None
    if trees is None or any(isinstance(tree, exp.Command) for tree in trees):
        return None
    return trees


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


def _not_null_hit(column: str, table: str) -> _Hit:
    return _Hit(
        "not-null-without-default",
        True,
        f"ADD COLUMN {column} NOT NULL without a DEFAULT fails on a non-empty {table} and breaks "
        "inserts from the running release, which does not know the column; add the column "
        "nullable, backfill, then SET NOT NULL in a contract change (or give it a DEFAULT)",
    )


def _inline_constraint_hit(column: str, table: str) -> _Hit:
    return _Hit(
        "constraint-without-not-valid",
        True,
        f"ADD COLUMN {column} with an inline constraint creates the constraint under the ACCESS "
        f"EXCLUSIVE lock of ADD COLUMN on {table}; add the column alone, then add the "
        "constraint in a later change (NOT VALID and VALIDATE, or USING INDEX for a unique one)",
    )


_TYPE_INSTEAD = (
    "no rewrite happens only when the old type is binary-coercible to the new one (varchar(n) "
    "to text or to a longer varchar); otherwise add a new column and backfill it in batches"
)
_ADD_INSTEAD = (
    "add the column without a default (or with a constant one), then set the default and "
    "backfill existing rows in batches in a background change"
)


def _rewrite_if(scope: _Scope, what: str, instead: str) -> list[_Hit]:
    if not scope.postgres:
        return []
    message = (
        f"{what} rewrites the table and its indexes under ACCESS EXCLUSIVE, blocking reads and "
        f"writes until it ends; {instead}"
    )
    return [_Hit("table-rewrite", False, message)]


def _add_constraint(
    action: exp.AddConstraint, table: str, not_valid: bool, scope: _Scope
) -> list[_Hit]:
    hits: list[_Hit] = []
    for item in action.expressions:
        what = _summary(f"ADD {item.sql(scope.dialect)}")
        for kind in item.expressions if isinstance(item, exp.Constraint) else [item]:
            hit = _constraint_hit(kind, what, table, not_valid)
            hits += [hit] if hit else []
    return hits


def _constraint_hit(kind: exp.Expression, what: str, table: str, not_valid: bool) -> _Hit | None:
    rule = "constraint-without-not-valid"
    if isinstance(kind, _INDEXED):
        return _Hit(rule, True, _UNIQUE.format(what=what, table=table))
    if isinstance(kind, exp.ExcludeColumnConstraint):
        return _Hit(rule, True, _EXCLUDE.format(what=what, table=table))
    if isinstance(kind, _VALIDATED) and not not_valid:
        return _Hit(rule, True, _NOT_VALID.format(what=what, table=table))
    return None


_NOT_VALID = (
    "{what} on {table} checks every existing row while holding a lock that blocks writes "
    "(ACCESS EXCLUSIVE for a check, SHARE ROW EXCLUSIVE on both tables for a foreign key); "
    "add the constraint NOT VALID and VALIDATE it in a later change"
)
_UNIQUE = (
    "{what} on {table} builds a unique index under ACCESS EXCLUSIVE, blocking reads and "
    "writes; a UNIQUE or PRIMARY KEY constraint cannot be NOT VALID: build the index first with "
    "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX (or PRIMARY "
    "KEY USING INDEX)"
)
_EXCLUDE = (
    "{what} on {table} builds an exclusion index under ACCESS EXCLUSIVE, and an exclusion "
    "constraint can be neither NOT VALID nor built from an existing index; put it in an "
    "offline change"
)


# --- statements sqlglot cannot parse: leading keywords of the token stream -----------------


def _fallback(text: str, tokens: Sequence[Token], scope: _Scope) -> list[_Hit]:
    words = _top_level_words(tokens)
    if words[0] in ("DROP", "TRUNCATE"):
        return _scan(words, scope.statement)
    if words[0] != "ALTER":
        return []
    if len(words) > 1 and words[1] == "TABLE":
        return [hit for piece in _table_actions(text, tokens) for hit in _piece(piece, scope)]
    return _scan(words, scope.statement)


def _summary(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= 60 else words[:57] + "..."


def _scan(words: Sequence[str], what: str) -> list[_Hit]:
    """DROP, RENAME or TRUNCATE among top-level words; DROP NOT NULL relaxes and is fine."""
    if words[0] == "TRUNCATE":
        return [_Hit("truncate", True, f"{what} deletes every row the running release may read")]
    if "RENAME" in words:
        return [_rename_hit(what)]
    drops = [i for i, word in enumerate(words) if word == "DROP"]
    if any(words[i + 1 : i + 3] != ["NOT", "NULL"] for i in drops):
        return [_drop_hit(what)]
    return []


def _table_actions(text: str, tokens: Sequence[Token]) -> list[str]:
    """``ALTER TABLE name action`` for each comma-separated action, so each parses on its own."""
    start = _after_table_name(tokens)
    if start >= len(tokens):
        return [text]
    header, depths = text[: tokens[start].start], _depths(tokens)
    commas = [i for i in range(start, len(tokens)) if _is_comma(tokens[i]) and not depths[i]]
    firsts, lasts = [start, *(c + 1 for c in commas)], [*(c - 1 for c in commas), len(tokens) - 1]
    spans = zip(firsts, lasts, strict=True)
    return [header + text[tokens[a].start : tokens[b].end + 1] for a, b in spans if a <= b]


def _is_comma(token: Token) -> bool:
    return bool(token.token_type == TokenType.COMMA)


def _after_table_name(tokens: Sequence[Token]) -> int:
    index = 2
    if index < len(tokens) and _keyword(tokens[index]) == "IF":
        index += 2
    if index < len(tokens) and _keyword(tokens[index]) == "ONLY":
        index += 1
    index += 1
    while index + 1 < len(tokens) and tokens[index].token_type == TokenType.DOT:
        index += 2
    if index < len(tokens) and tokens[index].token_type == TokenType.STAR:
        index += 1
    return index


def _piece(text: str, scope: _Scope) -> list[_Hit]:
    scope.statement = _summary(text)
    trees = _parse(text, _tokens(text, scope.dialect), scope.dialect)
    if trees and isinstance(trees[0], exp.Alter):
        return _alter(trees[0], scope)
    return _scan(_top_level_words(_tokens(text, scope.dialect)), scope.statement)


def _maintenance(tokens: Sequence[Token], scope: _Scope) -> list[_Hit]:
    if not scope.postgres:
        return []
    lead = _keyword(tokens[0])
    # sqlglot keeps everything after VACUUM as one string token; its options are inside it.
    options = _tokens(tokens[1].text, scope.dialect) if len(tokens) > 1 else []
    if lead == "VACUUM" and "FULL" not in [_keyword(option) for option in options]:
        return []
    what = "VACUUM FULL" if lead == "VACUUM" else "CLUSTER"
    return [
        _Hit(
            "table-rewrite",
            False,
            f"{what} rewrites the table under ACCESS EXCLUSIVE, blocking reads and writes for "
            "the whole rewrite; use plain VACUUM, or run it in an offline change",
        )
    ]
