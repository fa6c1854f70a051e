"""Backups: a consistent snapshot of a site's database, data directory and config files in one
zstd archive with a manifest of checksums, and its restore."""

from stairway.backup.manifest import AuditHeadModel, BackupManifest
from stairway.backup.restore import RestoreTarget, restore_backup
from stairway.backup.snapshot import Backup, SiteParts, find_backup, list_backups, take_backup

__all__ = [
    "AuditHeadModel",
    "Backup",
    "BackupManifest",
    "RestoreTarget",
    "SiteParts",
    "find_backup",
    "list_backups",
    "restore_backup",
    "take_backup",
]
