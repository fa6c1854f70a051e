"""Reading the SQL a PL/pgSQL ``DO`` block runs.

A ``DO`` block runs its body at once, in the change's transaction, so the statements in it are
as much the change as the ones outside it. The body's control structure (``DECLARE``, ``BEGIN``,
``IF ... THEN``, loops, ``EXCEPTION WHEN ... THEN``, ``END``) is stepped over; what is left are
simple statements. PL/pgSQL's own (assignments, ``PERFORM``, ``RAISE``, ``RETURN`` ...) run no
SQL of their own; the rest is SQL, read as such. ``EXECUTE`` of a string literal is the SQL in
the literal; ``EXECUTE`` of anything else builds its SQL while it runs, which cannot be read.

Everything is read from sqlglot's tokens, so semicolons and keywords inside strings, quoted
identifiers and nested dollar quotes are never mistaken for structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

_LITERALS = frozenset({TokenType.STRING, TokenType.HEREDOC_STRING, TokenType.BYTE_STRING})
# PL/pgSQL statements that run no SQL of their own (PERFORM runs a query, whose calls are as
# opaque as any function's; a SELECT is read as SQL and changes nothing).
_CONTROL = frozenset(
    {
        "PERFORM", "RAISE", "RETURN", "NULL", "EXIT", "CONTINUE", "GET", "OPEN", "CLOSE",
        "FETCH", "MOVE", "ASSERT", "COMMIT", "ROLLBACK",
    }
)  # fmt: skip
_OPENERS = frozenset({"BEGIN", "EXCEPTION", "ELSE", "LOOP"})
_CONDITIONS = frozenset({"IF", "ELSIF", "ELSEIF", "WHEN", "CASE"})  # ... THEN
_LOOPS = frozenset({"WHILE", "FOR", "FOREACH"})  # ... LOOP


class PlKind(Enum):
    """What a simple statement of the body does."""

    SQL = "sql"  # SQL written out, or the literal an EXECUTE runs
    DYNAMIC = "dynamic"  # EXECUTE of SQL built while the block runs


@dataclass(frozen=True)
class PlStatement:
    """One statement of a body that runs SQL; ``offset`` is where it starts in the body."""

    kind: PlKind
    text: str  # the SQL, or for DYNAMIC the expression EXECUTE runs
    offset: int


@dataclass(frozen=True)
class DoBlock:
    """The body of a ``DO`` statement, its language, and where the body starts in the text."""

    language: str
    body: str
    offset: int

    @property
    def readable(self) -> bool:
        """Only PL/pgSQL is read; another language's body is opaque."""
        return self.language == "plpgsql"


def _tokens(text: str) -> list[Token] | None:
    try:
        return list(Postgres().tokenize(text))
    except SqlglotError:
        return None


def _word(token: Token) -> str:
    return token.text.upper() if token.token_type not in _LITERALS else ""


def do_block(text: str) -> DoBlock | None:
    """The block ``text`` runs when it is a ``DO`` statement; None for any other statement, or
    a ``DO`` whose body is not a single string."""
    stripped = text.lstrip()
    if stripped[:2].upper() != "DO" or stripped[2:3].isalnum() or stripped[2:3] == "_":
        return None
    start = len(text) - len(stripped) + 2
    rest = text[start:]
    tokens = _tokens(rest)
    bodies = [t for t in tokens or [] if t.token_type in _LITERALS]
    if tokens is None or len(bodies) != 1:
        return None
    words = [_word(t) for t in tokens]
    language = words[words.index("LANGUAGE") + 1].lower() if "LANGUAGE" in words[:-1] else ""
    body = bodies[0]
    found = rest.find(body.text, body.start)
    return DoBlock(language or "plpgsql", body.text, start + max(found, body.start))


def statements(body: str) -> list[PlStatement] | None:
    """The statements of a PL/pgSQL ``body`` that run SQL, in order; None if it cannot be read."""
    tokens = _tokens(body)
    if tokens is None:
        return None
    found: list[PlStatement] = []
    index = 0
    while index < len(tokens):
        index = _past_structure(tokens, index)
        end = _statement_end(tokens, index)
        if index < end:
            found += _simple(body, tokens, index, end)
        index = end + 1
    return found


def _statement_end(tokens: Sequence[Token], start: int) -> int:
    """The index of the semicolon ending the statement at ``start`` (or past the last token)."""
    depth = 0
    for index in range(start, len(tokens)):
        kind = tokens[index].token_type
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(kind, 0)
        if kind == TokenType.SEMICOLON and depth <= 0:
            return index
    return len(tokens)


def _past_structure(tokens: Sequence[Token], index: int) -> int:
    """The first token after the block structure that starts at ``index``."""
    while index < len(tokens):
        word = _word(tokens[index])
        if _label(tokens, index):
            index += 5
        elif word == "DECLARE":
            index = _declarations_end(tokens, index)
        elif word in _OPENERS:
            index += 1
        elif word in _CONDITIONS:
            index = _after(tokens, index + 1, "THEN")
        elif word in _LOOPS:
            index = _after(tokens, index + 1, "LOOP")
        elif word == "END":
            return _statement_end(tokens, index)  # END [IF | LOOP | CASE] [label];
        else:
            return index
    return index


def _label(tokens: Sequence[Token], index: int) -> bool:
    """``<<label>>`` before a block or loop."""
    kinds = [t.token_type for t in tokens[index : index + 5]]
    return kinds == [TokenType.LT, TokenType.LT, TokenType.VAR, TokenType.GT, TokenType.GT]


def _declarations_end(tokens: Sequence[Token], index: int) -> int:
    """The ``BEGIN`` that ends the ``DECLARE`` section at ``index``."""
    index += 1
    while index < len(tokens) and _word(tokens[index]) != "BEGIN":
        index = _statement_end(tokens, index) + 1
    return index


def _after(tokens: Sequence[Token], index: int, keyword: str) -> int:
    """The token after ``keyword`` outside parentheses and CASE expressions in a condition."""
    depth = 0
    for at in range(index, len(tokens)):
        word = _word(tokens[at])
        depth += {"(": 1, ")": -1, "CASE": 1, "END": -1}.get(word, 0)
        if word == keyword and depth == 0:
            return at + 1
    return len(tokens)


def _simple(body: str, tokens: Sequence[Token], start: int, end: int) -> list[PlStatement]:
    first, offset = _word(tokens[start]), tokens[start].start
    if first in _CONTROL or _assignment(tokens[start:end]):
        return []
    if first == "EXECUTE":
        argument = tokens[start + 1].text if start + 1 < end else ""
        return [_execute(argument, offset)]
    stop = tokens[end].start if end < len(tokens) else len(body)
    return [PlStatement(PlKind.SQL, body[offset:stop], offset)]


def _assignment(tokens: Sequence[Token]) -> bool:
    """``target := value`` or ``target = value`` (the target may be qualified or subscripted)."""
    for token in tokens[1:6]:
        if token.token_type in (TokenType.COLON_EQ, TokenType.EQ):
            return True
        if token.token_type not in (TokenType.VAR, TokenType.DOT, TokenType.IDENTIFIER):
            return False
    return False


def _execute(argument: str, offset: int) -> PlStatement:
    """The SQL ``EXECUTE argument`` runs, when the argument is a literal (alone, or in a
    ``format()`` that has nothing to substitute)."""
    tokens = _tokens(argument) or []
    words = [_word(t) for t in tokens]
    clauses = [i for i, word in enumerate(words) if word in ("INTO", "USING")]
    head = tokens[: clauses[0]] if clauses else tokens
    literal = _literal(head)
    if literal is None:
        return PlStatement(PlKind.DYNAMIC, " ".join(argument.split()), offset)
    return PlStatement(PlKind.SQL, literal, offset)


def _literal(tokens: Sequence[Token]) -> str | None:
    if len(tokens) == 1 and tokens[0].token_type in _LITERALS:
        return tokens[0].text
    kinds = [t.token_type for t in tokens]
    if kinds[:2] != [TokenType.FORMAT, TokenType.L_PAREN] or kinds[3:] != [TokenType.R_PAREN]:
        return None
    text = tokens[2].text if kinds[2] in _LITERALS else None
    # %% is a literal percent sign; any other % would substitute an argument.
    if text is None or "%" in text.replace("%%", ""):
        return None
    return text.replace("%%", "%")
