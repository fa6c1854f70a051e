"""An Alembic revision's DDL goes to PostgreSQL in pipeline mode (the server builds one table
while Python renders the next): what a revision sees and what a failure leaves must be what
they are without it. A statement that is not DDL sees every DDL before it; a failed DDL fails
its revision, names it, and leaves nothing of the run; a lock refused inside the pipeline is
retried as any other.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, inspect, text
from sqlalchemy.schema import CreateTable

import prestarted
from cli_runner import stairway
from conftest import CATALOGS, PG_ADMIN
from optuna_sites import heads, sa_url, site
from stairway.catalog import load_catalog
from stairway.database import dispose_all
from stairway.errors import ChangeFailed
from stairway.schema import migrator
from stairway.schema.ddl_pipeline import pipelined
from stairway.schema.histories.alembic_catches import catches_failures
from stairway.schema.source import ChangeSource
from test_alembic_history import history, releases, revision_file
from test_full_disk import _require_mount, small_disk


def in_pipeline(conn: object) -> bool:
    pg = conn.connection.dbapi_connection  # type: ignore[attr-defined]
    return bool(pg.pgconn.pipeline_status)


def table(name: str) -> CreateTable:
    return CreateTable(Table(name, MetaData(), Column("id", Integer, primary_key=True)))


def test_ddl_is_queued_and_anything_else_waits_for_it(pg_database: str) -> None:
    engine = create_engine(sa_url(pg_database))
    with engine.begin() as conn, pipelined(conn):
        conn.execute(table("a"))
        conn.execute(table("b"))
        assert in_pipeline(conn), "DDL is sent without waiting for its reply"
        names = conn.execute(text("SELECT relname FROM pg_class WHERE relname IN ('a', 'b')"))
        assert sorted(r[0] for r in names) == ["a", "b"], "a query sees the DDL before it"
        assert not in_pipeline(conn)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"a", "b"}
    engine.dispose()


def test_outside_a_transaction_and_on_sqlite_nothing_is_queued(
    pg_database: str, sqlite_database: str
) -> None:
    engine = create_engine(sa_url(pg_database))
    autocommit = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with autocommit as conn, pipelined(conn):
        conn.execute(table("a"))  # each statement its own transaction, as it was
        assert not in_pipeline(conn)
    engine.dispose()
    lite = create_engine(sqlite_database)
    with lite.begin() as conn, pipelined(conn):
        conn.execute(table("a"))
    assert inspect(lite).get_table_names() == ["a"]
    lite.dispose()


def test_a_failed_ddl_is_raised_at_the_next_statement_and_on_leaving(pg_database: str) -> None:
    engine = create_engine(sa_url(pg_database))
    with pytest.raises(Exception) as raised, engine.begin() as conn, pipelined(conn):
        conn.execute(table("a"))
        conn.execute(table("a"))  # already exists: the server says so at the next wait
        conn.execute(table("b"))
        conn.execute(text("SELECT 1"))
        pytest.fail("the query ran after a failed DDL")
    assert isinstance(getattr(raised.value, "orig", None), psycopg.errors.DuplicateTable)
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == [], "the transaction was rolled back"
    engine.dispose()


BOOKKEEPING = {"alembic_version", "stairway_changes", "stairway_meta", "stairway_patches"}
CREATE = 'op.create_table("{0}", sa.Column("id", sa.Integer, primary_key=True))'


def test_a_revision_reads_back_what_its_ddl_created(tmp_path: Path, pg_database: str) -> None:
    """DDL, rows written by ``bulk_insert``, a query counting them, more DDL depending on the
    count: as under ``alembic upgrade``."""
    up = "\n    ".join(
        [
            CREATE.format("a"),
            CREATE.format("b"),
            'op.bulk_insert(sa.table("a", sa.column("id")), [{"id": 1}, {"id": 2}])',
            'n = op.get_bind().execute(sa.text("SELECT count(*) FROM a")).scalar()',
            'op.add_column("b", sa.Column(f"seen_{n}", sa.Integer))',
        ]
    )
    root = history(tmp_path, {"r1": revision_file("r1", None, up)}, releases("r1"))
    code, out, err = stairway(
        "init", "--site", str(site(tmp_path, pg_database, root)), "--version", "1.0.0"
    )
    assert code == 0, out + err
    engine = create_engine(sa_url(pg_database))
    assert [c["name"] for c in inspect(engine).get_columns("b")] == ["id", "seen_2"]
    engine.dispose()


def test_a_revision_whose_ddl_fails_is_named_and_the_run_leaves_nothing(
    tmp_path: Path, pg_database: str
) -> None:
    failing = "\n    ".join(
        [CREATE.format("c"), CREATE.format("a"), CREATE.format("d")]  # a exists: r1 made it
    )
    files = {
        "r1": revision_file("r1", None, CREATE.format("a")),
        "r2": revision_file("r2", "r1", failing),
    }
    root = history(tmp_path, files, releases("r1", "r2"))
    code, out, err = stairway(
        "init", "--site", str(site(tmp_path, pg_database, root)), "--version", "2.0.0"
    )
    assert code == 1, out + err  # a change that failed, as without the pipeline
    said = " ".join((out + err).split())
    assert "0002_r2 failed in upgrade()" in said and 'relation "a" already exists' in said, said
    assert "Traceback" not in out + err
    engine = create_engine(sa_url(pg_database))
    assert inspect(engine).get_table_names() == [], "one transaction: nothing of the run stays"
    engine.dispose()


def test_a_later_revision_that_fails_leaves_the_ones_before_it(
    tmp_path: Path, pg_database: str
) -> None:
    """A database that records changes gets one transaction per revision: the failed one is
    rolled back whole, its queued DDL with it."""
    files = {
        "r1": revision_file("r1", None, CREATE.format("a")),
        "r2": revision_file("r2", "r1", "\n    ".join([CREATE.format("b"), CREATE.format("a")])),
    }
    root = history(tmp_path, files, releases("r1", "r2"))
    catalog = load_catalog(root)
    engine = create_engine(sa_url(pg_database))
    migrator.migrate(engine, catalog, 1)
    with pytest.raises(ChangeFailed) as raised:
        migrator.migrate(engine, catalog, 2)
    assert raised.value.change == 2 and "already exists" in raised.value.message
    assert set(inspect(engine).get_table_names()) == {"a", *BOOKKEEPING}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "r1"
    engine.dispose()
    dispose_all()


def test_an_expand_revision_refused_its_lock_inside_the_pipeline_retries(
    tmp_path: Path, pg_database: str
) -> None:
    """The lock timeout surfaces when the queue is waited for, not at the statement: it must
    still be told from other failures, so the revision is retried until the lock is free."""
    add = 'op.add_column("a", sa.Column("x", sa.Integer))\n    ' + CREATE.format("z")
    files = {
        "r1": revision_file("r1", None, CREATE.format("a")),
        "r2": revision_file("r2", "r1", add, head="# stairway: phase expand"),
    }
    root = history(tmp_path, files, releases("r1", "r2"))
    catalog = load_catalog(root)
    engine = create_engine(sa_url(pg_database))
    migrator.migrate(engine, catalog, 1)
    holder = create_engine(sa_url(pg_database))
    with holder.connect() as long_one:
        long_one.execute(text("SELECT count(*) FROM a")).all()  # ACCESS SHARE until rollback
        threading.Timer(1.5, long_one.rollback).start()
        (applied,) = migrator.migrate(engine, catalog, 2)
    assert applied.change.number == 2
    assert "x" in {c["name"] for c in inspect(engine).get_columns("a")}
    holder.dispose()
    engine.dispose()
    dispose_all()


SAVEPOINT_ROLLED_BACK = """bind = op.get_bind()
    savepoint = bind.begin_nested()
    try:
        {create_a}
    except sa.exc.ProgrammingError:
        savepoint.rollback()  # "a" is there already: go on without it
    else:
        savepoint.commit()
    {create_b}"""


def test_a_revision_that_catches_its_own_failed_ddl_gets_it_where_it_expects(
    tmp_path: Path, pg_database: str
) -> None:
    """Queued, the failure would arrive at the savepoint's release, outside the ``try``: such a
    revision's statements are sent one at a time, and it runs as under ``alembic upgrade``."""
    up = SAVEPOINT_ROLLED_BACK.format(create_a=CREATE.format("a"), create_b=CREATE.format("b"))
    files = {
        "r1": revision_file("r1", None, CREATE.format("a")),
        "r2": revision_file("r2", "r1", up),
    }
    root = history(tmp_path, files, releases("r1", "r2"))
    catalog = load_catalog(root)
    assert [c.catches for c in catalog.changes] == [False, True]
    engine = create_engine(sa_url(pg_database))
    migrator.migrate(engine, catalog, 2)
    assert {"a", "b"} <= set(inspect(engine).get_table_names())
    engine.dispose()
    dispose_all()


@pytest.mark.parametrize(
    ("code", "catches"),
    [
        ("def upgrade():\n    try:\n        op.f()\n    except E:\n        pass\n", True),
        ("def upgrade():\n    try:\n        op.f()\n    except E: pass\n", True),
        ("def upgrade():\n    try:\n        op.f()\n    except E:\n        log(e)\n\n", True),
        ("def upgrade():\n    with contextlib.suppress(E):\n        op.f()\n", True),
        ("def upgrade():\n    with op.get_bind().begin_nested():\n        op.f()\n", True),
        ("def upgrade():\n    try:\n        op.f()\n    except E:  # no\n        raise\n", False),
        (
            "def upgrade():\n    try:\n        s.commit()\n    except E as e:\n"
            "        s.rollback()\n\n        raise e\n    finally:\n        s.close()\n",
            False,
        ),
        ("def upgrade():\n    try:\n        op.f()\n    except E: raise X from None\n", False),
        ("try:\n    import x\nexcept ImportError:\n    x = None\n", False),
        ("def upgrade():\n    op.f(suppress_warning=True)\n", False),
    ],
)
def test_what_counts_as_catching_a_failed_statement(code: str, catches: bool) -> None:
    assert catches_failures(code) is catches


@pytest.mark.parametrize("first", ["init", "migrate"])
def test_killed_with_ddl_queued_the_run_leaves_nothing_and_the_next_one_completes(
    tmp_path: Path, pg_database: str, first: str
) -> None:
    """SIGKILL right after two DDL statements were sent and not waited for: the server rolls
    their transaction back (all of ``init``'s revisions, or the one revision ``migrate`` ran),
    and the next run applies them."""
    die = 'os.environ.get("DIE_QUEUED") and os.kill(os.getpid(), signal.SIGKILL)'
    up = "\n    ".join([CREATE.format("b"), CREATE.format("c"), die])
    files = {
        "r1": revision_file("r1", None, CREATE.format("a")),
        "r2": revision_file("r2", "r1", up, head="import os, signal"),
    }
    root = history(tmp_path, files, releases("r1", "r2"))
    site_file = str(site(tmp_path, pg_database, root))
    if first == "migrate":
        assert stairway("init", "--site", site_file, "--version", "1.0.0")[0] == 0
        dispose_all()
        args, before = ["migrate", "--to", "2.0.0", "--site", site_file], {"a"}
    else:
        args, before = ["init", "--site", site_file, "--version", "2.0.0"], set()

    killed = prestarted.run(args, {**os.environ, "DIE_QUEUED": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    engine = create_engine(sa_url(pg_database))
    product = set(inspect(engine).get_table_names()) - BOOKKEEPING
    assert product == before, "the queued DDL did not outlive its process"
    assert heads(pg_database) == ({"r1"} if before else set())

    again = prestarted.run(args, dict(os.environ))
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(inspect(engine).get_table_names()) - BOOKKEEPING == {"a", "b", "c"}
    assert heads(pg_database) == {"r2"}
    engine.dispose()


def test_a_downgrade_goes_through_the_pipeline_and_a_failed_one_stays_applied(
    tmp_path: Path, pg_database: str
) -> None:
    up = f"{CREATE.format('b')}\n    {CREATE.format('c')}"
    files = {
        "r1": revision_file("r1", None, CREATE.format("a")),
        "r2": revision_file("r2", "r1", up, 'op.drop_table("c")\n    op.drop_table("b")'),
    }
    root = history(tmp_path, files, releases("r1", "r2"))
    engine = create_engine(sa_url(pg_database))
    migrator.migrate(engine, load_catalog(root), 2)

    def r2_goes_down_by(body: str) -> ChangeSource:
        (root / "alembic" / "versions" / "r2.py").write_text(revision_file("r2", "r1", up, body))
        catalog = load_catalog(root)
        migrator.repair(engine, catalog)  # the operator's edit, accepted as the applied text
        return catalog

    broken = r2_goes_down_by('op.drop_table("c")\n    op.drop_table("no")\n    op.drop_table("b")')
    with pytest.raises(ChangeFailed, match='table "no" does not exist'):
        migrator.downgrade(engine, broken, 1, allow_data_loss=True)
    assert set(inspect(engine).get_table_names()) - BOOKKEEPING == {"a", "b", "c"}
    assert heads(pg_database) == {"r2"}

    fixed = r2_goes_down_by('op.drop_table("c")\n    op.drop_table("b")')
    migrator.downgrade(engine, fixed, 1, allow_data_loss=True)
    assert set(inspect(engine).get_table_names()) - BOOKKEEPING == {"a"}
    assert heads(pg_database) == {"r1"}
    engine.dispose()
    dispose_all()


def test_two_migrations_at_once_on_an_empty_database_apply_the_history_once(
    pg_database: str,
) -> None:
    """Optuna's whole history, pipelined in one transaction, raced by a second migrator: the
    lock makes one apply all ten revisions and the other find nothing left."""
    catalog = load_catalog(CATALOGS / "optuna")

    def migrate() -> int:
        engine = create_engine(sa_url(pg_database))
        try:
            return len(migrator.migrate(engine, catalog, 10, lock_timeout=60))
        finally:
            engine.dispose()

    with ThreadPoolExecutor(2) as pool:
        ran = sorted(pool.map(lambda _: migrate(), range(2)))
    assert ran == [0, 10]
    assert heads(pg_database) == {"v3.2.0.a"}
    dispose_all()


@pytest.fixture
def tiny_tablespace(pg_database: str) -> Iterator[str]:
    """A tablespace on a 1 MB tmpfs the PostgreSQL server writes to; its name. The test's
    database is dropped with it: a tablespace goes only once no database keeps files there."""
    _require_mount()
    name = f"stairway_tiny_{uuid.uuid4().hex[:8]}"
    where = Path(tempfile.gettempdir()) / name
    with small_disk(where, 1024 * 1024):
        shutil.chown(where, "postgres", "postgres")
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE {name} LOCATION '{where}'")
        try:
            yield name
        finally:
            dispose_all()
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                database = pg_database.rsplit("/", 1)[1]
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                conn.execute(f"DROP TABLESPACE IF EXISTS {name}")
    where.rmdir()


def test_a_ddl_that_fills_the_disk_inside_the_pipeline_fails_its_revision_whole(
    tmp_path: Path, pg_database: str, tiny_tablespace: str
) -> None:
    """An index built on a full disk, queued between two tables: the revision fails with the
    server's "could not extend file", nothing of it stays (neither table, nor the index's
    files), and the revision before it stays."""
    rows = "SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 50000) g"
    text_column = 'sa.Column("v", sa.Text)'
    first = f'{CREATE.format("a")[:-1]}, {text_column})\n    op.execute("INSERT INTO a {rows}")'
    index = f'op.create_index("ix_a_v", "a", ["v"], postgresql_tablespace="{tiny_tablespace}")'
    second = "\n    ".join([CREATE.format("b"), index, CREATE.format("c")])
    files = {"r1": revision_file("r1", None, first), "r2": revision_file("r2", "r1", second)}
    catalog = load_catalog(history(tmp_path, files, releases("r1", "r2")))
    engine = create_engine(sa_url(pg_database))
    migrator.migrate(engine, catalog, 1)
    with pytest.raises(ChangeFailed) as raised:
        migrator.migrate(engine, catalog, 2)
    assert raised.value.change == 2 and "could not extend file" in raised.value.message
    assert set(inspect(engine).get_table_names()) - BOOKKEEPING == {"a"}
    assert heads(pg_database) == {"r1"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM a")).scalar() == 50_000
        used = conn.execute(text(f"SELECT pg_tablespace_size('{tiny_tablespace}')")).scalar()
    assert used is not None and used < 64 * 1024, "the failed index's files were removed"
    engine.dispose()
