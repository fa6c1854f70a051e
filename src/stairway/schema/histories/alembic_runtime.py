"""Running an Alembic revision on Stairway's connection, inside Stairway's transaction and
migration lock, through Alembic's own runtime (``EnvironmentContext`` + ``MigrationContext`` +
``Operations``): ``from alembic import op`` and ``from alembic import context`` inside the
revision work as under ``alembic upgrade``. The product's ``env.py`` is not run: it opens its
own engine and transaction, and belongs to the product's process.

A revision with an autocommit block commits part-way, so it cannot run inside Stairway's
transaction: it gets the context's own transaction instead, as ``alembic upgrade`` gives it
(``run_in_parts``), and Stairway writes its records in the last part.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from stairway.errors import SchemaError
from stairway.schema.change import Change
from stairway.schema.ddl_pipeline import pipelined

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

_MODULES: dict[tuple[Path, str], ModuleType] = {}


Memo = dict[str, set[tuple[str | None, str]]]


class _Run:
    """What the revisions of one run share, as under one ``alembic upgrade``: the DDL memo, and
    the configured runtime of the connection they run on (configuring it per revision cost
    more than some revisions)."""

    def __init__(self, empty: bool) -> None:
        # An empty database has no types to read: the memo starts as alembic upgrade starts it.
        self.memo: Memo = {"pg_enum": set(), "pg_domain": set()} if empty else {}
        self._key: tuple[Connection, Path, str] | None = None
        self._runtime: tuple[EnvironmentContext, MigrationContext] | None = None

    def runtime(
        self, conn: Connection, change: Change
    ) -> tuple[EnvironmentContext, MigrationContext]:
        """The environment and migration context for ``change`` on ``conn``, configured once
        while the run stays on that connection and history."""
        key = (conn, change.path.parent, _table(change))
        if self._runtime is None or key != self._key:
            self._key, self._runtime = key, _configured(conn, change)
        return self._runtime


_RUN: ContextVar[_Run | None] = ContextVar("stairway_alembic_run", default=None)


@contextmanager
def one_run(*, empty: bool = False) -> Iterator[None]:
    """The revisions applied inside share one DDL memo, as under one ``alembic upgrade``: it is
    read from the database at the first revision (``empty``: the database has none to read),
    and SQLAlchemy adds the types they create."""
    token = _RUN.set(_Run(empty))
    try:
        yield
    finally:
        _RUN.reset(token)


def run(conn: Connection, change: Change, direction: str) -> None:
    """Call the revision's ``upgrade()`` or ``downgrade()`` on ``conn``, in its transaction, its
    DDL sent in pipeline mode on PostgreSQL (``ddl_pipeline``) unless its code catches a
    failed statement itself."""
    with _context(conn, change) as context:
        _call(conn, context, change, direction, pipeline=not change.catches)


def run_in_parts(
    conn: Connection, change: Change, direction: str, last: Callable[[], None]
) -> None:
    """Call ``direction()`` of a revision with an autocommit block as ``alembic upgrade`` calls
    it (``transaction_per_migration``): ``conn``, outside any transaction, gets the context's own
    one, which the block commits before it runs in autocommit and begins again after. ``last()``
    runs in the final transaction before it commits, so what it writes commits with the last
    part; a failure rolls back only the part it happens in."""
    # a connection already in a transaction would make the context's transaction a no-op and
    # the block's commit of it fail; ``_per_migration`` is how run_migrations begins each one
    assert not conn.in_transaction(), "a revision in parts needs a connection outside one"
    with (
        _context(conn, change, transaction_per_migration=True) as context,
        context.begin_transaction(_per_migration=True),
    ):
        _call(conn, context, change, direction)
        last()


@contextmanager
def _context(conn: Connection, change: Change, **options: Any) -> Iterator[MigrationContext]:
    shared = _RUN.get()
    if shared is None or options:
        table = _table(change)
        with environment(change.path.parent, connection=conn, version_table=table, **options) as c:
            yield c
        return
    from alembic.operations import Operations

    # ``alembic.context`` and ``alembic.op`` are module globals another runtime may have
    # replaced since: installed again for each call, removed after it, as a fresh one would be
    env, context = shared.runtime(conn, change)
    with env, Operations.context(context):
        yield context


def _table(change: Change) -> str:
    return change.origin.table if change.origin else "alembic_version"


def _configured(conn: Connection, change: Change) -> tuple[EnvironmentContext, MigrationContext]:
    from alembic.runtime.environment import EnvironmentContext

    env = EnvironmentContext(*_scripts(change.path.parent))
    env.configure(connection=conn, version_table=_table(change))
    return env, env.get_context()


def _call(
    conn: Connection,
    context: MigrationContext,
    change: Change,
    direction: str,
    pipeline: bool = False,
) -> None:
    """``direction()`` of the revision; with ``pipeline``, its DDL queued (not in parts: an
    autocommit block switches the connection to autocommit half-way)."""
    module = revision_module(change.path, change.checksum)
    memo = _memo(conn, change, direction)
    kept = {kind: set(names) for kind, names in memo.items()}
    context.impl.memo = memo
    try:
        with pipelined(conn) if pipeline else nullcontext():
            getattr(module, direction)()
    except BaseException:
        memo.clear()  # rolled back: what it created is not there
        memo.update(kept)
        raise


def _memo(conn: Connection, change: Change, direction: str) -> Memo:
    run = _RUN.get()
    if run is None:  # a revision on its own
        return _types_present(conn) if _may_create_types(change, direction) else {}
    if not run.memo:
        run.memo.update(_types_present(conn))
        run.memo.setdefault("pg_enum", set())
    return run.memo


def _may_create_types(change: Change, direction: str) -> bool:
    """Whether the call may create a named type: unknown unless its rendered SQL shows none."""
    if direction != "upgrade" or change.opaque or not change.statements:
        return True
    return any("CREATE TYPE" in s.text or "CREATE DOMAIN" in s.text for s in change.statements)


def _types_present(conn: Connection) -> dict[str, set[tuple[str | None, str]]]:
    """PostgreSQL's enum and domain types already in the database, as SQLAlchemy's DDL memo.

    ``alembic upgrade`` runs every pending revision on one ``MigrationContext``, whose memo
    remembers the enum types an earlier revision created, so a later ``sa.Enum`` column reuses
    the type instead of creating it again. Stairway runs each revision in its own transaction;
    the memo is seeded with the types the database has, which is what one long run would know
    (and a history resumed half-way, which ``alembic upgrade`` itself fails on, works too)."""
    if conn.dialect.name != "postgresql":
        return {"pg_enum": set()}
    rows = conn.exec_driver_sql(
        "SELECT t.typtype, n.nspname, t.typname, n.nspname = current_schema() "
        "FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('e', 'd')"
    )
    memo: dict[str, set[tuple[str | None, str]]] = {"pg_enum": set(), "pg_domain": set()}
    for kind, schema, name, current in rows:
        names = memo["pg_enum" if kind == "e" else "pg_domain"]
        names.add((schema, name))
        if current:
            names.add((None, name))
    return memo


def revision_module(path: Path, checksum: str) -> ModuleType:
    """The revision file's module, loaded as Alembic loads it (once per checksum)."""
    from alembic.util.pyfiles import load_python_file

    key = (path, checksum)
    if key not in _MODULES:
        try:
            _MODULES[key] = load_python_file(path.parent, path.name)
        except Exception as err:
            raise SchemaError(
                f"the revision {path.name} does not import: {type(err).__name__}: {err}",
                hint="install what the revision imports; nothing was applied",
            ) from err
    return _MODULES[key]


def remember(path: Path, checksum: str, module: ModuleType) -> None:
    """Keep the module Alembic loaded when the catalog was read, so running it does not import
    the file a second time."""
    _MODULES[(path, checksum)] = module


@contextmanager
def environment(versions: Path, **options: Any) -> Iterator[MigrationContext]:
    """Alembic's runtime around a revision call: ``alembic.context`` and ``alembic.op`` set up
    as ``alembic upgrade`` sets them, on Stairway's connection (or rendering SQL offline)."""
    from alembic.operations import Operations
    from alembic.runtime.environment import EnvironmentContext

    with EnvironmentContext(*_scripts(versions)) as env:
        env.configure(**options)
        context = env.get_context()
        with Operations.context(context):
            yield context


@functools.cache
def _scripts(versions: Path) -> tuple[Config, ScriptDirectory]:
    """The configuration and script directory an ``EnvironmentContext`` is made of, once per
    history: ``alembic.context.script`` and ``context.config`` answer as under ``alembic``."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(versions))
    return config, ScriptDirectory(str(versions), version_locations=[str(versions)])
