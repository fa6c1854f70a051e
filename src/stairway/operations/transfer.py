"""A site's stored objects and audit log exported to a checked file, and imported from one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from stairway import audit, audit_anchor
from stairway.context import (
    Context,
    anchor,
    checkpointed,
    current_version,
)
from stairway.errors import (
    TransferError,
)
from stairway.operations.objects import object_store
from stairway.progress import Progress
from stairway.schema import migrator
from stairway.sitelock import site_lock
from stairway.transfer.export import ExportReport, export_objects
from stairway.transfer.importer import ImportReport, import_objects
from stairway.transfer.shards import WHOLE, Shard
from stairway.transfer.trust import NO_TRUST, AuditTrust


def export(
    ctx: Context,
    path: Path,
    chunk: int,
    progress: Progress[None] | None = None,
    workers: int = 1,
    shard: Shard = WHOLE,
) -> ExportReport:
    """Every stored object of the site, as stored, and its audit log, to the checked export
    file at ``path`` (only this machine's id range with ``shard``)."""
    if chunk < 1:
        raise TransferError(f"--chunk must be at least 1 (got {chunk})", hint="for example 10000")
    if workers < 1:
        raise TransferError(
            f"--workers must be at least 1 (got {workers})",
            hint="pass --workers 1, or up to the number of CPU cores",
        )
    state = migrator.read_state(ctx.engine, ctx.catalog)
    header = {
        "product": ctx.catalog.product,
        "version": str(current_version(ctx)),
        "schema_level": state.level,
    }
    signed = audit_anchor.signed_head(ctx.engine, anchor(ctx))
    with ctx.engine.connect() as conn:  # every shard's file carries the whole log
        log = audit.raw_rows(conn)
    if signed is not None:  # what the checkpoint covers, no later entry that it does not
        log = [row for row in log if row["id"] <= signed.point.seq]
    store = object_store(ctx)
    header |= _signature(signed)
    return export_objects(store, path, header, chunk, progress, workers, shard, log)


def _signature(signed: audit_anchor.Signed | None) -> dict[str, Any]:
    """The header's audit checkpoint and public key, by which an import checks the log."""
    if signed is None:
        return {}
    return {"audit_checkpoint": signed.point.fields(), "audit_key": signed.key.pem()}


@checkpointed
def import_file(
    ctx: Context,
    path: Path,
    max_errors: int,
    progress: Progress[None] | None = None,
    workers: int = 1,
    shard: Shard = WHOLE,
    trust: AuditTrust = NO_TRUST,
) -> ImportReport:
    """Import an export into the site, migrating each object into the site's release; its
    audit entries are checked against ``trust`` (the exporting site's audit public key)."""
    with site_lock(ctx, shared=shard != WHOLE):  # the shards of one import load together
        return _import_file(ctx, path, max_errors, progress, workers, shard, trust)


def _import_file(
    ctx: Context,
    path: Path,
    max_errors: int,
    progress: Progress[None] | None,
    workers: int,
    shard: Shard,
    trust: AuditTrust,
) -> ImportReport:
    if not path.is_file():
        raise TransferError(f"{path} does not exist", hint="give the export file's path")
    if max_errors < 0:
        raise TransferError(
            f"--max-errors must be 0 or more (got {max_errors})",
            hint="pass --max-errors 0 to stop at the first bad object, or how many to skip",
        )
    store = object_store(ctx)
    product = ctx.catalog.product
    trust = _own_key_by_default(ctx, trust)
    return import_objects(store, path, product, max_errors, progress, workers, shard, trust)


def _own_key_by_default(ctx: Context, trust: AuditTrust) -> AuditTrust:
    """Without ``--trust``, the site's own audit key: an export taken here comes back without
    being told whose it is; another site's still needs its key."""
    own = anchor(ctx).key_file
    if trust.key is not None or not own.exists():
        return trust
    return replace(trust, key=audit_anchor.public_key(ctx.engine, anchor(ctx)), own=True)
