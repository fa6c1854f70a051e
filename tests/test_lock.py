"""One migrator at a time, across real processes; the lock dies with its holder.

``stairway migrate`` holds the site lock (tests/test_site_lock.py), which refuses a second command
at once. The migrator's own lock guards the changes table below it, for every caller of the
library: these processes run the migrator directly, as such a caller does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from stairway.catalog import load_catalog
from stairway.database import engine_for
from stairway.errors import LockTimeout
from stairway.schema import migrator, recorder
from stairway.schema.lock import migration_lock

SLOW_CHANGE = '''"""Holds the migration lock long enough for a second migrator to arrive."""
import time

PHASE = "expand"


def upgrade(conn):
    time.sleep(float(__import__("os").environ.get("SLOW_SECONDS", "2")))
'''


def add_slow_change(catalog: Path) -> None:
    (catalog / "schema" / "0007_slow.py").write_text(SLOW_CHANGE, encoding="utf-8")
    with (catalog / "stairway.toml").open("a", encoding="utf-8") as manifest:
        manifest.write('\n[[release]]\nversion = "2.2.0"\nschema = 7\n')


# What `stairway migrate --to 2.2.0` does below the site lock, with its output and exit code.
MIGRATOR = """
import sys
from pathlib import Path

from stairway import context
from stairway.errors import StairwayError
from stairway.schema import migrator

ctx = context.open_context(Path(sys.argv[1]), None)
level = ctx.catalog.release("2.2.0").schema
try:
    done = migrator.migrate(ctx.engine, ctx.catalog, level, lock_timeout=float(sys.argv[2]))
except StairwayError as error:
    print(error, file=sys.stderr)
    sys.exit(int(error.exit_code))
print(f"applied {len(done)} change(s)" if done else "nothing to do")
"""


STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_migrator_outlives_its_test() -> Iterator[None]:
    """A test that fails half-way leaves its migrators running: they are killed and reaped
    here, not found by a later test as an unclosed pipe and a running child."""
    yield
    while STARTED:
        process = STARTED.pop()
        process.kill()
        process.communicate()


def start_migrator(site: Path, *extra: str, seconds: float = 2.0) -> subprocess.Popen[str]:
    env = {**os.environ, "SLOW_SECONDS": str(seconds)}
    timeout = extra[extra.index("--lock-timeout") + 1] if "--lock-timeout" in extra else "30"
    process = subprocess.Popen(
        [sys.executable, "-c", MIGRATOR, str(site), timeout],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    STARTED.append(process)
    return process


def init_site(site: Path, shop_catalog: Path, database_url: str) -> None:
    add_slow_change(shop_catalog)
    catalog = load_catalog(shop_catalog)
    engine = engine_for(database_url)
    migrator.migrate(engine, catalog, 6)
    migrator.set_site_release(engine, catalog, "2.1.0")


def test_racing_migrators_apply_each_change_once(
    site_file: Path, shop_catalog: Path, database_url: str
) -> None:
    init_site(site_file, shop_catalog, database_url)
    first = start_migrator(site_file)
    time.sleep(0.5)
    second = start_migrator(site_file)
    outputs = [p.communicate(timeout=60) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    # whichever took the lock first (its head start is no promise on a loaded machine) applied
    # the change; the other found nothing left to do
    said = sorted(out.strip() for out, _ in outputs)
    assert said == ["applied 1 change(s)", "nothing to do"], outputs
    state = migrator.read_state(engine_for(database_url), load_catalog(shop_catalog))
    assert [a.number for a in state.applied] == [1, 2, 3, 4, 5, 6, 7]


def test_loser_reports_the_lock_after_its_timeout(
    site_file: Path, shop_catalog: Path, database_url: str
) -> None:
    init_site(site_file, shop_catalog, database_url)
    first = start_migrator(site_file, seconds=8)  # long enough for a loaded machine
    wait_for_lock(engine_for(database_url))  # a loaded machine starts the first one late
    second = start_migrator(site_file, "--lock-timeout", "0.5")
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2
    assert "is migrating this database; gave up after 0.5 s" in err
    first.communicate(timeout=60)
    assert first.returncode == 0


def test_a_killed_migrator_leaves_no_stale_lock(
    site_file: Path, shop_catalog: Path, database_url: str
) -> None:
    init_site(site_file, shop_catalog, database_url)
    victim = start_migrator(site_file, seconds=30)
    wait_for_lock(engine_for(database_url))  # inside the slow change, holding the lock
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    # A stale lock would outlast any timeout: the run would give up (exit 2) after 60 s.
    again = start_migrator(site_file, "--lock-timeout", "60", seconds=0)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "applied 1 change(s)" in out


def wait_for_lock(engine: Engine, within: float = 60.0) -> None:
    """Until another process holds the migration lock."""
    deadline = time.monotonic() + within
    while not lock_taken(engine):
        assert time.monotonic() < deadline, "the migrator never took the lock"
        time.sleep(0.05)


def lock_taken(engine: Engine) -> bool:
    try:
        with migration_lock(engine, timeout=0):
            return False
    except LockTimeout:
        return True


def test_two_first_migrations_of_an_empty_database_apply_each_change_once(
    site_file: Path, shop_catalog: Path, database_url: str
) -> None:
    """A first run creates Stairway's own tables in its one transaction, so while it runs they
    are not there to lock: the lock is the migrator's own, and the second migrator waits on it
    and then finds every change recorded."""
    add_slow_change(shop_catalog)
    engine = engine_for(database_url)
    first = start_migrator(site_file, seconds=8)  # long enough for a loaded machine
    wait_for_lock(engine)
    second = start_migrator(site_file, seconds=8)  # it starts while the first sleeps
    time.sleep(0.5)  # the first inside its slow change, in its one transaction
    with engine.connect() as conn:
        assert not recorder.exists(conn)  # nothing of the run is visible before its commit
    outputs = [p.communicate(timeout=60) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ["applied 7 change(s)", "nothing to do"]
    state = migrator.read_state(engine, load_catalog(shop_catalog))
    assert [a.number for a in state.applied] == [1, 2, 3, 4, 5, 6, 7]
