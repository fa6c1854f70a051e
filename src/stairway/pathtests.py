"""``stairway test-paths``: every upgrade path of a catalog run for real, for the product's CI.

For each source release and engine, a scratch site (a temporary SQLite file, or a PostgreSQL
database created and dropped on the given server) is created at the source by replaying its
changes, loaded with the catalog's fixture data (``[test_paths] fixtures``), and upgraded to the
target by :func:`stairway.upgrade.upgrade`, every step as a real upgrade runs it (backup,
verify, schema, objects, deltas, config files, smoke checks). Its schema is then compared,
object by object, with a new site created at the target by ``init`` (from its snapshot where
one ships): a difference is a finding naming the path and the object.

Smoke checks that run a command need the product running: they are left out, and said so.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import psycopg
from sqlalchemy import Connection, Engine, create_engine

from stairway import operations
from stairway.catalog import Catalog
from stairway.context import Context
from stairway.database import dispose_all, engine_for
from stairway.errors import StairwayError, UsageRefused
from stairway.schema.histories.fresh import fresh_install
from stairway.schema.inventory import Inventory, differences, inventory_of
from stairway.scratch import scratch_engine
from stairway.site import AuditSection, Site, SiteSection
from stairway.upgrade import upgrade
from stairway.versions import Release, Version, latest_maintenance

ENGINES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class PathResult:
    """One path on one engine: what was found wrong (nothing: it passed)."""

    source: str
    target: str
    engine: str
    findings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether the path upgraded and ended with the target's schema."""
        return not self.findings

    def describe(self) -> str:
        """``1.0.0 -> 2.1.0 (sqlite)``."""
        return f"{self.source} -> {self.target} ({self.engine})"

    def as_json(self) -> dict[str, object]:
        """The result as ``test-paths --json`` prints it."""
        return {
            "from": self.source,
            "to": self.target,
            "engine": self.engine,
            "ok": self.ok,
            "findings": list(self.findings),
        }


@dataclass(frozen=True)
class PathsReport:
    """Every path tested, and the smoke checks left out because they need the product."""

    results: tuple[PathResult, ...]
    skipped_smoke: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether every path passed."""
        return all(r.ok for r in self.results)


def default_sources(releases: Sequence[Release], target: Version) -> list[Version]:
    """Every LTS release and the last release of each minor series, below ``target``."""
    lts = {r.version for r in releases if r.lts}
    lasts = {latest_maintenance(releases, r.version).version for r in releases}
    return sorted(v for v in lts | lasts if v < target)


def run_paths(
    catalog: Catalog,
    sources: Sequence[Version],
    target: Version,
    engines: Sequence[str],
    postgres: str | None = None,
) -> PathsReport:
    """Run every path from ``sources`` to ``target`` on each of ``engines``."""
    check_sources(sources, target)
    runner = PathRunner(catalog, target, postgres)
    try:
        results = [runner.run(source, engine) for engine in engines for source in sources]
    finally:
        runner.close()
    return PathsReport(tuple(results), runner.skipped_smoke)


def check_sources(sources: Sequence[Version], target: Version) -> None:
    """Refuse a source release that is not older than the target."""
    for source in sources:
        if source >= target:
            raise UsageRefused(
                f"--from {source} is not older than the target {target}",
                hint="name releases below the target, or leave --from out for the default ones",
            )


class PathRunner:
    """Runs paths to one target one at a time (``test-paths`` and the pytest plugin), each
    engine's reference schema (a new site at the target) made once, when first needed."""

    def __init__(self, catalog: Catalog, target: Version, postgres: str | None = None) -> None:
        self.catalog, self.skipped_smoke = _without_command_smoke(catalog)
        self.target, self.postgres = str(target), postgres
        self.servers: dict[str, Engine] = {}
        self.expected: dict[str, Inventory] = {}

    def run(self, source: Version, engine: str) -> PathResult:
        """The path from ``source`` to the target on ``engine``, upgraded on a scratch site."""
        expected = self._reference(engine)
        with _site(self.catalog, self.servers[engine], "path") as ctx:
            found = _run_path(ctx, str(source), self.target, expected)
        return PathResult(str(source), self.target, engine, tuple(found))

    def close(self) -> None:
        """Let go of the servers' connections."""
        for server in self.servers.values():
            server.dispose()
        self.servers.clear()

    def _reference(self, engine: str) -> Inventory:
        if engine not in self.expected:
            server = self.servers.get(engine) or _server(engine, self.postgres)
            self.servers[engine] = server
            with _site(self.catalog, server, "reference") as reference:
                operations.init(reference, self.target)
                self.expected[engine] = inventory_of(reference.engine)
        return self.expected[engine]


def _run_path(ctx: Context, source: str, target: str, expected: Inventory) -> list[str]:
    try:
        operations.init(ctx, source, replay=True)
        _load_fixtures(ctx, source)
        upgrade(ctx, target)
    except StairwayError as err:
        return [f"{err.message} (hint: {err.hint})" if err.hint else err.message]
    return [
        d.describe(f"new site at {target}", "upgraded site")
        for d in differences(expected, inventory_of(ctx.engine))
    ]


def _load_fixtures(ctx: Context, release: str) -> None:
    model = ctx.catalog.manifest.test_paths if ctx.catalog.manifest else None
    if model is None or model.fixtures is None:
        return
    loaded = fresh_install(ctx.catalog.root, model.fixtures, "[test_paths] fixtures")
    hook = cast(Callable[[Connection, str], object], loaded)  # called with the release too
    try:
        with ctx.engine.begin() as conn:
            hook(conn, release)
    except Exception as err:
        raise UsageRefused(
            f"the fixture hook {model.fixtures} failed at {release}: {type(err).__name__}: {err}",
            hint="fix the product's fixture function; it receives a Connection and the release",
        ) from None


def _without_command_smoke(catalog: Catalog) -> tuple[Catalog, tuple[str, ...]]:
    """The catalog with only the smoke checks that run without the product (queries)."""
    if catalog.manifest is None:
        return catalog, ()
    smoke = catalog.manifest.smoke
    skipped = tuple(s.name for s in smoke if s.command is not None)
    kept = [s for s in smoke if s.command is None]
    manifest = catalog.manifest.model_copy(update={"smoke": kept})
    return dataclasses.replace(catalog, manifest=manifest), skipped


def _server(engine: str, postgres: str | None) -> Engine:
    """An engine whose kind (and, for PostgreSQL, server) the scratch databases take."""
    if engine == "sqlite":
        return create_engine("sqlite://")
    if postgres is None:
        raise UsageRefused(
            "testing paths on PostgreSQL needs a server to create scratch databases on",
            hint="pass --postgres postgresql://USER@HOST:PORT/DB (a user with CREATEDB)",
        )
    return engine_for(postgres)


@contextmanager
def _site(catalog: Catalog, server: Engine, label: str) -> Iterator[Context]:
    """A scratch site: a new empty database, and a directory for its backups and audit key."""
    with (
        tempfile.TemporaryDirectory(prefix=f"stairway-{label}-") as folder,
        _scratch(server, label) as engine,
    ):
        root = Path(folder)
        url = engine.url.render_as_string(hide_password=False)
        site = Site(
            site=SiteSection(database=url, backup_dir=root / "backups"),
            audit=AuditSection(key_file=root / "audit.key", witness=root / "audit.witness"),
            path=root / "site.toml",
        )
        try:
            yield Context(site, catalog, engine)
        finally:
            dispose_all()


@contextmanager
def _scratch(server: Engine, label: str) -> Iterator[Engine]:
    with ExitStack() as stack:
        try:
            engine = stack.enter_context(scratch_engine(server, f"paths_{label}"))
        except psycopg.Error as err:
            raise UsageRefused(
                f"cannot create a scratch database: {str(err).strip()}",
                hint="give --postgres a server and a user allowed to CREATE DATABASE",
            ) from None
        yield engine
