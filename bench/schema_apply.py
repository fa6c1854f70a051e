"""``schema_apply``: Stairway applying N small changes versus Alembic applying the same SQL.

Both run in-process, end to end, on fresh PostgreSQL databases, one transaction per change
(Alembic with ``transaction_per_migration=True``). Goal: Stairway takes no longer than Alembic.
"""

from __future__ import annotations

import compileall
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config

from bench.harness import (
    MIN_REPEATS,
    Paired,
    Result,
    Sizes,
    TempDatabase,
    alternate,
    median,
    temp_database,
    timed,
)
from stairway.catalog import load_catalog
from stairway.database import engine_for
from stairway.schema import migrator

NAME = "schema_apply"
GOAL = 1.0


@dataclass(frozen=True)
class GeneratedChange:
    phase: str
    sql: str


@dataclass(frozen=True)
class StairwayTiming:
    load: float
    apply: float

    @property
    def total(self) -> float:
        return self.load + self.apply


def generate_changes(count: int) -> list[GeneratedChange]:
    """A mix of the small changes real catalogs are made of, cycling over four kinds."""
    return [_change(i) for i in range(1, count + 1)]


def _change(number: int) -> GeneratedChange:
    table = f"t_{(number - 1) // 4}"
    kind = (number - 1) % 4
    if kind == 0:
        return GeneratedChange("expand", f"CREATE TABLE {table} (id integer primary key, v text)")
    if kind == 1:
        return GeneratedChange("expand", f"ALTER TABLE {table} ADD COLUMN c_{number} text")
    if kind == 2:
        # A plain CREATE INDEX blocks writes while it builds: honest catalogs label it offline.
        return GeneratedChange("offline", f"CREATE INDEX ix_{number} ON {table} (v)")
    return GeneratedChange("expand", f"INSERT INTO {table} (id, v) VALUES ({number}, 'x')")


def write_catalog(root: Path, changes: list[GeneratedChange]) -> Path:
    schema = root / "schema"
    schema.mkdir(parents=True)
    manifest = (
        f'[product]\nname = "bench"\n\n[[release]]\nversion = "1.0.0"\nschema = {len(changes)}\n'
    )
    (root / "stairway.toml").write_text(manifest, encoding="utf-8")
    for number, change in enumerate(changes, start=1):
        body = f"-- phase: {change.phase}\n{change.sql};\n"
        (schema / f"{number:04d}_c.sql").write_text(body, encoding="utf-8")
    return root


ENV_PY = """\
from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""

REVISION_PY = """\
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.execute({sql!r})


def downgrade():
    pass
"""


def write_alembic(root: Path, changes: list[GeneratedChange]) -> Path:
    versions = root / "versions"
    versions.mkdir(parents=True)
    (root / "env.py").write_text(ENV_PY, encoding="utf-8")
    for number, change in enumerate(changes, start=1):
        down = f"r{number - 1:04d}" if number > 1 else None
        text = REVISION_PY.format(revision=f"r{number:04d}", down=down, sql=change.sql)
        (versions / f"r{number:04d}_c.py").write_text(text, encoding="utf-8")
    # An installed product ships compiled revisions; do not charge Alembic for byte-compiling.
    compileall.compile_dir(str(root), quiet=1)
    return root


def alembic_config(script_dir: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_dir))
    config.set_main_option("sqlalchemy.url", url)
    return config


def run_stairway(catalog_dir: Path, url: str, target: int) -> StairwayTiming:
    catalog, load = timed(lambda: load_catalog(catalog_dir))
    _, apply = timed(lambda: migrator.migrate(engine_for(url), catalog, target))
    return StairwayTiming(load, apply)


def run_alembic(script_dir: Path, url: str) -> float:
    config = alembic_config(script_dir, url)
    return timed(lambda: command.upgrade(config, "head"))[1]


def _stairway_once(catalog_dir: Path, target: int) -> tuple[StairwayTiming, int]:
    with temp_database("stairway") as db:
        timing = run_stairway(catalog_dir, db.url, target)
        return timing, _user_tables(db)


def _alembic_once(script_dir: Path) -> tuple[float, int]:
    with temp_database("alembic") as db:
        seconds = run_alembic(script_dir, db.url)
        return seconds, _user_tables(db)


def _user_tables(db: TempDatabase) -> int:
    """Tables t_* afterwards: a cheap check that both tools really did the same work."""
    found = db.scalar("SELECT count(*) FROM pg_tables WHERE tablename LIKE 't\\_%'")
    return int(str(found))


def run(sizes: Sizes) -> Result:
    changes = generate_changes(sizes.changes)
    with tempfile.TemporaryDirectory(prefix="bench-schema-") as tmp:
        catalog_dir = write_catalog(Path(tmp) / "catalog", changes)
        script_dir = write_alembic(Path(tmp) / "alembic", changes)
        stairway, runs, tables = _measure(catalog_dir, script_dir, sizes)
    return _result(sizes, stairway, runs, tables)


def _measure(
    catalog_dir: Path, script_dir: Path, sizes: Sizes
) -> tuple[list[StairwayTiming], Paired, set[int]]:
    stairway: list[StairwayTiming] = []
    tables: set[int] = set()

    def subject() -> float:
        timing, count = _stairway_once(catalog_dir, sizes.changes)
        stairway.append(timing)
        tables.add(count)
        return timing.total

    def baseline() -> float:
        seconds, count = _alembic_once(script_dir)
        tables.add(count)
        return seconds

    runs = alternate(subject, baseline, max(MIN_REPEATS, sizes.apply_repeats))
    return stairway, runs, tables


def _result(sizes: Sizes, stairway: list[StairwayTiming], runs: Paired, tables: set[int]) -> Result:
    return Result(
        name=NAME,
        subject=f"Stairway: load + migrate {sizes.changes} changes",
        baseline=f"Alembic: upgrade head, {sizes.changes} revisions",
        runs=runs,
        goal=GOAL,
        timings={
            "stairway_total_s": list(runs.subject),
            "stairway_load_s": [t.load for t in stairway],
            "stairway_apply_s": [t.apply for t in stairway],
            "alembic_total_s": list(runs.baseline),
        },
        details={
            "changes": sizes.changes,
            "repeats": len(runs.subject),
            "stairway_load_median_s": median([t.load for t in stairway]),
            "stairway_apply_median_s": median([t.apply for t in stairway]),
            "tables_created": ",".join(str(n) for n in sorted(tables)),
        },
    )
