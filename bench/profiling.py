"""``--profile``: where Stairway's time goes on the subject side of a benchmark.

Runs the subject side of each profiled benchmark once more under cProfile, outside the measured
runs, saves the raw profile (open it with ``python -m pstats`` or snakeviz) and the top
functions as text beside the summary, and returns the text.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from bench import adopt_history, guard_cost, object_parse, object_rewrite, transfer
from bench.harness import RESULTS_DIR, Sizes, temp_database
from bench.schema_apply import generate_changes, run_stairway, write_catalog
from stairway.catalog import load_catalog
from stairway.database import engine_for
from stairway.objects.migrate import Migrator
from stairway.objects.rewrite import rewrite_all
from stairway.schema import migrator

TOP = 20
Subject = Callable[[], object]


@contextmanager
def _schema_apply(sizes: Sizes) -> Iterator[Subject]:
    changes = generate_changes(sizes.changes)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        catalog_dir = write_catalog(Path(tmp) / "catalog", changes)
        with temp_database("profile") as db:
            yield lambda: run_stairway(catalog_dir, db.url, sizes.changes)


@contextmanager
def _object_parse(sizes: Sizes) -> Iterator[Subject]:
    raw = [object_parse.document(n) for n in range(sizes.guard_calls * 25)]
    migrator = Migrator(object_parse.MIGRATIONS)
    yield lambda: object_parse.parse_all(raw, migrator)


@contextmanager
def _adopt_history(sizes: Sizes) -> Iterator[Subject]:
    with temp_database("profile") as db:
        yield lambda: adopt_history.apply(db.url)


@contextmanager
def _guard_cost(sizes: Sizes) -> Iterator[Subject]:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp, temp_database("guard") as db:
        catalog = guard_cost.copy_shop(Path(tmp))
        migrator.migrate(engine_for(db.url), load_catalog(catalog), guard_cost.SCHEMA)
        guard_cost.call_guard(db.url, catalog)  # warm, as the measured calls are

        def calls() -> None:
            for _ in range(sizes.guard_calls):
                guard_cost.call_guard(db.url, catalog)

        yield calls


@contextmanager
def _object_rewrite(sizes: Sizes) -> Iterator[Subject]:
    with temp_database("profile") as db:
        object_rewrite.populate(db, sizes.objects)
        object_rewrite.reset(db, "subject")
        store = object_rewrite.subject_store(db)
        yield lambda: rewrite_all(store, batch=object_rewrite.BATCH)


@contextmanager
def _transfer(sizes: Sizes) -> Iterator[Subject]:
    """The import, in one process: cProfile does not follow the forked workers, so the
    profile shows one worker's share of the work plus the parent's check, not their overlap."""
    with temp_database("profile") as db, tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "site.export.zst"
        transfer.populate(db, sizes.objects)
        transfer.export_once(db, export)
        yield lambda: transfer.import_once(db, export, workers=1)


# A benchmark's subject side, set up and ready to call once.
PROFILED: dict[str, Callable[[Sizes], AbstractContextManager[Subject]]] = {
    "schema_apply": _schema_apply,
    "object_parse": _object_parse,
    "adopt_history": _adopt_history,
    "guard_cost": _guard_cost,
    "object_rewrite": _object_rewrite,
    "transfer": _transfer,
}


def profile(name: str, sizes: Sizes) -> str:
    """The top functions of ``name``'s subject by cumulative and by own time, as text.

    ``<name>.prof`` and ``<name>.profile.txt`` are written beside the summary.
    """
    profiler = cProfile.Profile()
    with PROFILED[name](sizes) as subject:
        profiler.runcall(subject)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(RESULTS_DIR / f"{name}.prof")
    text = _report(profiler)
    (RESULTS_DIR / f"{name}.profile.txt").write_text(text, encoding="utf-8")
    return f"profile of {name} (subject side): {RESULTS_DIR / f'{name}.prof'}\n{text}"


def _report(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    for order in ("cumulative", "tottime"):
        out.write(f"\n=== top {TOP} by {order} ===\n")
        stats.sort_stats(order).print_stats(TOP)
    return out.getvalue()
