"""Parsing text an operator or a product wrote: every way a parser can fail becomes one
``ValueError`` whose message says what is wrong in the text, not in Python.

Python's parsers fail in more ways than their own error type: ``tomllib`` and ``json`` recurse
once per level of nesting (RecursionError), and ``int()`` refuses numbers past
``sys.get_int_max_str_digits()`` digits (a plain ValueError that talks about Python).
"""

from __future__ import annotations

import sys
import tomllib
from typing import Any


def toml_document(text: str) -> dict[str, Any]:
    """``tomllib.loads``, raising ValueError (a TOMLDecodeError, or one of ours) on bad text."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ValueError(too_deep()) from None
    except tomllib.TOMLDecodeError:
        raise
    except ValueError as err:
        raise ValueError(number_problem(err)) from None


def too_deep() -> str:
    """What to say of text nested deeper than a parser can follow."""
    return "values nested too deep to read"


def number_problem(err: ValueError) -> str:
    """The message for a ValueError a parser let through from ``int()`` or a constructor."""
    if "int_max_str_digits" in str(err):
        limit = sys.get_int_max_str_digits()
        return f"an integer of more than {limit:,} digits, more than Stairway reads"
    return str(err)
