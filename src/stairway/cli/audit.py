"""``stairway audit``: the site's hash-chained audit log, shown or checked."""

from __future__ import annotations

import dataclasses

import typer
from rich.markup import escape

from stairway import audit
from stairway import context as site_context
from stairway.audit_carry import carried_from
from stairway.errors import AuditBroken
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out

app = typer.Typer(help="The site's hash-chained audit log.")


@app.command("show")
def audit_show(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Every audit entry, oldest first; those carried over by a restore say where from."""
    found = audit.read(site_context.open_context(site, catalog).engine)
    if json:
        emit_json([dataclasses.asdict(e) for e in found])
        return
    for entry in found:
        carried = carried_from(entry)
        data = {k: v for k, v in entry.data.items() if k != "carried"} if carried else entry.data
        line = f"{entry.id:>5} {entry.at} {entry.actor} {entry.action} {data}"
        said = f"{escape(line)} [cyan]({carried})[/cyan]" if carried else escape(line)
        out.print(said, highlight=False)


@app.command("verify")
def audit_verify(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Check the chain: an entry changed or removed after it was written is named; exit 2."""
    found = audit.check(site_context.open_context(site, catalog).engine)
    if json:
        emit_json(
            {"whole": not found.problems, "entries": found.entries, "problems": found.problems}
        )
    if found.problems:
        raise AuditBroken(
            "the audit log was tampered with: " + "; ".join(found.problems),
            hint="restore the log from a backup and find out who changed it",
        )
    if not json:
        out.print(f"[green]the audit log is whole[/green] ({found.entries} entries)")
