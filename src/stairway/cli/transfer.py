"""``stairway export`` (and ``export verify``) and ``stairway import``: a site's stored objects
and audit log in one checked file."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Annotated

import typer

from stairway import context as site_context
from stairway import operations, views
from stairway.errors import TransferError, UsageRefused
from stairway.meter import meter
from stairway.options import CatalogOpt, JsonOpt, ShardOpt, SiteOpt, WorkersOpt, emit_json, out
from stairway.transfer.format import check
from stairway.transfer.shards import WHOLE, Shard
from stairway.transfer.trust import AuditTrust, read_trusted

app = typer.Typer()
export_app = typer.Typer(
    help="Export every stored object to one checked NDJSON+zstd file; `export verify FILE`.",
    invoke_without_command=True,
)


@export_app.callback()
def export_command(
    context: typer.Context,
    out_file: Annotated[Path | None, typer.Option("--out", help="the export file to write")] = None,
    chunk: Annotated[int, typer.Option("--chunk", help="objects per checked chunk")] = 10_000,
    workers: WorkersOpt = 1,
    shard: ShardOpt = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Export the site's objects as stored, and its audit log; resumes an interrupted export
    of the same file. With --shard i/N, only the i-th of N id ranges, into its own file."""
    if context.invoked_subcommand is not None:
        return
    if out_file is None:
        raise UsageRefused("no export file given", hint="pass --out FILE (e.g. site.export.zst)")
    part = Shard.parse(shard) if shard else WHOLE
    ctx = site_context.open_context(site, catalog)
    if json:
        report = operations.export(ctx, out_file, chunk, None, workers, part)
        emit_json({**dataclasses.asdict(report), "path": str(report.path)})
        return
    with meter(out, "exporting objects") as update:
        report = operations.export(ctx, out_file, chunk, update, workers, part)
    resumed = f", resumed after {report.resumed_at:,}" if report.resumed_at else ""
    held = views.export_contents(report.objects, report.audit_entries, report.chunks)
    out.print(f"[green]exported[/green] {held} to {report.path}{resumed}")


@export_app.command("verify")
def export_verify(
    export_file: Annotated[Path, typer.Argument(help="the export file to check")],
    json: JsonOpt = False,
) -> None:
    """Check an export without a database: header, every chunk's count and SHA-256, trailer."""
    if not export_file.is_file():
        raise UsageRefused(f"{export_file} does not exist", hint="give the export file's path")
    summary = check(export_file)
    problems = [p.describe() for p in summary.problems]
    problems += [f"the exported audit log: {doubt}" for doubt in summary.audit_doubts]
    if json:
        emit_json(
            {
                "ok": not problems and summary.ok,
                "objects": summary.objects,
                "chunks": summary.chunks,
                "counts": summary.counts,
                "problems": problems,
                "audit_signed": summary.checkpoint is not None and not summary.audit_doubts,
            }
        )
    if problems or not summary.ok:
        shown = "; ".join(problems[:5])
        raise TransferError(
            f"{export_file} does not check out: {shown}",
            hint="export again; an interrupted export resumes with the same --out",
        )
    if not json:
        out.print(
            f"[green]{export_file} checks out[/green]: "
            f"{views.export_contents(summary.objects, summary.audit_entries, summary.chunks)}, "
            f"{summary.header.get('product')} "
            f"{summary.header.get('version')}"
        )


@app.command("import")
def import_command(
    export_file: Annotated[Path, typer.Argument(help="the export file to import")],
    max_errors: Annotated[
        int, typer.Option("--max-errors", help="stop after this many rejected records")
    ] = 0,
    workers: WorkersOpt = 1,
    shard: ShardOpt = None,
    trust: Annotated[
        Path | None,
        typer.Option(
            "--trust",
            help="the exporting site's audit public key (PEM, from `stairway audit key`): "
            "its audit entries are imported only when signed with it",
        ),
    ] = None,
    untrusted_audit: Annotated[
        bool,
        typer.Option(
            "--untrusted-audit", help="import audit entries that cannot be checked, marked so"
        ),
    ] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Import an export, migrating old objects while parsing; resumable and idempotent. Its
    audit entries need --trust (or --untrusted-audit)."""
    part = Shard.parse(shard) if shard else WHOLE
    believed = AuditTrust(read_trusted(trust) if trust else None, untrusted_audit)
    ctx = site_context.open_context(site, catalog)
    import_file = functools.partial(operations.import_file, trust=believed)
    if json:
        report = import_file(ctx, export_file, max_errors, None, workers, part)
        emit_json({**dataclasses.asdict(report), "counts": report.counts})
    else:
        with meter(out, "importing objects") as update:
            report = import_file(ctx, export_file, max_errors, update, workers, part)
        out.print(views.import_table(report))
        out.print(views.import_summary(report, part))
    if report.problems or report.rejected:
        raise TransferError(
            "; ".join(report.problems) or f"{report.rejected} record(s) rejected",
            hint=f"rejected records are in {export_file}.rejects.ndjson with line and reason",
        )
