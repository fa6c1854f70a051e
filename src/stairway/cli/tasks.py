"""``stairway tasks``: a release's post-upgrade tasks, run again by hand."""

from __future__ import annotations

from typing import Annotated

import typer

from stairway import context as site_context
from stairway.operations import tasks
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out
from stairway.progress import silent
from stairway.tasks import TaskProgress

app = typer.Typer(help="Post-upgrade tasks of a release: a reindex or a product command.")


def _say(_done: int, _total: int | None, found: TaskProgress, /) -> None:
    out.print(f"  {found.describe()}", highlight=False)


@app.command("run")
def tasks_run(
    name: Annotated[str, typer.Argument(help="the task's name, as the catalog declares it")],
    release: Annotated[
        str | None,
        typer.Option(
            "--release",
            help="the release that declares it (default: the newest "
            "release up to the site's that does)",
        ),
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Run a task again, such as one that failed in the background (`stairway status` names it)."""
    ctx = site_context.open_context(site, catalog)
    done = tasks.run_by_hand(ctx, name, release, silent if json else _say)
    if json:
        emit_json(done)
        return
    for index in done.get("dropped", []):
        out.print(f"dropped invalid index {index}, left by an interrupted reindex", highlight=False)
    out.print(f"task {name} done in {done['ran_s']:.1f} s ({done['kind']})", highlight=False)
