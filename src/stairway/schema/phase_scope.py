"""Reading one change's statements for the phase rules: what the change did so far, and the
sqlglot helpers every rule reads a statement with."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.tokenizer_core import Token, TokenType

from stairway.schema.phase_locks import LockLedger, LockMode

if TYPE_CHECKING:  # replay reads statements with parse_tokens: a run-time import would cycle
    from stairway.schema.shape import Shape

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


@dataclass
class Effects:
    """What the statement being read does to tables, for the lock ledger."""

    locks: list[tuple[str, LockMode]] = field(default_factory=list)
    grows: str = ""  # how its time grows with the data ("rewrites orders"), or ""


@dataclass
class Scope:
    """What the change did so far, as the statement being read sees it."""

    dialect: str
    postgres: bool
    transactional: bool = True
    # Tables created earlier in the same change: the running release cannot be using them yet.
    created: set[str] = field(default_factory=set)
    # Of those, the ones filled from existing data: building an index on one takes time.
    filled: set[str] = field(default_factory=set)
    # Columns this change added to existing tables, by table: no running code reads them yet.
    added: dict[str, set[str]] = field(default_factory=dict)
    indexes: set[str] = field(default_factory=set)  # created in this change
    ledger: LockLedger = field(default_factory=LockLedger)
    effects: Effects = field(default_factory=Effects)
    statement: str = ""  # the statement (or ALTER TABLE action) being read, for messages
    table: str = ""  # the key of the table the ALTER TABLE being read alters
    # The schema as the catalog's earlier changes left it, replayed only when a rule asks.
    earlier: Callable[[], Shape] | None = None
    read: list[str] = field(default_factory=list)  # this change's statements read so far

    def shape(self) -> Shape | None:
        """The schema the statement being read finds (earlier changes, then this change's
        statements before it); None when the catalog's history was not given."""
        if self.earlier is None or not self.postgres:
            return None
        return self.earlier().after(self.read)

    def lock(self, table: str, mode: LockMode) -> None:
        """The statement takes ``mode`` on ``table``; only existing tables matter."""
        if table and table not in self.created:
            self.effects.locks.append((table, mode))

    def grow(self, what: str) -> None:
        """The statement's time grows with the data: ``what`` it does, in a few words."""
        self.effects.grows = self.effects.grows or what


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


def parse_tokens(text: str, tokens: list[Token], dialect: str) -> list[exp.Expression] | None:
    """sqlglot's trees for ``text`` from its ``tokens``; None when it does not parse."""
    # The tokens are already at hand: tokenizing the text again would double the cost.
    try:
        with _quiet_sqlglot():
            trees = Dialect.get_or_raise(dialect).parser().parse(tokens, text)
    except SqlglotError:
        return None
    return [tree for tree in trees if isinstance(tree, exp.Expression)]


def token_list(text: str, dialect: str) -> list[Token]:
    """The tokens of ``text``; none when it cannot be tokenized."""
    try:
        return list(Dialect.get_or_raise(dialect).tokenize(text))
    except SqlglotError:
        return []


def keyword(token: Token) -> str:
    """The token as an upper-case word, or "" for strings and quoted identifiers."""
    return "" if token.token_type in _NOT_KEYWORDS else token.text.upper()


def paren_depths(tokens: Sequence[Token]) -> list[int]:
    """Parenthesis depth at each token: actions and options live at depth 0."""
    depths, depth = [], 0
    for token in tokens:
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
        depths.append(depth)
    return depths


def top_level_words(tokens: Sequence[Token]) -> list[str]:
    """The words of ``tokens`` outside parentheses."""
    return [keyword(t) for t, depth in zip(tokens, paren_depths(tokens), strict=True) if depth == 0]


def summary(text: str) -> str:
    """The statement on one line, cut to 60 characters, for messages."""
    words = " ".join(text.split())
    return words if len(words) <= 60 else words[:57] + "..."


def table_key(node: exp.Expression | None, scope: Scope) -> str:
    """The table as compared across statements: identifiers folded as PostgreSQL does."""
    if isinstance(node, exp.Schema):
        node = node.this
    if not isinstance(node, exp.Table):
        return ""
    bare = node.copy()
    bare.set("alias", None)
    return str(normalize_identifiers(bare, dialect=scope.dialect).sql(scope.dialect))


def column_key(node: exp.Expression, scope: Scope) -> str:
    """The column name folded as PostgreSQL does."""
    return str(normalize_identifiers(node.copy(), dialect=scope.dialect).name)


def sql_names(nodes: Sequence[exp.Expression], scope: Scope) -> str:
    """The nodes as SQL, comma-separated, for messages."""
    return ", ".join(node.sql(scope.dialect) for node in nodes)


def named_table(text: str, scope: Scope) -> str:
    """The key of the table named by ``text``, compared as parsed statements compare names."""
    tokens = token_list(f"SELECT * FROM {text}", scope.dialect)
    trees = parse_tokens(f"SELECT * FROM {text}", tokens, scope.dialect) if tokens else None
    return table_key(trees[0].find(exp.Table), scope) if trees else ""
