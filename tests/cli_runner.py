"""Running the ``stairway`` command in-process, the way the console script does."""

from __future__ import annotations

import contextlib
import io

from typer.testing import CliRunner

from stairway.cli import app, run

runner = CliRunner()


def stairway(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout, stderr; Stairway errors are mapped to exit codes by ``run``."""
    result: dict[str, object] = {}

    def call() -> None:
        outcome = runner.invoke(app, list(args))
        result.update(out=outcome.stdout, err=outcome.stderr, code=outcome.exit_code)
        if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
            raise outcome.exception  # for ``run`` to map, as the console script would

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = run(call) or int(result.get("code", 0))  # type: ignore[call-overload]
    return code, str(result.get("out", "")), str(result.get("err", "")) + errors.getvalue()
