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

_HANDLER = re.compile(r"^([ \t]+)except\b[^\n]*?:(?P<inline>[^\n]*)$", re.MULTILINE)
_SAVEPOINT_OR_SUPPRESS = re.compile(r"\bbegin_nested\b|\bsuppress\s*\(")


def catches_failures(text: str) -> bool:
    """Whether the revision's code (``text``) catches an exception without re-raising it, or
    uses a savepoint or ``suppress``."""
    if _SAVEPOINT_OR_SUPPRESS.search(text):
        return True
    return any(not _reraises(text, handler) for handler in _HANDLER.finditer(text))


def _reraises(text: str, handler: re.Match[str]) -> bool:
    inline = handler.group("inline").split("#", 1)[0].strip()
    if inline:  # ``except X: raise`` on one line
        return inline.startswith("raise")
    indent = len(handler.group(1).expandtabs())
    for line in text[handler.end() :].splitlines()[1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if len(line.expandtabs()) - len(line.expandtabs().lstrip()) <= indent:
            return False  # the handler's block ended without a raise
        if re.match(r"raise\b", line.strip()):
            return True
    return False
