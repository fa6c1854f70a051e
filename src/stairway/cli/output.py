"""What several commands print alike: progress lines, confirmations, a restore's warning."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.markup import escape

from stairway import operations
from stairway.audit_carry import restore_warning
from stairway.context import Context
from stairway.errors import UsageRefused
from stairway.options import err, out
from stairway.progress import Progress, silent
from stairway.schema.change import Change
from stairway.steps import Step
from stairway.views import phase_text

PASS_YES = "pass --yes to confirm"


def announce(_done: int, _total: int | None, change: Change, /) -> None:
    """Each change as it is applied."""
    out.print(f"  applying {change.label} [{phase_text(change)}]")


def applying(json: bool) -> Progress[Change]:
    """Each change as it is applied, or nothing with --json (only the JSON goes to stdout)."""
    return silent if json else announce


def announce_revert(_done: int, _total: int | None, change: Change, /) -> None:
    """Each change as its down direction runs."""
    out.print(f"  reverting {change.label} [{phase_text(change)}]")


def reverting(json: bool) -> Progress[Change]:
    """Each change as it is reverted, or nothing with --json."""
    return silent if json else announce_revert


def say_step(index: int, total: int | None, step: Step, /) -> None:
    """Each step of an upgrade as it begins."""
    out.print(f"  [{index + 1}/{total}] {step.describe()}")


def steps(json: bool) -> Progress[Step]:
    """Each step of an upgrade as it begins, or nothing with --json."""
    return silent if json else say_step


def confirm(question: str, refused: str = "restore replaces the live site") -> bool:
    """The operator's yes at a terminal; without one, a refusal that changes nothing."""
    if not sys.stdin.isatty():
        raise UsageRefused(
            f"{refused} and no terminal is here to confirm it: nothing was changed",
            hint=PASS_YES,
        )
    return typer.confirm(question, default=False)


def warn_of_restore(ctx: Context) -> None:
    """The restore's entry warns when the audit entries since the backup were not all kept."""
    warning = restore_warning(ctx.engine)
    if warning:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


def reported(json: bool) -> Callable[[list[Path]], None]:
    """Names the report files written, unless the output is JSON."""

    def say(written: list[Path]) -> None:
        if not json:
            out.print(f"report: {', '.join(str(p) for p in written)}")

    return say


def say_adopting(ctx: Context, json: bool) -> None:
    """Before a command that migrates: what it recognised of a database another tool migrated."""
    found = operations.recognised(ctx)
    if found and not json:
        out.print(f"[yellow]adopting[/yellow] {escape(found)}", highlight=False)
