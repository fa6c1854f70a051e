"""What every command shares: the consoles, the common options, JSON output."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

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
