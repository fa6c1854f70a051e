"""The product's catalog: releases, schema changes (and, later, objects, deltas, config files)."""

from stairway.catalog.loader import Catalog, load_catalog

__all__ = ["Catalog", "load_catalog"]
