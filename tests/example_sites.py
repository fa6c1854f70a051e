"""Sites of the example product (identity-sync) with its real service running, on SQLite or
PostgreSQL, copied from one template so a test can afford dozens of them.

A copy is the template's directory with its paths and port rewritten in site.toml, and (on
PostgreSQL) a database created from the template's. ``state()`` is what an upgrade must leave
wholly old or wholly new: the product's rows, its config files and data directory, the release
the database records and the one ``current`` names.
"""

from __future__ import annotations

import gc
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from sqlalchemy import text

import prestarted
from conftest import PG_ADMIN, _pg_url, drop_later, require_postgres
from stairway import context, operations, service
from stairway.database import dispose_all
from stairway.holders import DELETED, holders, sqlite_files
from stairway.quickstart import open_demo, seed, write_site
from stairway.schema import migrator
from stairway.site import load_site

# The command runs forked from a process that imported it once (see prestarted.py); "0" runs
# each as its own ``python -m stairway``, the way an operator starts it.
PRESTARTED = os.environ.get("STAIRWAY_TEST_PRESTARTED", "1") != "0"
PRODUCT_TABLES = ("users", "objects", "connectors", "schedules", "sync_runs")
USERS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ExampleSite:
    site: Path
    port: int
    database: str

    @property
    def root(self) -> Path:
        return self.site.parent

    def cli(
        self, *args: str, fault: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, **env}
        if fault:
            environment["STAIRWAY_FAULT"] = fault
        if PRESTARTED:
            return prestarted.run([*args, "--site", str(self.site)], environment, timeout=300)
        command = [sys.executable, "-m", "stairway", *args, "--site", str(self.site)]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/health", timeout=5
            ) as answer:
                value = orjson.loads(answer.read())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def start(self) -> None:
        ctx = context.open_context(self.site, None)
        service.run_command(ctx.site.service, "start")
        service.wait_healthy(ctx.site.service)
        ctx.engine.dispose()  # this site's engine only: scenarios run in threads

    def stop(self) -> None:
        """Whatever of the product runs for this site, ended (test clean-up)."""
        site = load_site(self.site)
        with_pid = service.Held(home=self.root)
        service.run_command(site.service, "stop")
        for pid in service._runner_pids(with_pid.home):
            service._terminate(pid)
        for holder in self.stale_holders(any_file=True):
            service._terminate(holder.pid)
        for pid in self._serving_pids():  # one its stop command could not end (a test's doing)
            service._terminate(pid)

    def _serving_pids(self) -> list[int]:
        """The product's processes started for this site: their command line names its file."""
        wanted = str(self.site).encode()
        found = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if wanted in (entry / "cmdline").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
        return [pid for pid in found if pid != os.getpid()]

    def stale_holders(self, any_file: bool = False) -> list[Any]:
        """Processes holding the SQLite database, replaced (deleted) unless ``any_file``."""
        if not self.database.startswith("sqlite"):
            return []
        path = Path(self.database.removeprefix("sqlite:///"))
        found = holders(sqlite_files(path))
        return [h for h in found if any_file or h.path.endswith(DELETED)]

    def state(self) -> dict[str, str]:
        ctx = context.open_context(self.site, None)
        found: dict[str, str] = {}
        with ctx.engine.connect() as conn:
            for table in PRODUCT_TABLES:
                rows = sorted(repr(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {table}")))
                found[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        found["release"] = str(context.current_version(ctx))
        found["level"] = str(migrator.read_state(ctx.engine, ctx.catalog).level)
        ctx.engine.dispose()  # this site's engine only: scenarios run in threads
        for folder in ("etc", "data"):
            for path in sorted((self.root / folder).rglob("*")):
                if path.is_file():
                    relative = path.relative_to(self.root)
                    found[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
        found["current"] = os.readlink(self.root / "releases" / "current")
        return found

    def rows(self) -> int:
        ctx = context.open_context(self.site, None)
        with ctx.engine.connect() as conn:
            total = sum(
                int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
                for t in PRODUCT_TABLES
            )
        ctx.engine.dispose()  # this site's engine only: scenarios run in threads
        return total

    def maintenance(self) -> bool:
        ctx = context.open_context(self.site, None)
        from stairway import maintenance

        with ctx.engine.connect() as conn:
            on = maintenance.read(conn) is not None
        ctx.engine.dispose()  # this site's engine only: scenarios run in threads
        return on


class ExampleSites:
    """Copies of one template site at 1.0.0; PostgreSQL databases dropped by ``close()``."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind, self.root = kind, root
        self.databases: list[str] = []
        self.template = self._template()

    def _template(self) -> ExampleSite:
        demo = write_site(self.root / "template")
        database = self._database()
        if self.kind == "postgresql":
            _replace(demo.site_file, f"sqlite:///{demo.directory / 'identity-sync.db'}", database)
        (demo.directory / "data" / "avatars" / "user1.png").write_bytes(b"\x89PNG" * 300)
        ctx = open_demo(demo)
        operations.init(ctx, "1.0.0")
        seed(ctx, lambda _n: None, USERS)
        dispose_all()
        return ExampleSite(demo.site_file, demo.port, database)

    def _database(self, template: str | None = None) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.root / 'template' / 'identity-sync.db'}"
        name = f"stairway_x_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            clause = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{clause}')
        self.databases.append(name)
        return _pg_url(name)

    def new(self, name: str, running: bool = True) -> ExampleSite:
        root = self.root / name
        shutil.copytree(self.template.root, root, symlinks=True)
        port = free_port()
        _replace(root / "site.toml", str(self.template.root), str(root))
        _replace(root / "site.toml", str(self.template.port), str(port))
        database = self.template.database.replace(str(self.template.root), str(root))
        if self.kind == "postgresql":
            source = self.template.database.rsplit("/", 1)[1]
            database = self._database(template=source)
            _replace(root / "site.toml", self.template.database, database)
        made = ExampleSite(root / "site.toml", port, database)
        if running:
            made.start()
        return made

    def close(self) -> None:
        dispose_all()
        # Connections a thread's engine lost to another thread's dispose are garbage in cycles:
        # collected here, not in whichever later test the collector happens to run in.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in self.databases:
                rows = conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{name}%",)
                ).fetchall()
                for (found,) in rows:
                    drop_later(found)


def _replace(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text("utf-8").replace(old, new), "utf-8")


def example_sites(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExampleSites]:
    """The body of a module-scoped fixture parametrised by engine ("sqlite", "postgresql")."""
    if request.param == "postgresql":
        require_postgres()
    made = ExampleSites(request.param, tmp_path_factory.mktemp(f"sites-{request.param}"))
    yield made
    made.close()
