"""A site's backups: taken, listed and restored (carrying the audit entries written since)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from stairway import audit, audit_anchor, audit_carry, audit_witness, disk
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
from stairway.context import (
    Context,
    anchor,
    backup_dir,
    current_version,
    secret_keys,
)
from stairway.errors import (
    BackupError,
    StairwayError,
)
from stairway.schema import migrator
from stairway.secrets import backups as secret_backups
from stairway.sitelock import changes_site

log = logging.getLogger(__name__)


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
    audit_witness.keep_out(anchor(ctx), parts.data_dir, parts.config_files)
    try:
        return take_backup(parts)
    except Exception as error:  # pg_dump's words for a full disk do not say which
        found = disk.trouble(error)
        if found is None or str(parts.backup_dir) in str(error):
            raise
        raise BackupError(
            f"cannot write the backup in {parts.backup_dir}: {found.said}",
            hint=f"{found.advice(parts.backup_dir)}, then back up again; the site was not changed",
            path=str(parts.backup_dir),
        ) from error


def _audit_head(ctx: Context) -> AuditHeadModel:
    """Read before the dump, so the dump holds this entry (and maybe later ones: a restore
    skips those it finds restored)."""
    with ctx.engine.connect() as conn:
        head = audit.head(conn)
    return AuditHeadModel(id=head.id, hash=head.hash) if head else AuditHeadModel.empty()


def backups(ctx: Context) -> list[Backup]:
    """The site's backups, oldest first."""
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
    _rebase(ctx, backup_id)  # before the saved entries go: a restore run again re-bases too
    carry.unlink(missing_ok=True)
    return manifest


def _rebase(ctx: Context, backup_id: str) -> None:
    """The log was replaced: a signed checkpoint says so, and the log is judged from it on.

    A witness that cannot be written (a full disk) fails the restore, which is then run again:
    without the checkpoint, the restored log would read as tampered with. A damaged audit key
    is only logged: running again would not mend it, and ``audit verify`` names it."""
    try:
        audit_anchor.rebase(ctx.engine, anchor(ctx), "restore", backup_id)
    except StairwayError as err:
        log.warning("the restored audit log was not anchored: %s", err)
