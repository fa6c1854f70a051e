"""Post-upgrade smoke checks declared in the catalog (``[[smoke]]``), run on the new release."""

from __future__ import annotations

import shlex
import subprocess

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from stairway.catalog.manifest import SmokeModel
from stairway.errors import UpgradeError

TIMEOUT = 120.0


def run_check(engine: Engine, check: SmokeModel) -> None:
    """Raise UpgradeError naming the check when it fails; return quietly when it passes."""
    if check.command is not None:
        _command(check)
    else:
        _query(engine, check)


def _query(engine: Engine, check: SmokeModel) -> None:
    assert check.query is not None
    try:
        with engine.connect() as conn:
            value = conn.execute(text(check.query)).scalar()
    except SQLAlchemyError as err:
        raise UpgradeError(
            f"smoke check {check.name!r} failed: {getattr(err, 'orig', None) or err}",
            hint=check.hint or "the new release cannot read what it needs",
        ) from None
    if check.expect is not None and str(value) != str(check.expect):
        raise UpgradeError(
            f"smoke check {check.name!r} returned {value!r}, expected {check.expect!r}",
            hint=check.hint or "check the product after the upgrade",
        )


def _command(check: SmokeModel) -> None:
    assert check.command is not None
    try:
        done = subprocess.run(
            shlex.split(check.command), capture_output=True, text=True, timeout=TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UpgradeError(
            f"smoke check {check.name!r} could not run: {err}", hint=check.hint
        ) from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise UpgradeError(
            f"smoke check {check.name!r} exited {done.returncode}: {said[-1] if said else ''}",
            hint=check.hint or "check the product after the upgrade",
        )
