"""``stairway plugin list|rollback``: the product's plug-ins with their versions, and one
plug-in put back on its own."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from stairway import context as site_context
from stairway.errors import ExitCode
from stairway.fleet import plugin_hosts
from stairway.operations import plugins
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out

app = typer.Typer(help="Plug-ins with versions: what is installed, and one put back on its own.")


@app.command("list")
def plugin_list(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Each plug-in: its version per the site's release, the versions its objects name, and
    the snapshots kept of it; a plug-in rollback a kill interrupted is settled first."""
    ctx = site_context.open_context(site, catalog)
    settled = plugins.settle_interrupted(ctx)
    found = plugins.plugin_list(ctx)
    if json:
        emit_json({"settled": settled, "plugins": [state.as_json() for state in found]})
        return
    if settled:
        out.print(settled, highlight=False)
    if not found:
        out.print("the catalog declares no plug-ins", highlight=False)
        return
    table = Table("plug-in", "kind", "installed", "objects", "snapshots", "on agents")
    for state in found:
        named = ", ".join(f"{v}: {n}" for v, n in sorted(state.objects.items())) or "-"
        kept = ", ".join(s.id for s in state.snapshots) or "-"
        hosts = ", ".join(s.describe() for s in state.on_agents) or "-"
        table.add_row(state.name, state.kind, state.installed or "-", named, kept, hosts)
    out.print(table)


@app.command("rollback")
def plugin_rollback(
    name: Annotated[str, typer.Argument(help="the plug-in, as `stairway plugin list` names it")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="the version to go back to [default: the newest snapshot]"),
    ] = None,
    wait: Annotated[
        float,
        typer.Option("--wait", help="seconds to wait for the agents' answers", min=0),
    ] = plugins.AGENT_WAIT,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Put one plug-in's directory back from its snapshot and move the objects naming it back,
    all or nothing, leaving the schema and every other plug-in as they are; then ask each
    agent keeping a snapshot of that version to put its own directory back, and say how each
    did (exit 3 when one could not)."""
    ctx = site_context.open_context(site, catalog)
    done = plugins.rollback_plugin(ctx, name, to)
    hosts = plugins.rollback_on_agents(ctx, done, wait)
    if json:
        emit_json(
            {"plugin": name, "from": done.move.old, "to": done.move.new}
            | {"snapshot": done.snapshot, "objects": done.moved}
            | {"hosts": [host.as_json() for host in hosts]}
        )
    else:
        out.print(done.describe(), highlight=False, soft_wrap=True)
        for host in hosts:
            out.print(host.describe(), highlight=False, soft_wrap=True)
    if any(host.state == plugin_hosts.FAILED for host in hosts):
        raise typer.Exit(int(ExitCode.NEEDS_OPERATOR))
