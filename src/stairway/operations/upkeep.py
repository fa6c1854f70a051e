"""Upkeep under the site lock: the site key rotated, background migrations run."""

from __future__ import annotations

from collections.abc import Callable

from stairway.context import (
    Context,
    secret_keys,
)
from stairway.progress import Progress
from stairway.schema import background
from stairway.schema.background import Job, Throttle
from stairway.secrets import rekey
from stairway.secrets.store import Rekeyed
from stairway.sitelock import changes_site


@changes_site
def rekey_secrets(ctx: Context) -> Rekeyed:
    """Rotate the site key (``stairway.secrets.rekey``) under the site lock."""
    return rekey(ctx.engine, secret_keys(ctx))


@changes_site
def run_background(
    ctx: Context,
    throttle: Throttle,
    max_seconds: float | None = None,
    report: Progress[Job] | None = None,
    stopping: Callable[[], bool] | None = None,
) -> list[Job]:
    """Run the queued background migrations (``schema.background.run``) under the site lock,
    until done or ``stopping`` says a rollback asked the runner to stop."""
    changes = {c.number: c for c in ctx.catalog.changes if not c.patch}
    return background.run(ctx.engine, changes, throttle, max_seconds, report, stopping)
