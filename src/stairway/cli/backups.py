"""``backup``, ``backups`` and ``restore``: the site's snapshots."""

from __future__ import annotations

from typing import Annotated

import typer

from stairway import context as site_context
from stairway import operations, recovery, views
from stairway.cli.output import confirm, warn_of_restore
from stairway.errors import ExitCode
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out

app = typer.Typer()


@app.command("backup")
def backup_command(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Snapshot the database, data directory and config files into one checked archive."""
    taken = operations.backup(site_context.open_context(site, catalog))
    if json:
        emit_json(views.backup_json(taken))
        return
    size = taken.path.stat().st_size
    out.print(
        f"[green]backup {taken.id}[/green] written to {taken.path} "
        f"({len(taken.manifest.members)} members, {size / 1e6:,.1f} MB compressed)"
    )


@app.command("backups")
def backups_command(
    site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False
) -> None:
    """The backups in the site's backup_dir, oldest first."""
    found = operations.backups(site_context.open_context(site, catalog))
    if json:
        emit_json([views.backup_json(b) for b in found])
        return
    out.print(views.backups_table(found))


@app.command("restore")
def restore_command(
    backup_id: Annotated[str, typer.Argument(help="the backup's id (see `stairway backups`)")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Put the site back as a backup holds it: every checksum checked first, then the product
    stopped and shown down, the parts swapped, the release restarted and its health checked."""
    ctx = site_context.open_context(site, catalog)
    if not yes and not confirm(
        f"replace the database, data directory and config files of this "
        f"site with backup {backup_id}?"
    ):
        raise typer.Exit(int(ExitCode.REFUSED))
    manifest = recovery.restore_site(ctx, backup_id)
    warn_of_restore(ctx)
    if json:
        emit_json(
            {
                "restored": manifest.id,
                "product": manifest.product,
                "version": manifest.version,
                "schema_level": manifest.schema_level,
            }
        )
        return
    out.print(
        f"[green]restored[/green] {manifest.id}: {manifest.product} {manifest.version}, "
        f"schema level {manifest.schema_level}"
    )
