"""What each release changes beyond the schema: ``stairway deltas`` (the configuration objects
it adds, changes or marks obsolete) and ``stairway notes`` (its release notes)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from stairway import context as site_context
from stairway import operations, views
from stairway.errors import ManualStepNeeded
from stairway.files import write_atomic
from stairway.handwork import delta_item
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out

app = typer.Typer()
deltas_app = typer.Typer(
    help="Configuration deltas: the objects each release adds, changes or marks obsolete."
)


@app.command()
def notes(
    since: Annotated[
        str | None, typer.Option("--from", help="the release upgraded from [default: the site's]")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the Markdown to this file")
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Markdown release notes from the catalog's descriptions of everything in between
    (with --json: {"markdown", "written"})."""
    text = operations.notes(site, catalog, since, to)
    if output is not None:
        write_atomic(output, text.encode("utf-8"))
    if json:
        emit_json({"markdown": text, "written": str(output) if output else None})
    elif output is None:
        sys.stdout.write(text)
    else:
        out.print(f"release notes written to {output}")


@deltas_app.command("apply")
def deltas_apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="judge them, write nothing")] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Apply the deltas of every release up to the site's; exit 3 when some are reported."""
    report = operations.apply_deltas(site_context.open_context(site, catalog), dry_run)
    if json:
        emit_json(views.deltas_json(report))
    else:
        out.print(views.deltas_table(report))
    if report.reported:
        items = [delta_item(r.delta.id, r.reason) for r in report.reported]
        raise ManualStepNeeded(
            f"{len(items)} delta(s) not applied: "
            + "; ".join(f"{i.what}: {i.reason}" for i in items),
            hint="; ".join(i.command for i in items),
        )


@deltas_app.command("skip")
def deltas_skip(
    delta_id: Annotated[str, typer.Argument(help="the delta's id")],
    reason: Annotated[str, typer.Option("--reason", help="why your version stays")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Keep your own version of what a reported delta changes; it is not tried again."""
    found = operations.skip_delta(site_context.open_context(site, catalog), delta_id, reason)
    if json:
        emit_json({"skipped": found.id, "reason": reason})
        return
    out.print(f"delta {found.id} skipped: {reason}")
