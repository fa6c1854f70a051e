"""A pytest plugin: the checks of ``stairway test-paths`` collected as pytest tests.

A product's CI runs ``pytest --stairway-paths=upgrades/`` (or sets ``stairway_paths`` in its
pytest configuration) and gets one test per upgrade path and engine, named
``stairway-paths::1.0.0 -> 2.1.0 (sqlite)``; a failing one names the path and every object that
differs from a new site at the target, as ``stairway test-paths`` does. Without the option the
plugin adds its options and nothing else: Stairway itself is imported only when paths are asked
for, so a test run that does not ask is neither changed nor slowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from stairway.pathtests import PathRunner
    from stairway.versions import Version

ENGINES = ("sqlite", "postgresql", "both")


def pytest_addoption(parser: pytest.Parser) -> None:
    """The options, mirroring ``stairway test-paths``; each has an ini key too."""
    group = parser.getgroup("stairway", "upgrade paths of a Stairway catalog")
    group.addoption(
        "--stairway-paths",
        metavar="CATALOG",
        help="test every upgrade path of the Stairway catalog CATALOG (one test per path)",
    )
    group.addoption(
        "--stairway-paths-from",
        metavar="V",
        action="append",
        default=[],
        help="a source release (repeat) [default: every LTS release and the last release of "
        "each minor series]",
    )
    group.addoption("--stairway-paths-to", metavar="V", help="target release [default: latest]")
    group.addoption(
        "--stairway-paths-engine",
        choices=ENGINES,
        help="the engines the paths run on [default: sqlite]",
    )
    group.addoption(
        "--stairway-paths-postgres",
        metavar="URL",
        help="PostgreSQL server URL to create scratch databases on (needs CREATEDB) "
        "[default: $STAIRWAY_POSTGRES]",
    )
    parser.addini("stairway_paths", "the Stairway catalog whose upgrade paths are tested")
    parser.addini("stairway_paths_to", "the target release of the upgrade paths")
    parser.addini("stairway_paths_engine", "sqlite, postgresql or both [default: sqlite]")


def _setting(config: pytest.Config, name: str) -> str | None:
    said = config.getoption(f"--{name.replace('_', '-')}") or config.getini(name)
    return str(said) if said else None


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect among the items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Add one item per upgrade path when a catalog is named; nothing otherwise. They are
    collected as pytest collects any test (counted, reported, a bad option a collection error
    that stops the run with exit 2)."""
    catalog = _setting(config, "stairway_paths")
    if catalog is None:
        return
    collector = StairwayPaths.from_parent(session, name="stairway-paths", nodeid="stairway-paths")
    collector.catalog = Path(catalog)
    items.extend(session.genitems(collector))


class PathsRefused(Exception):
    """The catalog or an option of the plugin refused, with what to do."""


class StairwayPaths(pytest.Collector):
    """The paths of one catalog, from the options."""

    catalog: Path

    def collect(self) -> list[pytest.Item]:
        """One ``PathItem`` per source release and engine, sharing one runner."""
        from stairway.errors import StairwayError

        try:
            runner, sources, engines = self._plan()
        except StairwayError as err:
            raise PathsRefused(f"error: {err.message}\nhint: {err.hint}") from None
        return [
            PathItem.from_parent(self, name=f"{source} -> {runner.target} ({engine})").bound(
                runner, source, engine
            )
            for engine in engines
            for source in sources
        ]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        """A refused catalog or option in Stairway's words, without a traceback."""
        if isinstance(excinfo.value, PathsRefused):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def _plan(self) -> tuple[PathRunner, list[Version], tuple[str, ...]]:
        from stairway.catalog import load_catalog
        from stairway.pathtests import ENGINES as BOTH
        from stairway.pathtests import PathRunner, check_sources, default_sources
        from stairway.targets import starting_version, target_version

        config = self.config
        loaded = load_catalog(self.catalog)
        target = target_version(loaded, _setting(config, "stairway_paths_to"))
        asked = config.getoption("--stairway-paths-from")
        sources = [starting_version(loaded, s) for s in asked]
        sources = sources or default_sources(loaded.releases, target)
        check_sources(sources, target)
        engine = _setting(config, "stairway_paths_engine") or "sqlite"
        engines = BOTH if engine == "both" else (engine,)
        postgres = config.getoption("--stairway-paths-postgres") or os.environ.get(
            "STAIRWAY_POSTGRES"
        )
        runner = PathRunner(loaded, target, postgres)
        config.add_cleanup(runner.close)
        return runner, sources, engines


class PathFailed(Exception):
    """A path that did not upgrade, or ended with another schema than a new site's."""


class PathItem(pytest.Item):
    """One upgrade path on one engine, run when the test runs."""

    runner: PathRunner
    source: Version
    engine: str

    def bound(self, runner: PathRunner, source: Version, engine: str) -> PathItem:
        """This item, knowing what it runs."""
        self.runner, self.source, self.engine = runner, source, engine
        return self

    def runtest(self) -> None:
        """Upgrade a scratch site along the path and compare its schema."""
        result = self.runner.run(self.source, self.engine)
        if not result.ok:
            raise PathFailed("\n".join(_lines(result.describe(), result.findings)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The path and its findings, without a traceback into Stairway."""
        if isinstance(excinfo.value, PathFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the test comes from: the catalog, and the path's name."""
        return self.path, None, f"upgrade path {self.name}"


def _lines(path: str, findings: tuple[str, ...]) -> Iterator[str]:
    yield f"upgrade path {path} failed:"
    yield from (f"  {path}: {finding}" for finding in findings)
