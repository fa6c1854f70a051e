"""``stairway objects``: stored objects rewritten in bulk, or one shown as the code reads it."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.progress import Progress

from stairway import context as site_context
from stairway import operations, views
from stairway.objects.checkpoints import Checkpoint
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out

app = typer.Typer(help="Stored objects: rewrite them in bulk, show one as the code reads it.")


@app.command("rewrite")
def objects_rewrite(
    batch: Annotated[int, typer.Option("--batch", help="objects per transaction")] = 1000,
    rate: Annotated[
        float | None, typer.Option("--rate", help="at most this many objects per second")
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write every stale object back in its migrated form; resumes after a kill."""
    ctx = site_context.open_context(site, catalog)
    if json:
        report = operations.rewrite_objects(ctx, batch, rate)
        emit_json(dataclasses.asdict(report))
        return
    with Progress(*Progress.get_default_columns(), console=out) as bar:
        task = bar.add_task("rewriting objects", total=None)

        def advance(scanned: int, total: int | None, _point: Checkpoint, /) -> None:
            bar.update(task, completed=scanned, total=total)

        report = operations.rewrite_objects(ctx, batch, rate, advance)
    out.print(f"[green]done:[/green] {report.describe()}")


@app.command("show")
def objects_show(
    oid: Annotated[str, typer.Argument(help="the object's id")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """One object as the site's release reads it, and the migrations that applied (read-only)."""
    store = operations.object_store(site_context.open_context(site, catalog))
    found = operations.peek_object(store, oid)
    if json:
        emit_json(views.object_json(found))
        return
    out.print(views.object_panel(found))
