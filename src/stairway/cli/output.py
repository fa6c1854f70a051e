"""What several commands print alike: progress lines, confirmations, a restore's warning."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.markup import escape

from stairway.audit_carry import restore_warning
from stairway.context import Context
from stairway.errors import UsageRefused
from stairway.options import err, out
from stairway.schema.change import Change
from stairway.steps import Step
from stairway.upgrade import Progress
from stairway.views import phase_text

PASS_YES = "pass --yes to confirm"


def announce(change: Change) -> None:
    out.print(f"  applying {change.label} [{phase_text(change)}]")


def quiet(_change: Change) -> None:
    """Progress sink for --json runs: nothing but the JSON goes to stdout."""


def applying(json: bool) -> Callable[[Change], None]:
    """Each change as it is applied, or nothing with --json."""
    return quiet if json else announce


def steps(json: bool) -> Progress:
    """Each step of an upgrade as it begins, or nothing with --json."""

    def say(index: int, total: int, step: Step) -> None:
        if not json:
            out.print(f"  [{index + 1}/{total}] {step.describe()}")

    return say


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
