"""``stairway maintenance on|off|status``: maintenance mode, switched by an operator."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from stairway import context as site_context
from stairway import operations
from stairway.maintenance import Maintenance
from stairway.operations.maintenance import DEFAULT_MESSAGE
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out

app = typer.Typer(
    help="Maintenance mode: the product serves administrators only, and says why to the rest."
)


@app.command("on")
def maintenance_on(
    message: Annotated[
        str, typer.Option("--message", help="what the product's users are told")
    ] = DEFAULT_MESSAGE,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Switch maintenance on: every instance of the product answers 503 with the message."""
    flag = operations.maintenance_on(site_context.open_context(site, catalog), message)
    _say(flag, json)


@app.command("off")
def maintenance_off(
    site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False
) -> None:
    """Switch maintenance off: the product serves everyone again."""
    was = operations.maintenance_off(site_context.open_context(site, catalog))
    if json:
        emit_json({"on": False, "was": dataclasses.asdict(was) if was else None})
    else:
        out.print("maintenance is off" + ("" if was else " (it was not on)"), highlight=False)


@app.command("status")
def maintenance_status(
    site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False
) -> None:
    """Whether maintenance is on, since when, and its message."""
    _say(operations.maintenance_status(site_context.open_context(site, catalog)), json)


def _say(flag: Maintenance | None, json: bool) -> None:
    if json:
        emit_json({"on": flag is not None, **(dataclasses.asdict(flag) if flag else {})})
    else:
        out.print(
            flag.describe() if flag else "maintenance is off", highlight=False, soft_wrap=True
        )
