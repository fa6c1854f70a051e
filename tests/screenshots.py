"""Where the browser tests keep their full-page screenshots, for ``.ci/run`` to pack and CI
to keep: ``$STAIRWAY_ARTIFACTS/screenshots``, ``artifacts/screenshots`` at the repository root
unless said."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def screenshots() -> Path:
    """The screenshots' directory, made if missing."""
    base = Path(os.environ.get("STAIRWAY_ARTIFACTS") or ROOT / "artifacts")
    where = base / "screenshots"
    where.mkdir(parents=True, exist_ok=True)
    return where
