"""Running the ``stairway`` command in-process, the way the console script does."""

from __future__ import annotations

import contextlib
import io
from unittest import mock

import typer.main
import typer.testing
from typer.testing import CliRunner

from stairway.cli import app, run

runner = CliRunner()
# Typer turns the app into its Click command on every invoke: about 0.1 s of CPU for our dozens
# of commands, more than many commands take to run. The command is the same every time (Click
# keeps no state in it between calls), so it is built once for all the calls of a worker.
COMMAND = typer.main.get_command(app)


def stairway(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout, stderr; Stairway errors are mapped to exit codes by ``run``."""
    result: dict[str, object] = {}

    def call() -> None:
        with mock.patch.object(typer.testing, "_get_command", lambda _app: COMMAND):
            outcome = runner.invoke(app, list(args))
        result.update(out=outcome.stdout, err=outcome.stderr, code=outcome.exit_code)
        if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
            raise outcome.exception  # for ``run`` to map, as the console script would

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = run(call) or int(result.get("code", 0))  # type: ignore[call-overload]
    return code, str(result.get("out", "")), str(result.get("err", "")) + errors.getvalue()
