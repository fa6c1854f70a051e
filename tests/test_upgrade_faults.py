"""Fault injection for real: the upgrade process is killed with SIGKILL right after each journal
record, on SQLite and on PostgreSQL. Then ``--resume`` (or, every other time, ``rollback``) must
leave the site wholly at the new version or wholly at the old one, every row and file intact."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from conftest import PG_ADMIN, _pg_url, require_postgres
from stairway import commands
from stairway.database import dispose_all
from stairway.journal import ACTIVE, FAULT
from stairway.upgrade import plan_steps
from test_upgrade import PRODUCT_TABLES, build_site, fingerprint, stairway_stop

TARGET = "3.0.0"


def points(site: Path) -> list[str]:
    """Every record the upgrade's journal will write, as a STAIRWAY_FAULT value."""
    ctx = commands.open_context(site, None)
    steps = plan_steps(commands.plan(ctx, TARGET))
    dispose_all()
    found = ["None:plan"]
    for step in range(len(steps)):
        found += [f"{step}:begin", f"{step}:done"]
    return [*found, "None:finished"]


class Databases:
    """A fresh database for each site: SQLite files, or PostgreSQL databases dropped at the end."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind, self.root, self.made = kind, root, []  # type: list[str]

    def new(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.root / f'{uuid.uuid4().hex[:8]}.db'}"
        name = f"stairway_f_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return _pg_url(name)

    def drop(self) -> None:
        dispose_all()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                for suffix in ("restore", "replaced"):
                    rows = conn.execute(
                        "SELECT datname FROM pg_database WHERE datname LIKE %s",
                        (f"{name[:40]}%_{suffix}_%",),
                    ).fetchall()
                    for (other,) in rows:
                        conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    if request.param == "postgresql":
        require_postgres()
    found = Databases(request.param, tmp_path)
    yield found
    if request.param == "postgresql":
        found.drop()


def rows(site: Path) -> int:
    """How many rows the product's own tables hold."""
    ctx = commands.open_context(site, None)
    with ctx.engine.connect() as conn:
        found = sum(
            int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in PRODUCT_TABLES
        )
    dispose_all()
    return found


def cli(site: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if fault:
        env[FAULT] = fault
    command = [sys.executable, "-m", "stairway", *args, "--site", str(site)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def test_kill_at_every_journal_point_then_resume_or_roll_back(
    databases: Databases, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = build_site(tmp_path / "reference", databases.new())
    journal_points = points(reference)
    assert len(journal_points) == 36, "17 steps: backup .. smoke checks, maintenance off, audit"
    old, old_rows = fingerprint(reference), rows(reference)
    assert cli(reference, "upgrade", "--to", TARGET).returncode == 0
    new = fingerprint(reference)
    stairway_stop(reference)
    tally = {"tried": 0, "resumed": 0, "rolled back": 0, "torn": 0, "rows lost": 0}
    expected_rows = {"resumed": rows(reference), "rolled back": old_rows}
    for number, point in enumerate(journal_points):
        site = build_site(tmp_path / f"p{number}", databases.new())
        try:
            killed = cli(site, "upgrade", "--to", TARGET, fault=point)
            assert killed.returncode == -9, f"{point}: not killed ({killed.stderr})"
            tally["tried"] += 1
            assert (site.parent / "backups" / ACTIVE).exists()
            refused = cli(site, "upgrade", "--to", TARGET)
            assert refused.returncode == 2 and "was interrupted" in refused.stderr
            how = "resumed" if number % 2 == 0 else "rolled back"
            args = ("upgrade", "--resume") if how == "resumed" else ("rollback",)
            recovered = cli(site, *args)
            assert recovered.returncode == 0, f"{point} {how}: {recovered.stderr}"
            state = fingerprint(site)
            if state != (new if how == "resumed" else old):
                tally["torn"] += 1
            tally["rows lost"] += max(0, expected_rows[how] - rows(site))
            tally[how] += 1
            assert state == (new if how == "resumed" else old), f"{point}: {how} site differs"
        finally:
            stairway_stop(site)
    with capsys.disabled():
        print(f"\n  kill points ({databases.kind}): {tally} (torn: a site not wholly old or new)")
    assert tally["tried"] == len(journal_points) and tally["torn"] == tally["rows lost"] == 0
