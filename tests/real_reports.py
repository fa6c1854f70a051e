"""The HTML reports of real runs on the example product (identity-sync on SQLite): ``verify``,
``rehearse``, an ``upgrade`` that fails part-way and is rolled back, then one that finishes.

One site serves all four, in that order: the failed upgrade leaves it at 1.0.0 as it was, so
the finished one starts from where the others did. The commands run as processes of their own
(forked from the prestarted ``stairway``, see prestarted.py), so they can run while the caller
starts other things; each report is ``<kind>.html`` in the directory given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from example_sites import ExampleSite
from stairway import operations
from stairway.database import dispose_all
from stairway.estimate import calibration
from stairway.estimate.rates import load_rates
from stairway.quickstart import open_demo, seed, write_site

USERS = 50  # enough for every step to have work; the reports' layout does not grow with it
CALIBRATION_ROWS = 5_000  # the built-in 100,000 take seconds; the screens test no accuracy
# The step the failed upgrade fails after, and how: the disk answers an I/O error once the
# first object migration has run, so the report has steps done, one failed and some not run.
FAULT = {"fault": "after:objects", "STAIRWAY_FAULT_ACTION": "eio"}
KINDS = ("verify", "rehearsal", "rolled-back", "upgrade")


@contextmanager
def example_site(root: Path) -> Iterator[ExampleSite]:
    """The example product at 1.0.0, seeded and calibrated; its service stopped at the end."""
    demo = write_site(root)
    ctx = open_demo(demo)
    operations.init(ctx, "1.0.0")
    seed(ctx, lambda _n: None, USERS)
    with pytest.MonkeyPatch.context() as patch:
        # The calibration every estimate needs, made here once, smaller: the commands find it.
        patch.setattr(calibration, "ROWS", CALIBRATION_ROWS)
        load_rates(ctx.engine, ctx.site.site.backup_dir)
    dispose_all()
    database = f"sqlite:///{demo.directory / 'identity-sync.db'}"
    site = ExampleSite(demo.site_file, demo.port, database)
    try:
        yield site
    finally:
        site.stop()


def write_reports(site: ExampleSite, where: Path) -> Path:
    """Each command of ``KINDS`` run for real on ``site`` with its report written to ``where``;
    raises AssertionError, with what the command said, when one ends otherwise than it should."""
    where.mkdir()
    _run(site, 0, "verify", "--to", "2.0.0", "--report", str(where / "verify.html"))
    _run(site, 0, "rehearse", "--to", "2.0.0", "--report", str(where / "rehearsal.html"))
    _run(site, 1, "upgrade", "--to", "2.0.0", "--report", str(where / "rolled-back.html"), **FAULT)
    _run(site, 0, "upgrade", "--to", "2.0.0", "--report", str(where / "upgrade.html"))
    return where


def _run(site: ExampleSite, expected: int, *args: str, **env: str) -> None:
    done = site.cli(*args, **env)
    assert done.returncode == expected, f"stairway {' '.join(args)}:\n{done.stderr}{done.stdout}"
