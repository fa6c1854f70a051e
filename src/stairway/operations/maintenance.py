"""Maintenance mode switched by an operator (``stairway maintenance on|off|status``): the flag
the upgrade sets for itself, which ``guard()`` reports and the product honours."""

from __future__ import annotations

from stairway import audit, maintenance
from stairway.context import Context, backup_dir
from stairway.database import writing
from stairway.errors import UsageRefused
from stairway.journal import Journal
from stairway.maintenance import Maintenance
from stairway.sitelock import changes_site

DEFAULT_MESSAGE = "the service is down for maintenance"


@changes_site
def maintenance_on(ctx: Context, message: str = DEFAULT_MESSAGE) -> Maintenance:
    """Switch maintenance on with ``message`` (what the product shows its users), audited.

    Raises:
        UsageRefused: The message is empty.
    """
    if not message.strip():
        raise UsageRefused(
            "the maintenance message is empty",
            hint='say what users should read, e.g. --message "back at 14:00 UTC"',
        )
    maintenance.prepare(ctx.engine)  # outside the transaction: it may wait for the lock
    with writing(ctx.engine) as conn:
        flag = maintenance.turn_on(conn, message.strip())
        audit.append(conn, "site.maintenance", {"on": True, "message": flag.reason}, "operator")
    return flag


@changes_site
def maintenance_off(ctx: Context) -> Maintenance | None:
    """Switch maintenance off, audited; returns the flag that was on (None: it was off).

    Raises:
        UsageRefused: An interrupted upgrade left it on: its site is half upgraded.
    """
    if ctx.site.site.backup_dir is not None and Journal(backup_dir(ctx)).active() is not None:
        raise UsageRefused(
            "an interrupted upgrade left maintenance on: the site is neither at the old release "
            "nor at the new one, and must not serve its users yet",
            hint="finish it with `stairway upgrade --resume` or undo it with `stairway rollback`",
        )
    with writing(ctx.engine) as conn:
        was = maintenance.read(conn)
        if was is not None:
            maintenance.turn_off(conn)
            audit.append(conn, "site.maintenance", {"on": False, "was": was.reason}, "operator")
    return was


def maintenance_status(ctx: Context) -> Maintenance | None:
    """The maintenance flag as recorded; None when it is off."""
    with ctx.engine.connect() as conn:
        return maintenance.read(conn)
