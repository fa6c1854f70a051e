"""Render every PostgreSQL revision of three real Alembic histories to SQL, one per revision.

Run by the corpus venv's Python (which has prefect, dagster, mlflow and Alembic), never imported
by the benchmark: ``python render_revisions.py OUTPUT.json PROJECT=POSTGRES_URL ...``. It imports
nothing of Stairway's so that it runs with the projects' own pins.

A revision is rendered offline (Alembic's ``as_sql`` mode) when it can be. One that inspects the
database first (``op.get_bind()``) cannot; for those the whole history is applied online to a
scratch database and the statements that revision executes are captured, minus catalog reads.
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

# Reads SQLAlchemy and the inspector issue while a revision looks around: not the revision's work.
_CATALOG_READ = re.compile(
    r"^\s*(select|with|show)\b.*(pg_catalog|information_schema|\bpg_[a-z_]+\b|current_schema|"
    r"version\(\)|standard_conforming_strings|transaction isolation)",
    re.IGNORECASE | re.DOTALL,
)


# A revision that stamps rows with the current time (mlflow's dc11669786a5 does) would render a
# different text, and so stale its label, on every run: the online run reads this clock instead.
_FROZEN_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class Rendered:
    """One revision's upgrade as PostgreSQL SQL, and how that text was obtained."""

    project: str
    revision: str
    file: str
    method: str  # "offline", "online" or "failed"
    sql: str
    error: str = ""


def _prefect() -> ScriptDirectory:
    # Only the corpus venv has the projects; the benchmark's own environment never imports them.
    import prefect.server.database as database  # type: ignore[import-not-found]

    root = Path(database.__file__).parent / "_migrations"
    return ScriptDirectory(str(root), version_locations=[str(root / "versions" / "postgresql")])


def _dagster() -> ScriptDirectory:
    import dagster._core.storage as storage  # type: ignore[import-not-found]

    return ScriptDirectory(str(Path(storage.__file__).parent / "alembic"))


def _mlflow() -> ScriptDirectory:
    import mlflow.store.db_migrations as migrations  # type: ignore[import-not-found]

    return ScriptDirectory(str(Path(migrations.__file__).parent))


def _mlflow_initial_metadata() -> sa.MetaData:
    from mlflow.store.tracking.dbmodels.initial_models import (  # type: ignore[import-not-found]
        Base,
    )

    metadata: sa.MetaData = Base.metadata
    return metadata


def _mlflow_initial_tables(engine: sa.Engine) -> None:
    # mlflow's first revision alters tables it never creates: mlflow builds them from its
    # initial models before upgrading from base, and so does this run.
    _mlflow_initial_metadata().create_all(engine)


def _initial_schema(project: str) -> list[Rendered]:
    """The schema a project's history starts from when its runner builds one before the first
    revision, as PostgreSQL DDL: not a migration (never labelled or scored), but what the
    migrations after it alter, so a check that follows earlier changes knows those tables."""
    if project != "mlflow":
        return []
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    tables = _mlflow_initial_metadata().sorted_tables
    ddl = "".join(f"{str(CreateTable(t).compile(dialect=dialect)).strip()};\n\n" for t in tables)
    return [Rendered(project, INITIAL, "", "initial", ddl)]


PROJECTS: dict[str, Callable[[], ScriptDirectory]] = {
    "prefect": _prefect,
    "dagster": _dagster,
    "mlflow": _mlflow,
}
# What a project's own runner does to an empty database before its first revision.
PREPARE: dict[str, Callable[[sa.Engine], None]] = {"mlflow": _mlflow_initial_tables}


INITIAL = "(initial schema)"  # the revision id of a project's initial schema


def in_order(scripts: ScriptDirectory) -> list[Script]:
    """The history's revisions from base to head (Alembic walks them head first)."""
    return list(reversed(list(scripts.walk_revisions("base", "heads"))))


def render_offline(script: Script) -> str:
    """The revision's upgrade as Alembic's offline mode writes it; raises if it needs a database."""
    buffer = io.StringIO()
    context = MigrationContext.configure(
        dialect_name="postgresql",
        opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True},
    )
    with Operations.context(context):
        script.module.upgrade()
    return buffer.getvalue()


def _literal(cursor: Any, statement: str, row: Any) -> str:
    if not row:  # sent as written: the driver interpolates nothing
        return statement.strip()
    # The driver's own quoting turns bound parameters into the literal text that ran.
    values = dict(row) if hasattr(row, "keys") else row
    return str(cursor.mogrify(statement, values).decode()).strip()


@contextmanager
def _captured(connection: sa.Connection) -> Iterator[list[str]]:
    """The statements run on ``connection``, with its transaction boundaries marked.

    Offline, Alembic writes ``COMMIT;`` where an ``autocommit_block()`` starts and ``BEGIN;``
    where it ends; online the block only switches the driver to autocommit. The driver's switch
    is read at each statement and written as the same two lines, so a text captured online says
    which statements ran outside a transaction, as an offline one does. A run starts inside the
    runner's transaction; one that ends in autocommit gets its ``BEGIN;`` as the block would.
    """
    statements: list[str] = []
    outside = [False]  # whether the last statement ran outside a transaction

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if _CATALOG_READ.match(statement):
            return
        _mark_boundary(statements, outside, bool(cursor.connection.autocommit))
        rows = parameters if isinstance(parameters, list) else [parameters]
        for row in rows:
            statements.append(_literal(cursor, statement, row))

    sa.event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(connection, "before_cursor_execute", record)
        _mark_boundary(statements, outside, False)


def _mark_boundary(statements: list[str], outside: list[bool], autocommit: bool) -> None:
    if autocommit != outside[0]:
        statements.append("COMMIT" if autocommit else "BEGIN")
        outside[0] = autocommit


def render_online(
    scripts: list[Script], url: str, prepare: Callable[[sa.Engine], None] | None = None
) -> dict[str, str | Exception]:
    """Apply every revision in order, each in its own transaction; what each one executed.

    A revision that fails is rolled back and recorded as its error; the run goes on, so one bad
    revision costs only itself (and whatever later ones needed from it).
    """
    texts: dict[str, str | Exception] = {}
    engine = sa.create_engine(url)
    try:
        if prepare is not None:
            prepare(engine)
        with engine.connect() as connection:
            for script in scripts:
                texts[script.revision] = _apply(connection, script, autocommit=False)
                if _needs_autocommit(texts[script.revision]):
                    texts[script.revision] = _apply(connection, script, autocommit=True)
    finally:
        engine.dispose()
    return texts


def _needs_autocommit(outcome: str | Exception) -> bool:
    # A revision building an index CONCURRENTLY expects its runner to leave it outside a
    # transaction (the project's own runner does); retried so, it runs as it would in production.
    return isinstance(outcome, Exception) and "cannot run inside a transaction" in str(outcome)


@contextmanager
def _frozen_clock() -> Iterator[None]:
    real = time.time
    time.time = lambda: _FROZEN_EPOCH
    try:
        yield
    finally:
        time.time = real


def _apply(connection: sa.Connection, script: Script, autocommit: bool) -> str | Exception:
    if autocommit:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
    context = MigrationContext.configure(connection=connection)
    try:
        with _captured(connection) as statements, Operations.context(context), _frozen_clock():
            if autocommit:
                script.module.upgrade()
            else:
                with context.begin_transaction():
                    script.module.upgrade()
    except Exception as err:  # recorded against this revision
        return err
    return "".join(f"{statement.rstrip(';')};\n\n" for statement in statements)


def render_project(project: str, url: str) -> list[Rendered]:
    """Every revision of ``project``: offline when possible, else from one online run."""
    scripts = in_order(PROJECTS[project]())
    offline: dict[str, str] = {}
    for script in scripts:
        try:
            offline[script.revision] = render_offline(script)
        except Exception:  # any failure means it needs a database
            continue
    needs_database = len(offline) < len(scripts)
    online = render_online(scripts, url, PREPARE.get(project)) if needs_database else {}
    rendered = [_result(project, script, offline, online) for script in scripts]
    return _initial_schema(project) + rendered


def _result(
    project: str, script: Script, offline: dict[str, str], online: dict[str, str | Exception]
) -> Rendered:
    file = Path(script.path).name
    if script.revision in offline:
        return Rendered(project, script.revision, file, "offline", offline[script.revision])
    text = online.get(script.revision, RuntimeError("the online run did not reach it"))
    if isinstance(text, Exception):
        error = f"{type(text).__name__}: {text}"[:500]
        return Rendered(project, script.revision, file, "failed", "", error)
    return Rendered(project, script.revision, file, "online", text)


def main(argv: list[str]) -> int:
    """Write every project's rendered revisions to ``argv[0]`` as JSON; ``argv[1]`` per project."""
    output, urls = Path(argv[0]), dict(pair.split("=", 1) for pair in argv[1:])
    rendered = [
        asdict(item) for project in PROJECTS for item in render_project(project, urls[project])
    ]
    output.write_text(json.dumps(rendered, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
