"""Findings on disk space: whether the backup taken before the upgrade fits where it goes."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import text

from stairway.context import Context
from stairway.database import sqlite_path
from stairway.verify.findings import Finding, FindingSeverity, Topic

BACKUP_MARGIN = 1.2  # a backup compresses, but the restore copy needs room too


def disk_findings(ctx: Context) -> list[Finding]:
    """Whether ``backup_dir`` is set and has room for a backup of the site as it is now."""
    where = ctx.site.site.backup_dir
    if where is None:
        return [
            Finding(
                Topic.DISK,
                FindingSeverity.WARNING,
                "no backup_dir in site.toml: no backup can be taken",
                hint="set backup_dir in the [site] table",
            )
        ]
    needed = int(_backup_size(ctx) * BACKUP_MARGIN)
    free = shutil.disk_usage(_existing(where)).free
    if free >= needed:
        said = f"{_mb(free)} free for a backup of about {_mb(needed)}"
        return [Finding(Topic.DISK, FindingSeverity.INFO, said)]
    return [
        Finding(
            Topic.DISK,
            FindingSeverity.CRITICAL,
            f"{_mb(free)} free at {where}, a backup needs about {_mb(needed)}",
            blocking=True,
            hint="free space there or point backup_dir at a larger disk",
        )
    ]


def _backup_size(ctx: Context) -> int:
    files = [*ctx.site.site.config_files]
    database = sqlite_path(ctx.engine)
    size = _tree_size(ctx.site.site.data_dir) + sum(_tree_size(f) for f in files)
    if database is not None:
        return size + _tree_size(database)
    with ctx.engine.connect() as conn:
        return size + int(
            conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0
        )


def _tree_size(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mb(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"
