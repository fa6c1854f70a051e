"""``stairway service``: start, stop and ask the product, through the site's ``[service]``.

The same commands and the same checks the upgrade uses: a start must end with the product
answering as the release the site holds, at the schema level its database holds; a stop must
end with the product shown down. Both take the site lock, so neither runs beside an upgrade or
a restore.
"""

from __future__ import annotations

import typer

from stairway import context, recovery, service
from stairway.errors import UsageRefused
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out

service_app = typer.Typer(
    help="The product's service, as site.toml's service table runs it: start, stop, status."
)


@service_app.command("start")
def service_start(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Start the product and wait until its health answers as the release the site holds."""
    ctx = context.open_context(site, catalog)
    release = str(context.current_version(ctx))
    _declared(ctx)
    with context.changing(ctx):
        checked = recovery.start_and_check(ctx, release)
    if json:
        emit_json({"started": True, "release": release, "health_checked": checked})
        return
    said = "and answers as" if checked else "(no health URL to ask) at"
    out.print(f"[green]started[/green] {said} release {release}")


@service_app.command("stop")
def service_stop(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Stop the product and show it down: no runner process, no health answer, no process
    holding the database file or the data directory."""
    ctx = context.open_context(site, catalog)
    _declared(ctx)
    with context.changing(ctx):
        recovery.stop(ctx)
    if json:
        emit_json({"stopped": True})
        return
    out.print("[green]stopped[/green]: nothing of the product is left up")


@service_app.command("status")
def service_status(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Whether the product is up and answers as the release and schema the site holds; exits 3
    when it is down or answers as anything else."""
    ctx = context.open_context(site, catalog)
    _declared(ctx)
    expected = recovery.expected(ctx, str(context.current_version(ctx)))
    up = service.still_up(ctx.site.service, recovery.held(ctx))
    answer = service.ask_health(ctx.site.service)
    source = ctx.site.service.health_release if ctx.site.service else "none"
    wrong = service.mismatch(answer, expected, source) if answer.ok else None
    said = answer.json() if answer.ok else None
    state = _state(bool(up), answer.ok, wrong)
    if json:
        emit_json(
            {
                "state": state,
                "up": up,
                "release": expected.release,
                "schema": expected.schema,
                "health": said,
                "mismatch": wrong,
            }
        )
    else:
        _show(state, up, expected, wrong)
    if state != "serving":
        raise typer.Exit(3)


def _state(up: bool, healthy: bool, wrong: str | None) -> str:
    if not up:
        return "down"
    if not healthy:
        return "up, not healthy"
    return "serving" if wrong is None else "serving something else"


def _show(state: str, up: list[str], expected: service.Expected, wrong: str | None) -> None:
    colour = "green" if state == "serving" else "yellow"
    out.print(
        f"[{colour}]{state}[/{colour}]: the site holds release {expected.release} "
        f"at schema {expected.schema}"
    )
    if wrong:
        out.print(f"  {wrong}", highlight=False)
    for reason in up:
        out.print(f"  {reason}", highlight=False)


def _declared(ctx: context.Context) -> None:
    section = ctx.site.service
    if section is None or not (section.start or section.run):
        raise UsageRefused(
            "site.toml declares no way to run the product",
            hint="add [service] with start/stop commands or a run command (docs/site.md)",
        )
