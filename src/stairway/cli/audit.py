"""``stairway audit``: the site's hash-chained audit log, shown or checked against its witness,
the audit public key that checks its checkpoints elsewhere, and the log moved to another
installation while this one serves (export, import, position, move)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from stairway import audit, audit_anchor, audit_tail
from stairway import context as site_context
from stairway.audit_carry import carried_from
from stairway.errors import AuditBroken
from stairway.files import write_atomic
from stairway.operations import audit_move
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out, plain
from stairway.transfer.tail import TailImport
from stairway.transfer.trust import read_trusted

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


TrustOpt = Annotated[
    Path | None,
    typer.Option(
        "--trust",
        help="the source site's audit public key (PEM, from `stairway audit key` there): "
        "entries are imported only when signed with it",
    ),
]


@app.command("export")
def audit_export(
    out_file: Annotated[Path, typer.Option("--out", help="the audit tail file to write")],
    after: Annotated[
        str | None,
        typer.Option(
            "--after",
            help="SEQ:HASH of the last entry the target holds (`stairway audit position` "
            "there) [default: the whole log]",
        ),
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write the audit entries after a position up to a checkpoint signed now: the whole log
    first, then catch-ups while the site keeps serving (`audit import` on the target)."""
    position = audit_tail.parse_position(after) if after else audit_tail.START
    ctx = site_context.open_context(site, catalog)
    written = audit_move.export_tail(ctx, out_file, position)
    if json:
        emit_json(_exported(written))
    else:
        out.print(plain(written.describe()), highlight=False)


def _exported(written: audit_move.TailExport) -> dict[str, object]:
    return {
        "file": str(written.path),
        "after": audit_tail.describe(written.after),
        "head": audit_tail.describe(written.head),
        "entries": written.entries,
        "key": written.key,
    }


@app.command("import")
def audit_import(
    tail_file: Annotated[Path, typer.Argument(help="the audit tail `audit export` wrote")],
    trust: TrustOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Append the entries of an audit tail this site does not hold yet, in one transaction;
    refused (exit 2, nothing written) unless the trusted key signed it and it follows the
    last entry imported from that log. Run twice, the second imports nothing."""
    key = read_trusted(trust) if trust else None
    ctx = site_context.open_context(site, catalog)
    done = audit_move.import_tail(ctx, tail_file, key)
    if json:
        emit_json(_imported(done))
    else:
        out.print(done.describe(), highlight=False)


def _imported(done: TailImport) -> dict[str, object]:
    return {
        "imported": done.taken,
        "before": audit_tail.describe(done.held),
        "position": audit_tail.describe(done.head),
        "key": done.key,
    }


@app.command("position")
def audit_position(
    trust: Annotated[
        Path,
        typer.Option("--trust", help="the source site's audit public key (PEM)"),
    ],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """The last entry imported from the log the key signs, as SEQ:HASH for `audit export
    --after` on the source (0:000… when none was)."""
    key = read_trusted(trust)
    found = audit_move.position(site_context.open_context(site, catalog), key)
    if json:
        emit_json({"key": key.id, "position": audit_tail.describe(found)})
    else:
        typer.echo(audit_tail.describe(found))


@app.command("move")
def audit_move_command(
    to_site: Annotated[
        Path, typer.Option("--to-site", help="site.toml of the installation the log moves to")
    ],
    trust: Annotated[
        Path | None,
        typer.Option(
            "--trust",
            help="the key the target checks the entries with [default: this site's own]",
        ),
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Move the audit entries the target does not hold yet: its position read, the tail
    exported up to a checkpoint signed now, imported. Repeat while this site serves; the last
    run, with it stopped, ends the move."""
    key = read_trusted(trust) if trust else None
    source = site_context.open_context(site, catalog)
    target = site_context.open_context(to_site, None)
    moved = audit_move.move(source, target, key)
    if json:
        emit_json({"exported": _exported(moved.exported), "imported": _imported(moved.imported)})
    else:
        out.print(moved.imported.describe(), highlight=False)
