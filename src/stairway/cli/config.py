"""``stairway config``: the operator's config files moved to a release's shape."""

from __future__ import annotations

from typing import Annotated

import typer

from stairway import context as site_context
from stairway import operations, views
from stairway.errors import ManualStepNeeded
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out

app = typer.Typer(help="The operator's config files: move them to a release's shape.")


@app.command("migrate")
def config_migrate(
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    since: Annotated[
        str | None, typer.Option("--from", help="release the files are at [default: the site's]")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the diff, write nothing")
    ] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Apply the catalog's config-file migrations; keeps each original as NAME.before-VERSION."""
    result = operations.migrate_config(
        site_context.open_context(site, catalog, to), to, since, dry_run
    )
    if json:
        emit_json(views.config_json(result))
    else:
        _show(result, dry_run)
    attention = result.run.attention
    if attention:
        raise ManualStepNeeded(
            f"{len(attention)} config-file item(s) need a hand: "
            + "; ".join(a.describe() for a in attention),
            hint="edit the files as described, then run `stairway config migrate` again",
        )


def _show(result: operations.ConfigResult, dry_run: bool) -> None:
    if not result.run.outcomes:
        out.print("no config-file migrations apply to this site's files")
        return
    if dry_run:
        for outcome in result.run.changed:
            out.print(outcome.diff(), markup=False, highlight=False, soft_wrap=True)
    out.print(views.config_table(result))
    changed = len(result.run.changed)
    verb = "would change" if dry_run else "changed"
    out.print(f"[green]{verb} {changed} file(s)[/green]")
