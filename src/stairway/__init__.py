"""Stairway: safe, boring upgrades of self-hosted, stateful services."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stairway.errors import StairwayError
    from stairway.reconcile import Reconciled, reconcile_jobs
    from stairway.startup import GuardResult, guard, maintenance_flag

__all__ = [
    "GuardResult",
    "Reconciled",
    "StairwayError",
    "guard",
    "maintenance_flag",
    "reconcile_jobs",
]
__version__ = "0.1.0"

# Imported on first use: the CLI, the example product's start and stop commands and every other
# `python -m stairway...` process pay for the engine, the SQL parser and the catalog only when
# they use them, not for importing the package.
_LAZY = {
    "guard": "stairway.startup",
    "GuardResult": "stairway.startup",
    "maintenance_flag": "stairway.startup",
    "StairwayError": "stairway.errors",
    "reconcile_jobs": "stairway.reconcile",
    "Reconciled": "stairway.reconcile",
}


if not TYPE_CHECKING:  # hidden from type checkers: `from stairway import typo` must fail there

    def __getattr__(name: str) -> Any:
        if name in _LAZY:
            return getattr(importlib.import_module(_LAZY[name]), name)
        raise AttributeError(f"module 'stairway' has no attribute {name!r}")
