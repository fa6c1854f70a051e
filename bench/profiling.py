"""``--profile``: where Stairway's time goes in ``schema_apply``, when its goal is missed.

Runs the Stairway side once under cProfile on a fresh database, saves the raw profile beside the
summary (open it with ``python -m pstats`` or snakeviz) and prints the top functions.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import tempfile
from pathlib import Path

from bench.harness import RESULTS_DIR, Sizes, temp_database
from bench.schema_apply import generate_changes, run_stairway, write_catalog

TOP = 20


def profile_schema_apply(sizes: Sizes) -> str:
    """The top functions by cumulative and by own time, as text; the .prof file is kept."""
    changes = generate_changes(sizes.changes)
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        catalog_dir = write_catalog(Path(tmp) / "catalog", changes)
        with temp_database("profile") as db:
            profiler.runcall(run_stairway, catalog_dir, db.url, sizes.changes)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(RESULTS_DIR / "schema_apply.prof")
    return _report(profiler)


def _report(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    for order in ("cumulative", "tottime"):
        out.write(f"\n=== top {TOP} by {order} ===\n")
        stats.sort_stats(order).print_stats(TOP)
    return out.getvalue()
