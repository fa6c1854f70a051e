"""Which statements lose data, so that a down direction doing so must say what with ``loses``.

Data is lost by removing what holds it (a table, a schema, a column), by removing rows
(``DELETE``, ``TRUNCATE``) and by changing a column's type, which may narrow its values. Removing
what only describes or derives from data (an index, a constraint, a view, a function, a
trigger, a sequence, a default) loses none: the rows are all still there.

Statements are read with sqlglot; what it cannot parse is read from its top-level words, so a
string or a dollar-quoted body that mentions ``DROP TABLE`` is never taken for one.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

from stairway.schema.phases import parse_statement
from stairway.schema.sqltext import Statement

# Objects whose removal takes rows with it; CASCADE on a type or domain drops the columns of it.
_HOLDS_DATA = frozenset({"TABLE", "SCHEMA", "DATABASE"})
_CASCADES_TO_COLUMNS = frozenset({"TYPE", "DOMAIN"})
# A column changed to one of these keeps every value it held, as text.
_WIDE_TYPES = frozenset({exp.DataType.Type.TEXT})
_WORDS = (TokenType.STRING, TokenType.IDENTIFIER, TokenType.HEREDOC_STRING)


def loses_data(statements: Sequence[Statement], dialect: str = "postgres") -> Statement | None:
    """The first statement of ``statements`` that loses data, or None when none does."""
    name = "postgres" if dialect == "postgresql" else dialect
    return next((s for s in statements if statement_loses_data(s.text, name)), None)


def statement_loses_data(text: str, dialect: str = "postgres") -> bool:
    """Whether one statement removes stored values (see the module's docstring)."""
    trees = parse_statement(text, dialect)
    if trees is None:
        return _words_lose(_top_level_words(text, dialect))
    return any(_tree_loses(tree) for tree in trees)


def _tree_loses(tree: exp.Expression) -> bool:
    if any(True for _ in tree.find_all(exp.Delete, exp.TruncateTable)):
        return True
    if isinstance(tree, exp.Drop):
        return _drop_loses(tree)
    if isinstance(tree, exp.Alter):
        return any(_action_loses(action) for action in tree.args.get("actions") or [])
    return False


def _drop_loses(drop: exp.Drop) -> bool:
    kind = str(drop.args.get("kind") or "").upper()
    if kind in _HOLDS_DATA:
        return True
    return kind in _CASCADES_TO_COLUMNS and bool(drop.args.get("cascade"))


def _action_loses(action: exp.Expression) -> bool:
    if isinstance(action, exp.Drop):
        return str(action.args.get("kind") or "COLUMN").upper() == "COLUMN"
    if isinstance(action, exp.AlterColumn):
        dtype = action.args.get("dtype")
        return isinstance(dtype, exp.DataType) and dtype.this not in _WIDE_TYPES
    return False


def _words_lose(words: Sequence[str]) -> bool:
    """The same rules on the top-level words of a statement sqlglot could not parse."""
    if not words:
        return False
    lead = words[0]
    if lead in ("TRUNCATE", "DELETE"):
        return True
    if lead == "DROP" and len(words) > 1:
        return words[1] in _HOLDS_DATA or (words[1] in _CASCADES_TO_COLUMNS and "CASCADE" in words)
    if lead == "ALTER" and words[1:2] == ["TABLE"]:
        return _alter_words_lose(words)
    return False


def _alter_words_lose(words: Sequence[str]) -> bool:
    for index, word in enumerate(words):
        following = words[index + 1 : index + 2]
        if word == "DROP" and following and following[0] in ("COLUMN", "IF"):
            return True
        if word == "TYPE" or (word == "DATA" and following == ["TYPE"]):
            return True
    return False


def _top_level_words(text: str, dialect: str) -> list[str]:
    try:
        tokens: list[Token] = list(Dialect.get_or_raise(dialect).tokenize(text))
    except SqlglotError:
        return []
    words, depth = [], 0
    for token in tokens:
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
        if depth == 0:
            words.append("" if token.token_type in _WORDS else token.text.upper())
    return words
