"""A site's stored objects: read through their migrations, rewritten in bulk, shown one at a
time, and the deltas of its releases applied or skipped."""

from __future__ import annotations

from sqlalchemy import Text, cast, select

from stairway.context import (
    Context,
    changing,
    current_version,
)
from stairway.errors import (
    DeltaError,
    ObjectMigrationError,
)
from stairway.objects import delta_run
from stairway.objects.checkpoints import Checkpoint
from stairway.objects.delta import Delta
from stairway.objects.delta_run import DeltaReport
from stairway.objects.migrate import Migrator
from stairway.objects.paths import parse_path
from stairway.objects.rewrite import RewriteReport, rewrite_all
from stairway.objects.store import ObjectStore, StoredObject
from stairway.operations.schema import status
from stairway.progress import Progress
from stairway.sitelock import changes_site


def object_store(ctx: Context, version: str | None = None) -> ObjectStore:
    """The site's objects, read through the migrations of releases up to ``version``.

    ``version`` is the release whose code reads the objects: the site's own by default.
    """
    spec = ctx.catalog.objects
    if spec is None:
        raise ObjectMigrationError(
            f"the {ctx.catalog.product} catalog declares no [objects] table",
            hint="this product keeps no documents for Stairway to migrate",
        )
    running = ctx.catalog.version(version) if version else current_version(ctx)
    due = [m for m in ctx.catalog.object_migrations if m.since <= running]
    subtype = parse_path(spec.subtype) if spec.subtype else None
    migrator = Migrator(due, subtype, grammar=ctx.catalog.versions)
    return ObjectStore(ctx.engine, spec, migrator, str(running))


@changes_site
def rewrite_objects(
    ctx: Context, batch: int, rate: float | None, progress: Progress[Checkpoint] | None = None
) -> RewriteReport:
    """Rewrite every stale object in batches, resuming an interrupted rewrite.

    Args:
        ctx: The site context.
        batch: Objects read, migrated and written back per transaction.
        rate: At most this many objects per second, so a live product keeps its database.
        progress: Called after each batch.

    Raises:
        ObjectMigrationError: ``batch`` is below 1 or ``rate`` not above 0.
    """
    if batch < 1 or (rate is not None and rate <= 0):
        raise ObjectMigrationError(
            f"--batch must be at least 1 and --rate above 0 (got {batch} and {rate})",
            hint="for example --batch 1000 --rate 5000",
        )
    return rewrite_all(object_store(ctx), batch=batch, rate=rate, progress=progress)


def peek_object(store: ObjectStore, oid: str) -> StoredObject:
    """One object migrated in memory only: showing it must not write it back."""
    query = select(*store.selection()).where(cast(store.id_column, Text) == oid)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise ObjectMigrationError(f"no object {oid!r}", hint="check the id")
    return store.materialise(tuple(row))


def apply_deltas(ctx: Context, dry_run: bool = False) -> DeltaReport:
    """Apply the deltas of every release up to the site's, after its schema changes (a delta
    may touch what a change of its release creates)."""
    with changing(ctx, unless=dry_run):
        return _apply_deltas(ctx, dry_run)


def _apply_deltas(ctx: Context, dry_run: bool) -> DeltaReport:
    running = current_version(ctx)
    pending = status(ctx).pending
    if pending:
        raise DeltaError(
            f"{len(pending)} schema change(s) of {running} are not applied yet "
            f"(first: {pending[0].label}); deltas come after the schema",
            hint="run `stairway migrate` first",
        )
    store = object_store(ctx)
    due = [d for d in ctx.catalog.deltas if d.release <= running]
    return delta_run.apply_deltas(store, due, lifecycle_path(ctx), dry_run)


@changes_site
def skip_delta(ctx: Context, delta_id: str, reason: str) -> Delta:
    """Record that the operator keeps their own version of what a reported delta changes."""
    found = next((d for d in ctx.catalog.deltas if d.id == delta_id), None)
    if found is None:
        known = ", ".join(d.id for d in ctx.catalog.deltas) or "none"
        raise DeltaError(f"no delta {delta_id!r} in the catalog", hint=f"known deltas: {known}")
    delta_run.skip_delta(object_store(ctx), found, reason)
    return found


def lifecycle_path(ctx: Context) -> tuple[str, ...]:
    """Where a document records its lifecycle state (obsolete deltas set it)."""
    spec = ctx.catalog.objects
    return parse_path(spec.lifecycle if spec else "lifecycleState")
