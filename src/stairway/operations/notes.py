"""Release notes between two versions of a site's catalog."""

from __future__ import annotations

from pathlib import Path

from stairway.catalog import load_catalog
from stairway.context import (
    current_version,
    open_context,
)
from stairway.notes import release_notes
from stairway.targets import starting_version, target_version


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
