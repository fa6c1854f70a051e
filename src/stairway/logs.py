"""Log records for an operator: text lines for people or JSON lines for machines, on stderr.

Standard output carries a command's result (JSON with ``--json``), so no record ever goes there.
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
Format = Literal["text", "json"]

# the attributes every LogRecord has; any other one was passed as ``extra=`` and is shown
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the request id when the record has
    one, the formatted exception when it carries one, and every ``extra=`` field."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD:
                line[name] = value
        if record.exc_info:
            line["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger: message``, with the request id in brackets when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text."""
        said = super().format(record)
        request = getattr(record, "request_id", None)
        return f"{said} [request {request}]" if request else said


class StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time of the record, so a test harness or a
    forked child that swaps the stream still gets the lines."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record to the current ``sys.stderr``."""
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def level_for(verbose: int, level: str | None, env_level: str | None) -> str:
    """``--log-level`` first, then ``-v`` (INFO) or ``-vv`` (DEBUG), then the environment's
    level, else WARNING."""
    if level:
        return checked_level(level)
    if verbose:
        return "INFO" if verbose == 1 else "DEBUG"
    return checked_level(env_level) if env_level else "WARNING"


def checked_level(level: str) -> str:
    """The level's name in capitals; ValueError for a name logging does not have."""
    name = level.strip().upper()
    if name not in LEVELS:
        raise ValueError(f"{level!r} is not a log level: one of {', '.join(LEVELS)}")
    return name


def configure(level: str, fmt: Format) -> None:
    """Send records at ``level`` and above to stderr as text or JSON lines; calling it again
    replaces what an earlier call set up."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(checked_level(level))
