"""``stairway check`` and ``stairway new change``: the vendor's side of the catalog.

Neither needs a database; without ``--catalog`` they use the catalog that site.toml names.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from stairway.authoring.newchange import write_change
from stairway.catalog.check import CatalogSeverity, Problem, Report, check_catalog
from stairway.errors import ExitCode, SiteError
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, err, out
from stairway.site import load_site

app = typer.Typer()
new_app = typer.Typer(help="Start a new file of the catalog.", no_args_is_help=True)


def catalog_root(site: Path | None, catalog: Path | None) -> Path:
    """``--catalog``, or the catalog site.toml names."""
    if catalog is not None:
        return catalog
    root = load_site(site).site.catalog
    if root is None:
        raise SiteError(
            "no catalog given",
            hint="pass --catalog DIR or set `catalog = ...` in the [site] table of site.toml",
        )
    return root


class Dialect(StrEnum):
    """A database an adopted Alembic history's SQL is rendered for."""

    postgresql = "postgresql"
    sqlite = "sqlite"


@app.command("check")
def check(
    dialect: Annotated[
        list[Dialect] | None,
        typer.Option(
            "--dialect",
            help="judge an Alembic history's SQL for this database only (repeatable) "
            "[default: every one the catalog's database checks admit, else both]",
        ),
    ] = None,
    catalog: CatalogOpt = None,
    site: SiteOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check the whole catalog, reporting every problem of every file (exit 2 when any)."""
    chosen = [d.value for d in dialect or ()]
    report = check_catalog(catalog_root(site, catalog), chosen)
    if json:
        emit_json(
            {
                "ok": not report.errors,
                "dialects": list(report.dialects),
                "problems": [p.as_json() for p in report.problems],
            }
        )
    else:
        _show(report)
    if report.errors:
        raise typer.Exit(int(ExitCode.REFUSED))


def _show(report: Report) -> None:
    for problem in report.problems:
        _show_problem(problem)
    files = len({p.path for p in report.errors})
    if report.errors:
        err.print(
            f"[red]{len(report.errors)} error(s) in {files} file(s)[/red], "
            f"{len(report.warnings)} warning(s){_judged(report)}",
            highlight=False,
        )
    else:
        out.print(
            f"[green]{escape(str(report.root))}: no errors[/green], "
            f"{len(report.warnings)} warning(s){_judged(report)}",
            highlight=False,
        )


def _judged(report: Report) -> str:
    """Which databases an Alembic history's SQL was judged for; nothing for other catalogs."""
    return f" (Alembic SQL judged for {' and '.join(report.dialects)})" if report.dialects else ""


def _show_problem(problem: Problem) -> None:
    error = problem.severity is CatalogSeverity.ERROR
    colour = "red" if error else "yellow"
    console = err if error else out
    console.print(
        f"{escape(problem.where())}: [{colour}]{problem.severity}:[/{colour}] "
        f"{escape(problem.describe())}",
        highlight=False,
        soft_wrap=True,
    )
    if problem.fix:
        console.print(f"  fix: {escape(problem.fix)}", highlight=False, soft_wrap=True)


@new_app.command("change")
def new_change(
    name: Annotated[str, typer.Argument(help="a slug: lowercase letters, digits, underscores")],
    phase: Annotated[str, typer.Option("--phase", help="expand, contract or offline")] = "offline",
    patch_of: Annotated[
        int | None,
        typer.Option("--patch-of", help="a patch change of an LTS line, after change N (N.1 ...)"),
    ] = None,
    catalog: CatalogOpt = None,
    site: SiteOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write the next numbered SQL change file with its header; print its path."""
    root = catalog_root(site, catalog)
    change = write_change(root, name, phase, patch_of)
    path = root / "schema" / change.file_name
    if json:
        emit_json({"path": str(path), "change": change.code})
    else:
        out.print(str(path), highlight=False, soft_wrap=True)
    if change.patch:
        err.print(
            f'list it in `patches = ["{change.code}"]` of every release that carries it '
            "(docs/catalog.md: patch releases of an LTS line)",
            highlight=False,
        )
