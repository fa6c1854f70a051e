"""The kill matrix for an adopted history: a database Optuna's own tool brought to 1.3.0,
upgraded by ``stairway upgrade`` to 3.2.0 (the take-over, then one transaction per revision),
killed with SIGKILL right after the plan, the take-over and each revision's commit, then
recovered by ``upgrade --resume`` and by ``rollback``. On SQLite and PostgreSQL.

After each recovery the database must be wholly old or wholly new as the product sees it: its
schema, the revision its own tool reads from ``alembic_version``, and its rows.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

import prestarted
from conftest import PG_ADMIN, _pg_url, drop_later, require_postgres
from optuna_sites import HEAD, heads, optuna_catalog, optuna_tool, sa_url, schema_dump, site
from stairway.database import dispose_all
from stairway.faults import TRACE

OLD = "v1.3.0.a"
WORKERS = 3
pytestmark = pytest.mark.heavy


@dataclass(frozen=True)
class Ends:
    """What the product sees at 1.3.0 and at 3.2.0."""

    old: tuple[list[str], set[str]]
    new: tuple[list[str], set[str]]


class Databases:
    """Copies of one database Optuna's tool migrated to 1.3.0 and gave a study."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind, self.root = kind, root
        self.made: list[str] = []
        self.template = self.empty("template")
        command.upgrade(optuna_tool(self.template), OLD)
        engine = create_engine(sa_url(self.template))
        with engine.begin() as conn:  # a study as Optuna 1.3 kept it: the rows must survive
            conn.execute(
                text("INSERT INTO studies (study_name, direction) VALUES ('s', 'MINIMIZE')")
            )
        engine.dispose()

    def empty(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.root / f'{name}.db'}"
        database = f"stairway_k_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        self.made.append(database)
        return _pg_url(database)

    def copy(self, name: str) -> str:
        if self.kind == "sqlite":
            path = self.root / f"{name}.db"
            shutil.copyfile(self.template.removeprefix("sqlite:///"), path)
            return f"sqlite:///{path}"
        database = f"stairway_k_{uuid.uuid4().hex[:12]}"
        source = self.template.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{source}"')
        self.made.append(database)
        return _pg_url(database)

    def site(self, name: str) -> Path:
        """A site on a new copy, with its own catalog and backups."""
        root = self.root / name
        root.mkdir()
        return site(root, self.copy(name), optuna_catalog(root))

    def close(self) -> None:
        dispose_all()
        if self.kind == "postgresql":
            for database in self.made:
                drop_later(database)


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Databases]:
    if request.param == "postgresql":
        require_postgres()
    made = Databases(request.param, tmp_path_factory.mktemp(f"adopted-{request.param}"))
    try:
        yield made
    finally:
        made.close()


def cli(site_file: Path, *args: str, **env: str) -> tuple[int, str]:
    done = prestarted.run([*args, "--site", str(site_file)], {**os.environ, **env}, timeout=300)
    return done.returncode, done.stdout + done.stderr


def seen(site_file: Path) -> tuple[list[str], set[str]]:
    """The schema and the revision the product's own tool reads."""
    url = site_file.read_text("utf-8").split('database = "')[1].split('"')[0]
    return schema_dump(url), heads(url)


def own_tables(site_file: Path) -> list[str]:
    """Stairway's bookkeeping tables in the site's database."""
    url = site_file.read_text("utf-8").split('database = "')[1].split('"')[0]
    engine = create_engine(sa_url(url))
    try:
        return [t for t in inspect(engine).get_table_names() if t.startswith("stairway_")]
    finally:
        engine.dispose()


def studies(site_file: Path) -> int:
    url = site_file.read_text("utf-8").split('database = "')[1].split('"')[0]
    engine = create_engine(sa_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM studies")).scalar_one())
    finally:
        engine.dispose()


def points_of_a_clean_upgrade(databases: Databases) -> tuple[Ends, list[str]]:
    reference = databases.site("reference")
    old = seen(reference)
    log = reference.parent / "points.trace"
    code, said = cli(reference, "upgrade", **{TRACE: str(log)})
    assert code == 0, said
    new = seen(reference)
    assert new[1] == {HEAD} and old[1] == {OLD}
    return Ends(old, new), schema_points(log.read_text("utf-8").split())


def schema_points(points: list[str]) -> list[str]:
    """Where an adopted history can be killed that a native one cannot: the take-over made, and
    each revision committed with the next not begun; and the plan just written. Each step's
    beginning and end are the example product's kill matrix's (test_kill_matrix.py)."""
    adopted = ("after:take-over#", "after:schema-change#")
    return ["None:plan#1", *(point for point in points if point.startswith(adopted))]


def kill_and_recover(databases: Databases, n: int, point: str, how: str, ends: Ends) -> list[str]:
    site_file = databases.site(f"k{n}-{how}")
    code, said = cli(site_file, "upgrade", STAIRWAY_FAULT=point)
    if code != -9:
        return [f"{point}: not killed ({code}: {said[-300:]})"]
    args = ("upgrade", "--resume") if how == "resume" else ("rollback",)
    code, said = cli(site_file, *args)
    if code != 0:
        return [f"{point}: {' '.join(args)} exited {code}: {said[-400:]}"]
    want = ends.new if how == "resume" else ends.old
    problems = []
    schema, revisions = seen(site_file)
    if revisions != want[1]:
        problems.append(f"{point} {how}: alembic_version says {revisions}, not {want[1]}")
    if schema != want[0]:
        problems.append(f"{point} {how}: the schema is torn")
    if studies(site_file) != 1:
        problems.append(f"{point} {how}: the study is lost")
    return problems


@pytest.mark.timeout(1200)
def test_an_adopted_history_killed_anywhere_resumes_or_rolls_back_whole(
    databases: Databases, capsys: pytest.CaptureFixture[str]
) -> None:
    ends, points = points_of_a_clean_upgrade(databases)
    assert "after:take-over#1" in points
    assert sum(p.startswith("after:schema-change#") for p in points) >= 6  # between revisions
    jobs = [(n, point, how) for n, point in enumerate(points) for how in ("resume", "rollback")]
    with ThreadPoolExecutor(WORKERS) as pool:
        found = pool.map(lambda job: kill_and_recover(databases, *job, ends), jobs)
        problems = [problem for each in found for problem in each]
    with capsys.disabled():
        print(f"\n  adopted kill matrix ({databases.kind}): {len(points)} points, {len(jobs)} runs")
    assert not problems, problems


def test_a_first_install_killed_inside_its_transaction_leaves_nothing(
    databases: Databases, tmp_path: Path
) -> None:
    """A new database's revisions run in one transaction, with Stairway's own tables: killed
    between two of them, or with all run and their records not yet written, nothing of them is
    left, and the next ``init`` builds the whole schema the product's tool reads as head."""
    catalog = optuna_catalog(tmp_path)
    manifest = catalog / "stairway.toml"  # replayed: not the product's own fresh install
    manifest.write_text(
        "".join(
            line
            for line in manifest.read_text("utf-8").splitlines(keepends=True)
            if not line.startswith("fresh =")
        ),
        encoding="utf-8",
    )
    site_file = site(tmp_path, databases.empty(f"first-{uuid.uuid4().hex[:8]}"), catalog)
    for point in ("after:grouped-change#4", "after:grouped-change#10"):
        code, said = cli(site_file, "init", "--version", "3.2.0", STAIRWAY_FAULT=point)
        assert code == -9, said
        schema, revisions = seen(site_file)
        assert (schema, revisions) == ([], set()), point
        assert not own_tables(site_file), point  # created in the same transaction
    code, said = cli(site_file, "init", "--version", "3.2.0")
    assert code == 0, said
    assert seen(site_file)[1] == {HEAD}
    assert studies(site_file) == 0
