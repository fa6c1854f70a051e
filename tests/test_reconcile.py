"""``stairway.reconcile_jobs()``: the jobs an upgrade marked interrupted, settled when the product
starts, as the catalog's ``[job.reconcile]`` says: re-queued, failed with a reason, or handed
one by one to the product's handler; once, however many processes start at once (SQLite and
PostgreSQL), and after a real upgrade of the example product."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import text

import stairway
from conftest import CATALOGS
from example_sites import ExampleSite, ExampleSites, example_sites
from stairway.catalog.manifest import load_manifest
from stairway.database import engine_for
from stairway.errors import CatalogError, JobsError

JOBS = CATALOGS / "jobs"
TABLES = (
    "CREATE TABLE imports (id INTEGER PRIMARY KEY, state TEXT NOT NULL)",
    "CREATE TABLE reports (id INTEGER PRIMARY KEY, state TEXT NOT NULL, error TEXT)",
    "CREATE TABLE exports (export_id INTEGER PRIMARY KEY, phase TEXT NOT NULL)",
    "CREATE TABLE resumed (export_id INTEGER NOT NULL)",
)


def _product(url: str, exports: range = range(1, 4)) -> None:
    """The jobs product's tables with jobs 1 and 2 interrupted, 3 finished, in each."""
    with engine_for(url).begin() as conn:
        for statement in TABLES:
            conn.execute(text(statement))
        for table in ("imports", "reports"):
            for number, value in ((1, "interrupted"), (2, "interrupted"), (3, "finished")):
                conn.execute(text(f"INSERT INTO {table} (id, state) VALUES ({number}, '{value}')"))
        for number in exports:
            value = "finished" if number == 3 else "interrupted"
            conn.execute(text(f"INSERT INTO exports VALUES ({number}, '{value}')"))


def _rows(url: str, table: str) -> dict[int, tuple[object, ...]]:
    with engine_for(url).connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(text(f"SELECT * FROM {table}"))}


def test_requeue_fail_and_handler_each_settle_their_jobs(database_url: str) -> None:
    _product(database_url)
    done = {r.job: r for r in stairway.reconcile_jobs(database_url, JOBS)}
    assert {name: r.ids for name, r in done.items()} == {
        "imports": (1, 2),
        "reports": (1, 2),
        "exports": (1, 2),
    }
    assert _rows(database_url, "imports") == {1: ("queued",), 2: ("queued",), 3: ("finished",)}
    reason = "interrupted by an upgrade: run it again"
    assert _rows(database_url, "reports") == {
        1: ("failed", reason),
        2: ("failed", reason),
        3: ("finished", None),
    }
    assert _rows(database_url, "exports") == {1: ("resuming",), 2: ("resuming",), 3: ("finished",)}
    assert done["imports"].describe() == "2 interrupted imports re-queued (now queued)"
    again = stairway.reconcile_jobs(engine_for(database_url), JOBS)
    assert [r.ids for r in again] == [(), (), ()], "a second start finds nothing to do"
    assert sorted(_rows(database_url, "resumed")) == [1, 2], "the handler ran once per job"


def test_two_starts_at_once_settle_each_job_once(database_url: str) -> None:
    _product(database_url, exports=range(1, 13))
    start = threading.Barrier(2)
    found: list[list[stairway.Reconciled]] = []

    def product_start() -> None:
        start.wait()
        found.append(stairway.reconcile_jobs(database_url, JOBS))

    both = [threading.Thread(target=product_start) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(60)
    assert len(found) == 2
    for kind in range(3):
        first, second = (set(found[0][kind].ids), set(found[1][kind].ids))
        assert not first & second, "no job is taken by both starts"
        assert len(first | second) == (11 if kind == 2 else 2)
    with engine_for(database_url).connect() as conn:
        calls = conn.execute(text("SELECT export_id FROM resumed ORDER BY export_id")).scalars()
        assert list(calls) == [n for n in range(1, 13) if n != 3], "one handler call per job"


def test_a_failing_handler_changes_nothing(sqlite_database: str) -> None:
    _product(sqlite_database, exports=range(12, 15))
    with pytest.raises(JobsError) as raised:
        stairway.reconcile_jobs(sqlite_database, JOBS)
    assert "failed on job 13: export 13 lost its output file" in raised.value.message
    assert "stays interrupted" in raised.value.hint
    assert _rows(sqlite_database, "imports")[1] == ("interrupted",)
    assert _rows(sqlite_database, "exports")[12] == ("interrupted",)
    assert _rows(sqlite_database, "resumed") == {}


def test_a_malformed_declaration_is_refused_with_its_line(tmp_path: Path) -> None:
    manifest = (JOBS / "stairway.toml").read_text("utf-8")
    broken = tmp_path / "stairway.toml"
    broken.write_text(manifest.replace('reason_column = "error"\n', ""), "utf-8")
    with pytest.raises(CatalogError) as raised:
        load_manifest(broken)
    assert "`reason` and `reason_column` go with" in str(raised.value)
    assert raised.value.hint
    unknown = manifest.replace('handler = "resume:resume_export"', 'handler = "resume:nothing"')
    broken.write_text(unknown, "utf-8")
    (tmp_path / "resume.py").write_text((JOBS / "resume.py").read_text("utf-8"), "utf-8")
    with pytest.raises(JobsError, match="resume has no function nothing"):
        stairway.reconcile_jobs(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)


def test_a_table_the_database_lacks_is_refused_and_nothing_changes(sqlite_database: str) -> None:
    with engine_for(sqlite_database).begin() as conn:
        conn.execute(text(TABLES[0]))
        conn.execute(text("INSERT INTO imports VALUES (1, 'interrupted')"))
    with pytest.raises(JobsError) as raised:
        stairway.reconcile_jobs(sqlite_database, JOBS)
    assert "cannot reconcile the jobs in reports: no such table: reports" in raised.value.message
    assert "nothing was changed" in raised.value.hint
    assert _rows(sqlite_database, "imports") == {1: ("interrupted",)}


# The real upgrade on SQLite only: the statements it runs at start are the ones tested on both
# engines above.
@pytest.fixture(params=["sqlite"], scope="module")
def sites(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExampleSites]:
    yield from example_sites(request, tmp_path_factory)


@pytest.fixture
def site(sites: ExampleSites) -> Iterator[ExampleSite]:
    made = sites.new("upgraded")
    yield made
    made.stop()


def test_the_example_products_interrupted_runs_are_requeued_after_an_upgrade(
    site: ExampleSite,
) -> None:
    assert _sync_runs(site) == {1: "finished", 2: "running"}
    done = site.cli("upgrade", "--to", "2.0.0")
    assert done.returncode == 0, done.stderr + done.stdout
    assert (site.health() or {}).get("release") == "2.0.0"
    assert _sync_runs(site) == {1: "finished", 2: "queued"}, "re-queued by the service's start"


def _sync_runs(site: ExampleSite) -> dict[int, str]:
    if site.database.startswith("sqlite"):
        with closing(sqlite3.connect(site.database.removeprefix("sqlite:///"))) as db:
            return dict(db.execute("SELECT id, state FROM sync_runs").fetchall())
    engine = engine_for(site.database)
    with engine.connect() as conn:
        found = {r[0]: r[1] for r in conn.execute(text("SELECT id, state FROM sync_runs"))}
    engine.dispose()  # no connection of the test's left for the upgrade's stop to wait for
    return found
