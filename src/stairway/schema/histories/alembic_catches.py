"""Whether an Alembic revision's code catches a failed statement itself.

Such code expects the statement to raise where it is issued: ``try: op.create_table(...)
except ProgrammingError: savepoint.rollback()``. Its DDL is sent one statement at a time, not
queued in pipeline mode, where the failure would arrive at a later statement, outside its
``try`` (``ddl_pipeline``). Read from the file's text, without parsing it (parsing every
revision of a long history costs more than the pipeline saves): a handler inside a function
that does not re-raise, ``suppress`` or a savepoint (``begin_nested``). A handler that
re-raises (``except SQLAlchemyError: session.rollback(); raise``) fails the revision with or
without the pipeline, and one at the top level of the module (``except ImportError``) wraps no
statement. Where the text is unclear it counts as catching: the revision only loses speed.
"""

from __future__ import annotations

import re

_HANDLER = re.compile(r"([ \t]+)except\b[^\n]*?:(?P<inline>.*)$")
_SAVEPOINT_OR_SUPPRESS = re.compile(r"\bbegin_nested\b|\bsuppress\s*\(")


def catches_failures(text: str) -> bool:
    """Whether the revision's code (``text``) catches an exception without re-raising it, or
    uses a savepoint or ``suppress``."""
    if _SAVEPOINT_OR_SUPPRESS.search(text):
        return True
    if "except" not in text:  # most revisions: no line to look at
        return False
    lines = text.splitlines()
    for number, line in enumerate(lines):
        handler = _HANDLER.match(line)
        if handler is not None and not _reraises(handler, lines[number + 1 :]):
            return True
    return False


def _reraises(handler: re.Match[str], after: list[str]) -> bool:
    inline = handler.group("inline").split("#", 1)[0].strip()
    if inline:  # ``except X: raise`` on one line
        return inline.startswith("raise")
    indent = _indent(handler.group(1))
    for line in after:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if _indent(line) <= indent:
            return False  # the handler's block ended without a raise
        if re.match(r"raise\b", line.strip()):
            return True
    return False


def _indent(line: str) -> int:
    expanded = line.expandtabs()
    return len(expanded) - len(expanded.lstrip())
