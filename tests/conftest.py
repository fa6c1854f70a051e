"""Shared fixtures: real SQLite files and real PostgreSQL databases, created and dropped per test.

PostgreSQL is at 127.0.0.1:5432 with trust auth. Without it a test is skipped on a laptop, but in
CI (CI=true) a missing server fails the run: it is never a silent skip.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings

from stairway.database import dispose_all

# The machines are shared and noisy: a slow draw is not a failure of the code under test.
settings.register_profile("stairway", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("stairway")

PG_ADMIN = os.environ.get("STAIRWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CATALOGS = Path(__file__).parent / "catalogs"


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def require_postgres() -> None:
    if pg_available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is not answering at {PG_ADMIN}: CI needs it")
    pytest.skip("PostgreSQL is not running here")


def _pg_url(name: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"postgresql://{base.split('://', 1)[1]}/{name}"


class _Graveyard:
    """Test databases to drop, dropped by a thread of their own.

    ``DROP DATABASE`` waits for a checkpoint (a second or more on a busy server), which no test
    needs to wait for: the drops run beside the next tests, and the worker waits for the last
    of them when its session ends (``pytest_sessionfinish``).
    """

    def __init__(self) -> None:
        self._names: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.failed: list[str] = []

    def bury(self, name: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._drop_all, daemon=True)
            self._thread.start()
        self._names.put(name)

    def drain(self) -> None:
        if self._thread is not None:
            self._names.put(None)
            self._thread.join()
            self._thread = None

    def _drop_all(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            while (name := self._names.get()) is not None:
                try:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except psycopg.Error as err:
                    self.failed.append(f"{name}: {err}")


GRAVEYARD = _Graveyard()


def settle_server() -> None:
    """Wait for this worker's queued drops: a timing test measures the server without a
    checkpoint of another test's ``DROP DATABASE`` running beside it."""
    GRAVEYARD.drain()


def drop_later(name: str) -> None:
    """Drop the test database ``name`` once the drops queued before it are done."""
    GRAVEYARD.bury(name)


class _Nursery:
    """Empty test databases made ahead by a thread of their own: ``CREATE DATABASE`` copies
    the template and takes a few hundred milliseconds, which the test that needs one does not
    have to wait for when a spare is ready."""

    def __init__(self, spare: int = 2) -> None:
        self._ready: queue.Queue[str] = queue.Queue(maxsize=spare)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self) -> str:
        if self._thread is None:
            self._thread = threading.Thread(target=self._make_all, daemon=True)
            self._thread.start()
        return self._ready.get()

    def close(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        while not self._ready.empty():
            drop_later(self._ready.get())

    def _make_all(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            while not self._stop.is_set():
                name = f"stairway_t_{uuid.uuid4().hex[:12]}"
                conn.execute(f'CREATE DATABASE "{name}"')
                while not self._stop.is_set():
                    try:
                        self._ready.put(name, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                else:
                    drop_later(name)


NURSERY = _Nursery()


def pytest_sessionfinish(session: pytest.Session) -> None:
    NURSERY.close()
    GRAVEYARD.drain()
    if GRAVEYARD.failed:  # left on the server: say so rather than let them pile up unseen
        print("\ntest databases not dropped:", *GRAVEYARD.failed, sep="\n  ")


@contextmanager
def new_pg_database(prefix: str = "stairway_t") -> Iterator[str]:
    """A fresh PostgreSQL database named ``prefix_<random>``, dropped afterwards; its URL."""
    require_postgres()
    if prefix == "stairway_t":
        name = NURSERY.take()
    else:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    yield _pg_url(name)
    dispose_all()
    drop_later(name)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database; its URL."""
    with new_pg_database() as url:
        yield url


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'app.db'}"
    dispose_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every database test runs on SQLite and on PostgreSQL."""
    name = "sqlite_database" if request.param == "sqlite" else "pg_database"
    return str(request.getfixturevalue(name))


@pytest.fixture
def shop_catalog(tmp_path: Path) -> Path:
    """A private copy of tests/catalogs/shop that a test may edit."""
    target = tmp_path / "catalog"
    shutil.copytree(CATALOGS / "shop", target)
    return target


@pytest.fixture
def site_file(tmp_path: Path, database_url: str, shop_catalog: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "{database_url}"\ncatalog = "{shop_catalog}"\n', encoding="utf-8"
    )
    return path


REDIS_URL = os.environ.get("STAIRWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix() -> Iterator[tuple[object, str]]:
    """A real Redis and a key prefix of this test's own, removed afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is not answering at {REDIS_URL}: CI needs it")
        pytest.skip("Redis is not running here")
    prefix = f"stairway-test-{uuid.uuid4().hex[:12]}"
    yield client, prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


SMALL_CALIBRATION_ROWS = 5_000


@pytest.fixture(autouse=True)
def small_calibration(request: pytest.FixtureRequest) -> Iterator[None]:
    """The first estimate of a site calibrates the server on tables of 5,000 rows, not 100,000.

    A full calibration takes 5 to 40 s on a loaded machine, and only tests of the estimates'
    accuracy (marked ``full_calibration``) judge what it measured; every other estimate is
    checked for its steps, bases and wording, which a smaller calibration measures for real all
    the same. Commands run in this process only: a child process calibrates in full.
    """
    if request.node.get_closest_marker("full_calibration") is not None:
        yield
        return
    from stairway.estimate import calibration

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(calibration, "ROWS", SMALL_CALIBRATION_ROWS)
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heavy tests first: started last, they would run alone at the end on idle workers."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
