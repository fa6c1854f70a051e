"""``stairway snapshot``: a release's schema as DDL, for new sites to be built from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from stairway import context as site_context
from stairway import operations
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out

app = typer.Typer()


@app.command("snapshot")
def snapshot(
    release: Annotated[str, typer.Option("--release", help="the release the site is at")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="directory to write into [default: CATALOG/snapshots/V]"),
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write the schema snapshot of RELEASE from a site at it: the DDL of its dialect, the rows
    its changes insert (seed data, sequence values) and a manifest with their SHA-256 (refused
    when the site is elsewhere or drifted). Of an adopted history, the tool's own table is left
    out (init stamps it) and the manifest names the history's migration at the level."""
    ctx = site_context.open_context(site, catalog)
    written = operations.take_snapshot(ctx, release, out_dir)
    if json:
        emit_json(written.as_json())
        return
    out.print(
        f"[green]snapshot of {written.release}[/green] ({written.dialect}, changes "
        f"1..{written.level}, {written.statements} statements): {escape(str(written.ddl))}",
        highlight=False,
    )
    if written.rows is not None:
        out.print(
            f"rows the changes insert: {written.row_statements} statements in "
            f"{escape(str(written.rows))}",
            highlight=False,
        )
    if not written.declared:
        out.print(
            f"declare it on release {written.release} in stairway.toml: "
            f'snapshot = "{escape(_relative(written.ddl.parent, ctx.catalog.root))}"',
            highlight=False,
        )


def _relative(directory: Path, root: Path) -> str:
    try:
        return str(directory.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(directory)
