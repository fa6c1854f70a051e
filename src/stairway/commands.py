"""Thin, typed functions behind every command. The CLI and the server call these and only
translate arguments in and results out."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, Text, cast, select

from stairway import audit, audit_carry, disk
from stairway.backup import (
    AuditHeadModel,
    Backup,
    BackupManifest,
    RestoreTarget,
    SiteParts,
    find_backup,
    list_backups,
    restore_backup,
    take_backup,
)
from stairway.catalog import Catalog, load_catalog
from stairway.configfiles import ConfigRun, plan_config_files, write_config_files
from stairway.database import connected, engine_for
from stairway.errors import (
    BackupError,
    DeltaError,
    ObjectMigrationError,
    PlanError,
    SchemaError,
    SiteError,
    TransferError,
)
from stairway.notes import release_notes
from stairway.objects import delta_run
from stairway.objects.delta import Delta
from stairway.objects.delta_run import DeltaReport
from stairway.objects.migrate import Migrator
from stairway.objects.paths import parse_path
from stairway.objects.rewrite import Progress as RewriteProgress
from stairway.objects.rewrite import RewriteReport, rewrite_all
from stairway.objects.store import ObjectStore, StoredObject
from stairway.plan import UpgradePlan, make_plan
from stairway.release_source import catalog_of
from stairway.schema import migrator, recorder
from stairway.schema.adoption import adoption_hint
from stairway.schema.change import Change, Phase
from stairway.schema.executor import Applied
from stairway.schema.migrator import Progress
from stairway.schema.phases import PhaseFinding
from stairway.schema.state import SchemaState
from stairway.secrets import backups as secret_backups
from stairway.secrets.keyring import KeySource
from stairway.site import Site, load_site
from stairway.sitelock import changes_site, site_lock
from stairway.targets import named_release, starting_version, target_version
from stairway.transfer.export import ExportReport, export_objects
from stairway.transfer.export import Progress as ExportProgress
from stairway.transfer.importer import ImportReport, import_objects
from stairway.transfer.importer import Progress as ImportProgress
from stairway.transfer.shards import WHOLE, Shard
from stairway.versions import Release, Version, check_hop

if TYPE_CHECKING:
    from stairway.background import Job, Throttle
    from stairway.secrets.store import Rekeyed


@dataclass(frozen=True)
class Context:
    site: Site
    catalog: Catalog
    engine: Engine


def open_context(
    site_file: Path | None, catalog_dir: Path | None, release: str | None = None
) -> Context:
    """The site, its catalog and its engine. With ``release`` (a command's ``--to``) and no
    ``--catalog``, a site that reads its catalog from its releases reads that release's own
    catalog, installing the verified release first when it is published but not installed."""
    site = load_site(site_file)
    root = catalog_dir or (release and catalog_of(site.site, release)) or site.site.catalog
    if root is None:
        raise SiteError(
            "no catalog given",
            hint="pass --catalog DIR or set `catalog = ...` in the [site] table of site.toml",
        )
    return Context(site, load_catalog(root), _reachable(site.database))


def _reachable(url: str) -> Engine:
    """The site's engine once it answers; a PostgreSQL database left renamed by a restore killed
    between its two renames is put back under its name first (the restore is then run again)."""
    try:
        return connected(url)
    except SiteError:
        engine = engine_for(url)
        if engine.dialect.name != "postgresql":
            raise
        from stairway.backup.database import settle_renamed

        try:
            settled = settle_renamed(engine.url)
        except Exception:  # the server itself does not answer: the first error says so
            settled = False
        if not settled:
            raise
        return connected(url)


@contextlib.contextmanager
def changing(ctx: Context, unless: bool = False) -> Iterator[None]:
    """The site lock for a command that changes the site; none for a dry run (``unless``).

    The functions below that change a site take it themselves; this is for callers that write
    through a lower layer (secrets, background migrations) and for a dry run's counterpart.
    """
    if unless:
        yield
        return
    with site_lock(ctx):
        yield


@dataclass(frozen=True)
class Status:
    product: str
    release: str | None
    state: SchemaState
    pending: tuple[Change, ...]
    latest: str
    warnings: dict[int, list[PhaseFinding]]
    adopt: str | None = None  # a database with tables but no Stairway records: how to adopt it

    @property
    def troubles(self) -> list[str]:
        """What `status --strict` fails on: drift, changes pending for the site's release,
        changes the catalog does not ship."""
        state = self.state
        found = [f"drifted: {d.describe()}" for d in state.drifted]
        found += [f"pending for {self.release}: {c.label}" for c in self.pending]
        return found + [f"not in this catalog: {a.label}" for a in state.unknown]


def status(ctx: Context) -> Status:
    state = migrator.read_state(ctx.engine, ctx.catalog)
    release = migrator.site_release(ctx.engine)
    at = ctx.catalog.release(release) if release else None
    pending = tuple(state.pending(ctx.catalog.changes, at.schema, at.patches) if at else ())
    return Status(
        ctx.catalog.product,
        release,
        state,
        pending,
        str(ctx.catalog.latest.version),
        ctx.catalog.warnings,
        adoption_hint(ctx.engine, ctx.catalog) if not (release or state.applied) else None,
    )


def current_version(ctx: Context) -> Version:
    release = migrator.site_release(ctx.engine)
    if release is None:
        raise SiteError(
            f"{ctx.site.database} holds no Stairway site",
            hint="create it with `stairway init --version V` or adopt it with `stairway baseline`",
        )
    return Version.parse(release)


def plan(ctx: Context, to: str | None) -> UpgradePlan:
    target = target_version(ctx.catalog, to)
    state = migrator.read_state(ctx.engine, ctx.catalog)
    state.refuse_unknown_patch()
    return make_plan(ctx.catalog, current_version(ctx), state.level, target, state.patches)


@changes_site
def init(ctx: Context, version: str, progress: Progress | None = None) -> list[Applied]:
    """Create a new site at release ``version``: apply its changes and record it."""
    release = named_release(ctx.catalog, version, "--version")
    if migrator.read_state(ctx.engine, ctx.catalog).applied:
        raise SchemaError(
            f"{ctx.site.database} already holds a Stairway site",
            hint="use `stairway status` to see it, `stairway migrate --to V` to move it",
        )
    done = migrator.migrate(
        ctx.engine, ctx.catalog, release.schema, progress=progress, release=release
    )
    migrator.set_site_release(ctx.engine, ctx.catalog, str(release.version))
    if ctx.catalog.deltas:  # the initial objects of every release up to this one
        apply_deltas(ctx)
    return done


@dataclass(frozen=True)
class MigrateRequest:
    to: str | None = None
    only: Phase | None = None
    lock_timeout: float = 30.0


def migrate_target(ctx: Context, request: MigrateRequest) -> tuple[int, str | None]:
    """The schema level to reach, and the release the site is at once it is reached."""
    if request.to is None:
        release = migrator.site_release(ctx.engine)
        return (ctx.catalog.release(release).schema if release else 0), None
    migrator.read_state(ctx.engine, ctx.catalog).refuse_unknown_patch()
    target = named_release(ctx.catalog, request.to)
    check_hop(ctx.catalog.releases, current_version(ctx), target.version)
    return target.schema, str(target.version)


def pending_changes(ctx: Context, request: MigrateRequest) -> list[Change]:
    level, version = migrate_target(ctx, request)
    state = migrator.read_state(ctx.engine, ctx.catalog)
    state.refuse_unsafe()
    release = _target_release(ctx, version)
    if release is not None:
        migrator.refuse_uncarried(state, ctx.catalog, release)
    return migrator.pending(state, ctx.catalog, level, request.only, release)


def _target_release(ctx: Context, version: str | None) -> Release | None:
    """The release a migration moves to: the one named, or the site's own."""
    named = version or migrator.site_release(ctx.engine)
    return ctx.catalog.release(named) if named else None


@changes_site
def migrate(
    ctx: Context, request: MigrateRequest, progress: Progress | None = None
) -> list[Applied]:
    level, version = migrate_target(ctx, request)
    if request.only == Phase.CONTRACT:
        _refuse_old_ones(ctx, pending_changes(ctx, request))
    done = migrator.migrate(
        ctx.engine,
        ctx.catalog,
        level,
        only=request.only,
        lock_timeout=request.lock_timeout,
        progress=progress,
        release=_target_release(ctx, version),
    )
    if version and migrator.read_state(ctx.engine, ctx.catalog).level >= level:
        migrator.set_site_release(ctx.engine, ctx.catalog, version)
    return done


def _refuse_old_ones(ctx: Context, changes: list[Change]) -> None:
    """Contract changes remove what older releases use: none of them may still be serving."""
    from stairway.rolling import old_ones

    for change in changes:
        release = ctx.catalog.release_of(change.number)
        remaining = old_ones(ctx, str(release.version)) if release else []
        if remaining:
            raise SchemaError(
                f"contract change {change.label} of {release.version if release else '?'} "
                f"waits for: {'; '.join(remaining)}",
                hint="upgrade or stop them first; contract changes remove what they still use",
            )


@changes_site
def downgrade(
    ctx: Context, to: int, allow_data_loss: bool, progress: Progress | None = None
) -> list[Applied]:
    release = migrator.site_release(ctx.engine)
    if release and to < ctx.catalog.release(release).schema:
        raise PlanError(
            f"release {release} needs schema {ctx.catalog.release(release).schema}; "
            f"going down to {to} would leave it without its changes",
            hint="roll the release back together with the schema; a schema-only rollback "
            "breaks the running binary",
        )
    return migrator.downgrade(
        ctx.engine, ctx.catalog, to, allow_data_loss=allow_data_loss, progress=progress
    )


@changes_site
def baseline(ctx: Context, at: int, version: str | None, force: bool = False) -> int:
    done = migrator.baseline(ctx.engine, ctx.catalog, at, force=force)
    release = named_release(ctx.catalog, version, "--version") if version else None
    release = release or ctx.catalog.release_of(at)
    if release is not None and release.schema == at:
        migrator.set_site_release(ctx.engine, ctx.catalog, str(release.version))
    return done


@changes_site
def repair(ctx: Context) -> list[str]:
    return migrator.repair(ctx.engine, ctx.catalog)


def render_sql(changes: list[Change]) -> str:
    """The SQL a migration would send, for --dry-run."""
    parts: list[str] = []
    for change in changes:
        parts.append(f"-- {change.describe()}")
        if not change.statements:
            parts.append(f"-- Python change: runs upgrade(conn) from {change.path.name}")
        parts.extend(f"{s.text};" for s in change.statements)
        table = recorder.table_of(change).name
        parts.append(f"-- then record change {change.code} in {table}\n")
    return "\n".join(parts)


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
    running = Version.parse(version) if version else current_version(ctx)
    due = [m for m in ctx.catalog.object_migrations if m.since <= running]
    subtype = parse_path(spec.subtype) if spec.subtype else None
    return ObjectStore(ctx.engine, spec, Migrator(due, subtype), str(running))


@changes_site
def rewrite_objects(
    ctx: Context, batch: int, rate: float | None, progress: RewriteProgress | None = None
) -> RewriteReport:
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


@dataclass(frozen=True)
class ConfigResult:
    run: ConfigRun
    kept: tuple[Path, ...]  # originals saved beside the files that changed
    written: bool


def migrate_config(
    ctx: Context, to: str | None, since: str | None = None, dry_run: bool = False
) -> ConfigResult:
    """Move the site's config files from release ``since`` (the site's) to ``to`` (latest)."""
    with changing(ctx, unless=dry_run):
        current = starting_version(ctx.catalog, since) if since else current_version(ctx)
        target = target_version(ctx.catalog, to)
        run = plan_config_files(
            ctx.site.site.config_files, ctx.catalog.config_migrations, current, target
        )
        kept = () if dry_run else tuple(write_config_files(run))
    return ConfigResult(run, kept, not dry_run)


def apply_deltas(ctx: Context, dry_run: bool = False) -> DeltaReport:
    """Apply the deltas of every release up to the site's, after its schema changes (MP-3)."""
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


def notes(
    site_file: Path | None, catalog_dir: Path | None, since: str | None, until: str | None
) -> str:
    """Release notes between two versions; a site is needed only to default ``since``."""
    if since is not None and catalog_dir is not None:
        catalog = load_catalog(catalog_dir)
        start = starting_version(catalog, since)
    else:
        ctx = open_context(site_file, catalog_dir, until)
        catalog = ctx.catalog
        start = starting_version(catalog, since) if since else current_version(ctx)
    end = target_version(catalog, until)
    catalog.release(start)
    return release_notes(catalog, start, end)


def backup_dir(ctx: Context) -> Path:
    where = ctx.site.site.backup_dir
    if where is None:
        raise BackupError(
            "site.toml names no backup_dir", hint="set backup_dir in the [site] table"
        )
    return where


@changes_site
def backup(ctx: Context) -> Backup:
    """A consistent snapshot of the site: database, data directory and config files."""
    state = migrator.read_state(ctx.engine, ctx.catalog)
    parts = SiteParts(
        product=ctx.catalog.product,
        version=str(current_version(ctx)),
        schema_level=state.level,
        engine=ctx.engine,
        data_dir=ctx.site.site.data_dir,
        config_files=tuple(ctx.site.site.config_files),
        backup_dir=backup_dir(ctx),
        secret_keys=secret_backups.sealed_with(ctx.engine),
        audit_head=_audit_head(ctx),
    )
    secret_backups.keep_key_out(ctx.site.secrets.key_file, parts.data_dir, parts.config_files)
    try:
        return take_backup(parts)
    except Exception as error:  # pg_dump's words for a full disk do not say which
        found = disk.trouble(error)
        if found is None or str(parts.backup_dir) in str(error):
            raise
        raise BackupError(
            f"cannot write the backup in {parts.backup_dir}: {found.said}",
            hint=f"{found.advice(parts.backup_dir)}, then back up again; the site was not changed",
        ) from error


def _audit_head(ctx: Context) -> AuditHeadModel:
    """Read before the dump, so the dump holds this entry (and maybe later ones: a restore
    skips those it finds restored)."""
    with ctx.engine.connect() as conn:
        head = audit.head(conn)
    return AuditHeadModel(id=head.id, hash=head.hash) if head else AuditHeadModel.empty()


def secret_keys(ctx: Context) -> KeySource:
    return KeySource(ctx.site.secrets.key_file)


def backups(ctx: Context) -> list[Backup]:
    return list_backups(backup_dir(ctx))


CARRIED = "restore.carry"  # in backup_dir while a restore swaps: the live log's entries to carry


@changes_site
def restore(
    ctx: Context,
    backup_id: str,
    before_swap: Callable[[], object] | None = None,
    before_live: Callable[[], object] | None = None,
) -> BackupManifest:
    """Put the site back as backup ``backup_id`` holds it, checked before anything is touched;
    the audit entries written since the backup are carried over into the restored log.
    ``before_swap`` runs once the archive has proved whole (it stops the product);
    ``before_live`` once all is staged, just before the first live change."""
    where = backup_dir(ctx)
    keys = secret_keys(ctx)
    pending: list[audit_carry.Pending] = []
    carry = where / CARRIED
    live: list[bool] = []

    def before_swap_(manifest: BackupManifest) -> None:  # staged and checked, nothing live touched
        if before_swap is not None:
            before_swap()
        # read once the product is down: nothing it logs afterwards can be missed; a restore
        # run again after its first attempt swapped the log away reads what that one saved
        again = audit_carry.saved(carry, backup_id)
        pending.append(again or audit_carry.read_pending(ctx.engine, manifest))

    def before_live_(_manifest: BackupManifest) -> None:
        audit_carry.save(carry, backup_id, pending[0])
        if before_live is not None:
            before_live()
        live.append(True)

    target = RestoreTarget(
        ctx.catalog.product,
        ctx.engine,
        ctx.site.site.data_dir,
        where,
        accept=lambda m: secret_backups.check_restorable(m.secret_keys, keys, backup_id),
        config_files=tuple(ctx.site.site.config_files),
        before_swap=before_swap_,
        before_live=before_live_,
    )
    try:
        manifest = restore_backup(target, find_backup(where, backup_id))
    except BaseException:
        if not live:  # the live log is still in place: a new attempt reads it afresh
            carry.unlink(missing_ok=True)
        raise
    with ctx.engine.begin() as conn:  # the carried entries and the restore's own, or neither
        said = audit_carry.carry_over(conn, pending[0])
        data = {"backup": backup_id, "version": manifest.version, **said}
        audit.append(conn, "site.restore", data)
    carry.unlink(missing_ok=True)
    return manifest


def export(
    ctx: Context,
    path: Path,
    chunk: int,
    progress: ExportProgress | None = None,
    workers: int = 1,
    shard: Shard = WHOLE,
) -> ExportReport:
    """Every stored object of the site, as stored, and its audit log, to the checked export
    file at ``path`` (only this machine's id range with ``shard``)."""
    if chunk < 1:
        raise TransferError(f"--chunk must be at least 1 (got {chunk})", hint="for example 10000")
    if workers < 1:
        raise TransferError(f"--workers must be at least 1 (got {workers})", hint="")
    state = migrator.read_state(ctx.engine, ctx.catalog)
    header = {
        "product": ctx.catalog.product,
        "version": str(current_version(ctx)),
        "schema_level": state.level,
    }
    with ctx.engine.connect() as conn:  # every shard's file carries the whole log
        log = audit.raw_rows(conn)
    store = object_store(ctx)
    return export_objects(store, path, header, chunk, progress, workers, shard, log)


def import_file(
    ctx: Context,
    path: Path,
    max_errors: int,
    progress: ImportProgress | None = None,
    workers: int = 1,
    shard: Shard = WHOLE,
) -> ImportReport:
    """Import an export into the site, migrating each object into the site's release."""
    with site_lock(ctx, shared=shard != WHOLE):  # the shards of one import load together
        return _import_file(ctx, path, max_errors, progress, workers, shard)


def _import_file(
    ctx: Context,
    path: Path,
    max_errors: int,
    progress: ImportProgress | None,
    workers: int,
    shard: Shard,
) -> ImportReport:
    if not path.is_file():
        raise TransferError(f"{path} does not exist", hint="give the export file's path")
    if max_errors < 0:
        raise TransferError(f"--max-errors must be 0 or more (got {max_errors})", hint="")
    store = object_store(ctx)
    return import_objects(store, path, ctx.catalog.product, max_errors, progress, workers, shard)


@changes_site
def rekey_secrets(ctx: Context) -> Rekeyed:
    """Rotate the site key (``stairway.secrets.rekey``) under the site lock."""
    from stairway.secrets import rekey

    return rekey(ctx.engine, secret_keys(ctx))


@changes_site
def run_background(
    ctx: Context,
    throttle: Throttle,
    max_seconds: float | None = None,
    report: Callable[[Job], None] | None = None,
) -> list[Job]:
    """Run the queued background migrations (``stairway.background.run``) under the site lock."""
    from stairway import background

    changes = {c.number: c for c in ctx.catalog.changes if not c.patch}
    return background.run(ctx.engine, changes, throttle, max_seconds, report)
