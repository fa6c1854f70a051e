"""Splitting SQL files into statements with a real tokenizer, and checksumming their text.

Splitting is done on sqlglot's token stream, never with a regular expression: semicolons inside
strings, quoted identifiers, comments and dollar-quoted bodies are not statement ends. Bodies
delimited by BEGIN ... END (SQLite triggers, PostgreSQL ``BEGIN ATOMIC``) are kept whole.
The text sent to the database is the file's own text, sliced by token offsets, not a rewrite.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token, TokenType

CHECKSUM_ALGORITHM = "sha256-lf-rstrip"


@dataclass(frozen=True)
class Statement:
    """One SQL statement as written in a change file; ``line`` is 1-based, in that file."""

    text: str
    line: int

    def describe(self) -> str:
        """The statement's first line, cut to 72 characters, for messages."""
        first = self.text.strip().splitlines()[0] if self.text.strip() else ""
        return first if len(first) <= 72 else first[:69] + "..."


class SqlSyntaxError(ValueError):
    """SQL the tokenizer cannot read (an unterminated string or comment), with its 1-based line."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def tokenize(text: str) -> list[Token]:
    """The PostgreSQL tokens of ``text``.

    Raises:
        SqlSyntaxError: ``text`` cannot be tokenized.
    """
    try:
        return list(Postgres().tokenize(text))
    except TokenError as err:
        raise SqlSyntaxError(str(err), _line_of_error(str(err))) from None


def split_statements(text: str, *, first_line: int = 1) -> list[Statement]:
    """The statements of ``text``; ``first_line`` is the file line ``text`` starts on."""
    statements: list[Statement] = []
    start: int | None = None
    depth, in_create = 0, False
    tokens = tokenize(text)
    for index, token in enumerate(tokens):
        if start is None:
            if token.token_type == TokenType.SEMICOLON:
                continue
            start, depth, in_create = token.start, 0, token.token_type == TokenType.CREATE
        if in_create:
            depth += _block_delta(tokens, index)
        if token.token_type == TokenType.SEMICOLON and depth <= 0:
            statements.append(_statement(text, start, token.start, first_line))
            start = None
    if start is not None:
        statements.append(_statement(text, start, len(text), first_line))
    return statements


def _block_delta(tokens: list[Token], index: int) -> int:
    kind = tokens[index].token_type
    if kind == TokenType.CASE:
        return 1
    if kind == TokenType.BEGIN:
        # "BEGIN;" or "BEGIN TRANSACTION" inside a CREATE is not a block opener.
        following = tokens[index + 1].token_type if index + 1 < len(tokens) else None
        return 0 if following == TokenType.SEMICOLON else 1
    if kind == TokenType.END:
        return -1
    return 0


def _statement(text: str, start: int, end: int, first_line: int) -> Statement:
    body = text[start:end].rstrip()
    return Statement(body, first_line + text.count("\n", 0, start))


def _line_of_error(message: str) -> int:
    marker = "Line "
    if marker in message:
        digits = message.split(marker, 1)[1].split(",", 1)[0].split(":", 1)[0]
        if digits.strip().isdigit():
            return int(digits.strip())
    return 1


def normalise(text: str) -> str:
    """Line endings and trailing whitespace are not a change: CRLF, CR and LF read alike."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


def checksum(text: str) -> str:
    """The SHA-256 of ``text`` normalised: line endings and trailing whitespace do not count."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()
