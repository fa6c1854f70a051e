"""Reading an operator's JSON strictly: what ``json.loads`` would let through silently is refused.

``json.loads`` keeps the last of two equal keys in one object, reads ``1e999999`` as infinity
and accepts ``NaN`` and ``Infinity``, none of which JSON has; written back they would lose a
value or make a file no other JSON reader takes. Each is refused with its line. The line is
found by a second, iterative pass over the tokens, run only when something was refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from stairway.configfiles.problems import Unreadable, Unrepresentable
from stairway.parsing import number_problem, too_deep

# JSON strings hold no raw newline or quote, so one left-to-right pass finds every token.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


class _BadToken(Exception):
    """A number or constant JSON cannot hold, raised from json's hooks."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(reason)
        self.token, self.reason = token, reason


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def strict_loads(text: str) -> Any:
    """The JSON value of ``text``; Unreadable names what is wrong and, where it can, its line."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique,
            parse_float=_finite,
            parse_int=_integer,
            parse_constant=_no_constant,
        )
    except json.JSONDecodeError as err:
        raise Unreadable(err.msg, err.lineno) from None
    except RecursionError:  # json recurses once per level of nested arrays and objects
        raise Unreadable(too_deep(), None) from None
    except _Duplicate as err:
        said = f"the key {err.key!r} appears twice in one object: one value would be lost"
        raise Unrepresentable(said, duplicate_line(text, err.key)) from None
    except _BadToken as err:
        raise Unrepresentable(err.reason, token_line(text, err.token)) from None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) < len(pairs):
        raise _Duplicate(_first_repeated([key for key, _ in pairs]))
    return found


def _first_repeated(keys: list[str]) -> str:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return ""


def _finite(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _BadToken(token, f"the number {_short(token)} is too large for a JSON number")
    return value


def _integer(token: str) -> int:
    try:
        return int(token)
    except ValueError as err:
        raise _BadToken(token, number_problem(err)) from None


def _no_constant(token: str) -> Any:
    raise _BadToken(token, f"{token} is not a JSON value")


def _short(token: str) -> str:
    return token if len(token) <= 24 else token[:20] + "..."


def tokens(text: str) -> Iterator[tuple[int, str]]:
    """Every token of ``text`` with its offset."""
    for match in _TOKEN.finditer(text):
        yield match.start(), match.group()


def token_line(text: str, wanted: str) -> int | None:
    """The line of the first token (outside strings) that is ``wanted``."""
    for offset, token in tokens(text):
        if token == wanted:
            return text.count("\n", 0, offset) + 1
    return None


def duplicate_line(text: str, key: str) -> int | None:
    """The line where ``key`` appears for the second time in one object."""
    stack: list[set[str] | None] = []  # the keys seen so far in each open object; None: array
    previous = ""
    for offset, token in tokens(text):
        if token in ("{", "["):
            stack.append(set() if token == "{" else None)
        elif token in ("}", "]") and stack:
            stack.pop()
        elif token == ":" and previous.startswith('"') and stack and stack[-1] is not None:
            name = json.loads(previous)
            if name == key and name in stack[-1]:
                return text.count("\n", 0, offset) + 1
            stack[-1].add(name)
        previous = token
    return None
