"""``stairway quickstart``: the demo, told step by step for people."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress

from stairway import operations, views
from stairway import quickstart as demo
from stairway import upgrade as upgrading
from stairway import verify as checks
from stairway.cli.output import announce, steps
from stairway.context import Context
from stairway.options import out

app = typer.Typer()


@app.command()
def quickstart(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="where to build the demo [default: a new temp dir]")
    ] = None,
) -> None:
    """Build a demo site of the bundled identity-sync product on SQLite and upgrade it."""
    target = directory or Path(tempfile.mkdtemp(prefix="stairway-demo-"))
    site = demo.write_site(target)
    ctx = demo.open_demo(site)
    out.rule("[bold]Stairway quickstart: identity-sync on SQLite")
    out.print(f"site: {site.site_file}")
    operations.init(ctx, "1.0.0", progress=announce)
    _seed(ctx)
    try:
        with demo.serving(ctx):
            _tour(ctx, site, target)
    finally:
        out.print(f"(the demo service was stopped; `stairway status --site {site.site_file}`)")


def _tour(ctx: Context, site: demo.DemoSite, target: Path) -> None:
    """The running demo shown, upgraded to 2.0.0 and shown again."""
    out.print(f"identity-sync 1.0.0 serves: {demo.answer(site.health_url)}")
    out.print(views.plan_table(operations.plan(ctx, "2.0.0"), ctx.catalog.warnings))
    out.print(views.verify_table(checks.verify(ctx, "2.0.0")))
    out.rule("[bold]stairway upgrade --to 2.0.0")
    report = upgrading.upgrade(ctx, "2.0.0", progress=steps(json=False))
    for item in report.attention:
        out.print(f"[yellow]needs a hand:[/yellow] {escape(item.describe())}")
    out.print(f"identity-sync 2.0.0 serves: {demo.answer(site.health_url)}")
    credential = demo.answer(demo.credential_url(site))
    out.print(f"the LDAP connector's sealed bind password after the upgrade: {credential}")
    out.print(views.status_table(operations.status(ctx)))
    out.print(
        f"[green]done:[/green] {demo.migrated_users(ctx):,} users carry their new display "
        f"name; the journal and the backup are in {target / 'backups'}"
    )


def _seed(ctx: Context) -> None:
    with Progress(*Progress.get_default_columns(), console=out) as bar:
        task = bar.add_task("demo users", total=demo.DEMO_USERS)
        demo.seed(ctx, lambda n: bar.advance(task, n))
