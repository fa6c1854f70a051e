"""What every command shares: the consoles, the common options, JSON output."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)

SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site", help="site.toml of the installation [default: ./site.toml or $STAIRWAY_SITE]"
    ),
]
CatalogOpt = Annotated[
    Path | None, typer.Option("--catalog", help="catalog directory [default: the site's catalog]")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for machines")]
ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="write an HTML report here (and its Markdown beside it)"),
]
WorkersOpt = Annotated[
    int, typer.Option("--workers", help="worker processes on this machine", min=1, max=64)
]
ShardOpt = Annotated[
    str | None,
    typer.Option("--shard", help="i/N: this machine's part when N machines share the work"),
]


def emit_json(value: Any) -> None:
    """Print ``value`` on stdout as indented JSON."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def say(json: bool, value: Any, text: str) -> None:
    """A command's result: ``value`` as JSON for machines, else ``text`` for people."""
    if json:
        emit_json(value)
    else:
        out.print(text, highlight=False)


_UNSEEN = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSEEN_IN_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain(text: str, lines: bool = False) -> str:
    """``text`` from outside (audit entries, exports, agents) made safe to print with Rich:
    control characters (ANSI escapes, carriage returns, bidi overrides) shown escaped, as
    ``\\x1b``, and Rich markup escaped, so it reads as written and cannot restyle a terminal.
    With ``lines``, newlines and tabs are kept (a message of several lines)."""
    unseen = _UNSEEN_IN_LINES if lines else _UNSEEN
    return escape(unseen.sub(_escaped, text))


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
