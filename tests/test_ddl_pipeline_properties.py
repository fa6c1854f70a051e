"""Property: sending a revision's DDL in pipeline mode changes nothing a history can see.

Random histories of revisions that create and drop tables, add columns and indexes, create enum
types, write rows, and decide what to create from what a query or the inspector reads back,
most applying whole and some failing part-way (a table that exists, a column that does not, a
duplicate row), are applied twice: once as Stairway applies them, once with every statement
waited for. The first migration runs the first revisions in one transaction, the second the
rest one by one. Both must end alike: the same revision failed with the same message, the
same schema, the same rows.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, inspect, text

from conftest import new_pg_database
from optuna_sites import sa_url, schema_dump
from stairway.catalog import load_catalog
from stairway.database import dispose_all
from stairway.errors import ChangeFailed
from stairway.schema import migrator
from stairway.schema.histories import alembic_runtime
from test_alembic_history import history, releases, revision_file

TABLES = ("a", "b", "c")
COLUMNS = ("id", "x", "y")
TABLE = 'sa.Column("id", sa.Integer, primary_key=True)'
STEPS = {
    "create": 'op.create_table("{t}", ' + TABLE + ")",
    "enum": 'op.create_table("{t}", ' + TABLE + ', sa.Column("k", sa.Enum("p", "q", name="kind")))',
    "add": 'op.add_column("{t}", sa.Column("{c}", sa.Integer))',
    "index": 'op.create_index("ix_{t}_{c}", "{t}", ["{c}"])',
    "drop": 'op.drop_table("{t}")',
    "insert": 'op.bulk_insert(sa.table("{t}", sa.column("id")), [{{"id": 1}}, {{"id": 2}}])',
    "count": 'n = op.get_bind().execute(sa.text("SELECT count(*) FROM {t}")).scalar()\n'
    '    op.add_column("{t}", sa.Column(f"n{{n}}", sa.Integer))',
    "inspect": "n = len(sa.inspect(op.get_bind()).get_table_names())\n"
    '    op.create_table(f"t{{n}}_{c}", ' + TABLE + ")",
}
any_step = st.tuples(
    st.sampled_from(sorted(STEPS)), st.sampled_from(TABLES), st.sampled_from(COLUMNS)
)


class Model:
    """What the steps so far leave, so that most drawn steps are ones that succeed."""

    def __init__(self) -> None:
        self.columns: dict[str, set[str]] = {}
        self.indexed: set[tuple[str, str]] = set()
        self.rows: dict[str, int] = {}
        self.steps = 0

    def choices(self) -> list[tuple[str, str, str]]:
        new = [t for t in TABLES if t not in self.columns]
        ok = [(kind, t, "id") for t in new for kind in ("create", "enum")]
        for t, columns in self.columns.items():
            ok += [("add", t, c) for c in COLUMNS if c not in columns]
            ok += [("index", t, c) for c in columns if (t, c) not in self.indexed]
            ok += [("drop", t, "id")] + ([("insert", t, "id")] if not self.rows[t] else [])
            ok += [("count", t, "id")] if f"n{self.rows[t]}" not in columns else []
        return [*ok, ("inspect", "a", f"s{self.steps}")]

    def take(self, kind: str, t: str, c: str) -> str:
        self.steps += 1
        if kind in ("create", "enum"):
            self.columns[t], self.rows[t] = {"id"}, 0
        elif kind == "add":
            self.columns[t].add(c)
        elif kind == "index":
            self.indexed.add((t, c))
        elif kind == "drop":
            del self.columns[t]
            self.indexed = {(u, c) for u, c in self.indexed if u != t}
        elif kind == "insert":
            self.rows[t] = 2
        elif kind == "count":
            self.columns[t].add(f"n{self.rows[t]}")
        return STEPS[kind].format(t=t, c=c)


@st.composite
def revisions(draw: st.DrawFn) -> list[list[str]]:
    """One to five revisions of one to five steps; one step in eight is drawn from all of them
    and most such fail (a table that exists, a column that does not), the others succeed."""
    model = Model()
    bodies = []
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        body = []
        for _ in range(draw(st.integers(min_value=1, max_value=5))):
            wild = draw(st.integers(min_value=0, max_value=7)) == 0
            kind, t, c = draw(any_step if wild else st.sampled_from(model.choices()))
            body.append(model.take(kind, t, c) if not wild else STEPS[kind].format(t=t, c=c))
        bodies.append(body)
    return bodies


@pytest.fixture(scope="module")
def two_databases() -> Iterator[tuple[str, str]]:
    with new_pg_database() as pipelined, new_pg_database() as waited:
        yield pipelined, waited


def emptied(url: str) -> str:
    dispose_all()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("DROP TYPE IF EXISTS kind")
        conn.execute("CREATE SCHEMA public")
    return url


def applied(url: str, root: Path, first: int) -> tuple[list[str], list[str], dict[str, int]]:
    """What each of the two migrations said, the schema, and the rows of each table."""
    catalog = load_catalog(root)
    engine = create_engine(sa_url(url))
    said = []
    for target in (first, len(catalog.changes)):
        try:
            migrator.migrate(engine, catalog, target)
            said.append(f"ok at {target}")
        except ChangeFailed as failed:
            said.append(f"{failed.change}: {failed.message}")
            break
    with engine.connect() as conn:
        tables = [t for t in inspect(conn).get_table_names() if not t.startswith("stairway_")]
        rows = {
            t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in tables
        }
        rows["alembic_version"] = -1 if "alembic_version" not in tables else rows["alembic_version"]
    engine.dispose()
    dispose_all()
    return said, schema_dump(url), rows


@contextlib.contextmanager
def every_statement_waited_for(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patched:
        patched.setattr(alembic_runtime, "pipelined", lambda _conn: contextlib.nullcontext())
        yield


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bodies=revisions(), first=st.integers(min_value=1, max_value=5))
def test_a_history_ends_alike_with_and_without_the_pipeline(
    two_databases: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    bodies: list[list[str]],
    first: int,
) -> None:
    names = [f"r{n}" for n in range(1, len(bodies) + 1)]
    files = {
        name: revision_file(name, names[i - 1] if i else None, "\n    ".join(body))
        for i, (name, body) in enumerate(zip(names, bodies, strict=True))
    }
    first = min(first, len(names))
    with tempfile.TemporaryDirectory() as scratch:
        root = history(Path(scratch), files, releases(*names))
        pipelined = applied(emptied(two_databases[0]), root, first)
        with every_statement_waited_for(monkeypatch):
            waited = applied(emptied(two_databases[1]), root, first)
    event("a revision failed" if "ok" not in pipelined[0][-1] else "all applied")
    assert pipelined == waited
