"""Stairway: safe, boring upgrades of self-hosted, stateful services."""

from stairway.errors import StairwayError
from stairway.guard import GuardResult, guard

__all__ = ["GuardResult", "StairwayError", "guard"]
__version__ = "0.1.0"
