"""A site's config files moved from one release's form to another's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stairway.configfiles import ConfigRun, plan_config_files, write_config_files
from stairway.context import (
    Context,
    changing,
    current_version,
)
from stairway.targets import starting_version, target_version


@dataclass(frozen=True)
class ConfigResult:
    """The site's config files migrated, the originals kept, and whether anything was written."""

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
