"""``stairway test-paths``: every upgrade path of a catalog, run on scratch sites (vendor CI)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from stairway.catalog import load_catalog
from stairway.cli.authoring import catalog_root
from stairway.errors import ExitCode
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, err, out
from stairway.pathtests import ENGINES, PathsReport, default_sources, run_paths
from stairway.targets import starting_version, target_version

app = typer.Typer()


class EngineChoice(StrEnum):
    """Which engines the paths run on."""

    sqlite = "sqlite"
    postgresql = "postgresql"
    both = "both"


@app.command("test-paths")
def test_paths(
    sources: Annotated[
        list[str] | None,
        typer.Option(
            "--from",
            help="a source release (repeat) [default: every LTS release "
            "and the last release of each minor series]",
        ),
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="target release [default: latest]")] = None,
    engine: Annotated[EngineChoice, typer.Option("--engine")] = EngineChoice.sqlite,
    postgres: Annotated[
        str | None,
        typer.Option(
            "--postgres",
            envvar="STAIRWAY_POSTGRES",
            help="PostgreSQL server URL to create scratch databases on (needs CREATEDB)",
        ),
    ] = None,
    catalog: CatalogOpt = None,
    site: SiteOpt = None,
    json: JsonOpt = False,
) -> None:
    """Upgrade scratch sites from each source release to the target, as `upgrade` does, and
    compare each schema with a new site at the target; exit 2 when any path fails."""
    loaded = load_catalog(catalog_root(site, catalog))
    target = target_version(loaded, to)
    starts = [starting_version(loaded, s) for s in sources or []]
    starts = starts or default_sources(loaded.releases, target)
    engines = ENGINES if engine is EngineChoice.both else (engine.value,)
    report = run_paths(loaded, starts, target, engines, postgres)
    if json:
        emit_json(
            {
                "ok": report.ok,
                "paths": [r.as_json() for r in report.results],
                "smoke_skipped": list(report.skipped_smoke),
            }
        )
    else:
        _show(report)
    if not report.ok:
        raise typer.Exit(int(ExitCode.REFUSED))


def _show(report: PathsReport) -> None:
    table = Table("path", "result", "findings")
    for result in report.results:
        said = "[green]passed[/green]" if result.ok else "[red]failed[/red]"
        table.add_row(escape(result.describe()), said, escape("\n".join(result.findings)))
    out.print(table)
    if report.skipped_smoke:
        names = ", ".join(report.skipped_smoke)
        out.print(f"smoke checks skipped (they need the product running): {escape(names)}")
    failed = [r for r in report.results if not r.ok]
    if failed:
        err.print(
            f"[red]error:[/red] {len(failed)} of {len(report.results)} upgrade paths failed",
            highlight=False,
        )
        err.print(
            "[yellow]hint:[/yellow] each finding names the object that differs from a new "
            "site at the target: add the change the history lacks, or fix the snapshot",
            highlight=False,
        )
