"""The ``stairway`` root command: its own options (version, logging) and the one place where
Stairway's errors become the exit codes of the design."""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import StrEnum
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperOption

from stairway import context, disk, logs
from stairway.errors import ManualStepNeeded, StairwayError, UsageRefused
from stairway.options import err, plain


def _flags_take_no_value() -> None:
    """Typer's help shows a flag's type (``<bool>``, ``<int>`` for -vv) as if the flag took a
    value after it; a flag takes none, so nothing is shown."""
    typed = TyperOption.display_type_rich

    def display(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else typed(self, ctx)

    TyperOption.display_type_rich = display  # type: ignore[method-assign]


_flags_take_no_value()

app = typer.Typer(
    help="Safe, boring upgrades of self-hosted services: plan, migrate, verify, roll back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class LogFormat(StrEnum):
    """How log lines are written to stderr: text lines for people or JSON lines for machines."""

    text = "text"
    json = "json"


def _show_version(asked: bool) -> None:
    if asked:
        typer.echo(f"stairway {installed_version('stairway')}")
        raise typer.Exit()


@app.callback()
def stairway(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="print the version and exit", is_eager=True, callback=_show_version
        ),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "-v",
            "--verbose",
            count=True,
            show_default=False,
            help="log progress to stderr: -v INFO, -vv DEBUG",
        ),
    ] = 0,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="DEBUG, INFO, WARNING, ERROR or CRITICAL; beats -v and $STAIRWAY_LOG_LEVEL",
        ),
    ] = None,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            envvar="STAIRWAY_LOG_FORMAT",
            help="text lines for people or JSON lines for machines",
        ),
    ] = LogFormat.text,
) -> None:
    """Safe, boring upgrades of self-hosted services: plan, migrate, verify, roll back."""
    try:
        level = logs.level_for(verbose, log_level, os.environ.get("STAIRWAY_LOG_LEVEL"))
    except ValueError as problem:
        raise UsageRefused(f"--log-level: {problem}", hint="e.g. --log-level INFO") from None
    logs.configure(level, "json" if log_format is LogFormat.json else "text")


def run(entry: Callable[[], Any]) -> int:
    """Call the Typer app, mapping Stairway errors to the exit codes of the design; then sign
    the audit log of each site the command opened (``context.checkpoint_opened``), whatever
    the command and however it ended."""
    context.forget_opened()
    try:
        return _run(entry)
    finally:
        context.checkpoint_opened()


def _run(entry: Callable[[], Any]) -> int:
    try:
        entry()
    except StairwayError as error:
        return _failed(error)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    except Exception as error:
        found = disk.trouble(error)
        if found is None:
            raise
        return _failed(_disk_failure(found))
    return 0


def _failed(error: StairwayError) -> int:
    # a message names TOML tables ("[site]") that Rich would take for markup, and may quote
    # what an agent, a health URL or a file said: control characters are shown, not obeyed
    said, hint = plain(error.message, lines=True), plain(error.hint, lines=True)
    err.print(f"[red]error:[/red] {said}", highlight=False, soft_wrap=True)
    if error.hint:
        err.print(f"[yellow]hint:[/yellow] {hint}", highlight=False, soft_wrap=True)
    return int(error.exit_code)


def _disk_failure(found: disk.DiskTrouble) -> StairwayError:
    """A write that failed for the disk's sake where no layer below said what it meant: the
    command stopped part way, so an operator looks before anything runs again."""
    where = f"{found.path}: " if found.path else ""
    return ManualStepNeeded(
        f"a write failed ({where}{found.said}); the command stopped part way",
        hint=f"{found.advice(Path.cwd())}, then run the command again "
        "(`stairway status` says where the site stands)",
    )
