"""``adopt_history``: Stairway applying a real product's whole Alembic history (Optuna's, read
from its installed wheel) versus the product's own ``alembic upgrade head`` (its alembic.ini and
env.py), each on an empty PostgreSQL database, in one run.

Stairway's time counts reading the catalog (Alembic's ScriptDirectory and the checksums of the
revision files; SQL is rendered only when a phase or data-loss rule asks for it) and applying
the history under the migration lock, in one transaction with its bookkeeping, as a database
that records no change gets it; Alembic's counts loading the scripts and the run, also in one
transaction. Each run begins after a full collection, outside the clock (``_settled``). Goal:
ratio <= 1.0.
"""

from __future__ import annotations

import gc
from pathlib import Path

import optuna
from alembic import command
from alembic.config import Config

from bench.harness import MIN_REPEATS, Result, Sizes, alternate, temp_database, timed
from stairway.catalog import load_catalog
from stairway.database import dispose_all, engine_for
from stairway.schema import migrator

NAME = "adopt_history"
GOAL = 1.0
CATALOG = Path(__file__).parent.parent / "tests" / "catalogs" / "optuna"
OPTUNA_RDB = Path(optuna.__file__).parent / "storages" / "_rdb"


def apply(url: str) -> None:
    """Stairway's side: read the catalog, apply the whole history to the database at ``url``."""
    catalog = load_catalog(CATALOG)
    migrator.migrate(engine_for(url), catalog, len(catalog.changes))


def _settled() -> None:
    """Collect the garbage the runs before left, outside the clock, before either side runs.

    Both sides run in this one process and each leaves cyclic garbage behind (the revision
    modules it loaded, the mapped classes they declare): left alone, a full collection of it
    lands on whichever run comes next, a tenth of a run or more, on either side at random. A
    run's own collections still count."""
    gc.collect()


def _stairway_once() -> float:
    with temp_database("adopt_stairway") as db:
        _settled()
        seconds = timed(lambda: apply(db.url))[1]
        dispose_all()
        return seconds


def _alembic_once() -> float:
    with temp_database("adopt_alembic") as db:
        config = Config(str(OPTUNA_RDB / "alembic.ini"))
        config.set_main_option("script_location", str(OPTUNA_RDB / "alembic"))
        config.set_main_option("sqlalchemy.url", db.url)
        _settled()
        return timed(lambda: command.upgrade(config, "head"))[1]


def run(sizes: Sizes) -> Result:
    _stairway_once(), _alembic_once()  # warm both: imports and the server's caches
    # Runs last a fifth of a second and the server's fsyncs move them by a tenth: eleven rounds
    # (seven in --quick) for a median that a single slow round does not decide.
    runs = alternate(_stairway_once, _alembic_once, max(MIN_REPEATS, 2 * sizes.apply_repeats + 1))
    return Result(
        name=NAME,
        subject=f"Stairway: load the catalog + apply Optuna {optuna.__version__}'s history",
        baseline="Optuna's own alembic upgrade head (its env.py)",
        runs=runs,
        goal=GOAL,
        timings={"stairway_s": list(runs.subject), "alembic_s": list(runs.baseline)},
        details={"revisions": len(load_catalog(CATALOG).changes), "repeats": len(runs.subject)},
    )
