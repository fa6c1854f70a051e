"""Sites on Optuna's Alembic history (read from its installed wheel, never copied here), and
what the product itself reads from a database: its tool's heads and its schema."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
from pathlib import Path

import optuna
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from conftest import CATALOGS
from stairway.database import normalise_url

OPTUNA_RDB = Path(optuna.__file__).parent / "storages" / "_rdb"
HEAD = "v3.2.0.a"


def sa_url(url: str) -> str:
    """The URL as SQLAlchemy outside Stairway reads it (psycopg 3 for PostgreSQL)."""
    return normalise_url(url)


def optuna_tool(url: str) -> Config:
    """Optuna's own Alembic configuration: its alembic.ini and env.py, on ``url``."""
    config = Config(str(OPTUNA_RDB / "alembic.ini"))
    config.set_main_option("script_location", str(OPTUNA_RDB / "alembic"))
    config.set_main_option("sqlalchemy.url", sa_url(url).replace("%", "%%"))
    return config


def heads(url: str) -> set[str]:
    """What Alembic itself reads as the database's revisions."""
    engine = create_engine(sa_url(url))
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def optuna_catalog(tmp_path: Path, smoke: str = "") -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(CATALOGS / "optuna", target)
    if smoke:
        with (target / "stairway.toml").open("a", encoding="utf-8") as manifest:
            manifest.write(smoke)
    return target


def site(tmp_path: Path, url: str, catalog: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "{url}"\ncatalog = "{catalog}"\nbackup_dir = "{tmp_path / "b"}"\n',
        encoding="utf-8",
    )
    return path


def schema_dump(url: str) -> list[str]:
    """The schema without Stairway's tables, as sorted lines: ordering is noise, nothing else."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            rows = conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'stairway_%' "
                "AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        return sorted(f"{kind} {name}: {_clauses(sql)}" for kind, name, sql in rows)
    dump = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "-T", "stairway_*", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    noise = ("--", "\\restrict", "\\unrestrict", "SET ", "SELECT pg_catalog")
    return sorted(line for line in dump.splitlines() if line and not line.startswith(noise))


def _clauses(sql: str | None) -> str:
    """A CREATE statement with its clauses sorted: Alembic's batch mode rebuilds a SQLite table
    with its constraints in an order that changes from one process to the next."""
    lines = [line.strip().rstrip(",") for line in (sql or "").splitlines()]
    return " | ".join(sorted(line for line in lines if line))
