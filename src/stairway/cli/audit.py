"""``stairway audit``: the site's hash-chained audit log, shown or checked against its witness,
and the audit public key that checks its checkpoints elsewhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from stairway import audit, audit_anchor
from stairway import context as site_context
from stairway.audit_carry import carried_from
from stairway.errors import AuditBroken
from stairway.files import write_atomic
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out, plain

app = typer.Typer(help="The site's hash-chained audit log.")


@app.command("show")
def audit_show(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Every audit entry, oldest first; those carried over by a restore say where from, those
    imported without a trusted signature say so."""
    found = audit.read(site_context.open_context(site, catalog).engine)
    if json:
        emit_json([dataclasses.asdict(e) for e in found])
        return
    for entry in found:
        out.print(_shown(entry), highlight=False)


def _shown(entry: audit.Entry) -> str:
    carried = carried_from(entry)
    data = {k: v for k, v in entry.data.items() if k != "carried"} if carried else entry.data
    line = plain(f"{entry.id:>5} {entry.at} {entry.actor} {entry.action} {data}")
    notes = [plain(carried)] if carried else []
    if entry.data.get("unverified") is True:
        notes.append("unverified import")
    return line + "".join(f" [cyan]({note})[/cyan]" for note in notes)


@app.command("verify")
def audit_verify(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Check the chain, and the log against the signed checkpoints of its witness: an entry
    changed or removed, a log cut short, recomputed, emptied or dropped is named; exit 2. A
    log found whole is signed as it stands."""
    ctx = site_context.open_context(site, catalog)
    # the witness first: checking the chain creates a missing table, which would hide its drop
    anchored = audit_anchor.check_anchor(ctx.engine, site_context.anchor(ctx))
    found = audit.check(ctx.engine)
    problems = found.problems + anchored.problems
    if json:
        said = {"whole": not problems, "entries": found.entries, "problems": problems}
        emit_json(said | anchored.as_json())
    if problems:
        raise AuditBroken(
            "the audit log was tampered with: " + "; ".join(problems),
            hint="restore the log from a backup and find out who changed it",
        )
    site_context.checkpoint(ctx)  # a log found whole is signed as it stands now
    if not json:
        out.print(
            f"[green]the audit log is whole[/green] ({found.entries} entries){_seen(anchored)}"
        )


def _seen(anchored: audit_anchor.AnchorCheck) -> str:
    if not anchored.anchored:
        return "; it was not anchored yet: its first signed checkpoint is written now"
    if anchored.last is None:
        return ""
    return f", as the witness signed it up to {anchored.last.describe()}"


@app.command("key")
def audit_key(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="write the public key here instead of stdout")
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """The site's audit public key (PEM): give it to `stairway import --trust` on another site
    to check the audit entries this site exports."""
    ctx = site_context.open_context(site, catalog)
    key = audit_anchor.public_key(ctx.engine, site_context.anchor(ctx))
    if out_file is not None:
        write_atomic(out_file, key.pem().encode())
    if json:
        written = str(out_file) if out_file else None
        emit_json({"key": key.id, "pem": key.pem(), "written": written})
    elif out_file is None:
        typer.echo(key.pem(), nl=False)
    else:
        out.print(f"audit public key {key.id} written to {out_file}", highlight=False)
