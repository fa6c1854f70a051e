"""What the schema-snapshot tests share: site files on a new database of either engine, and a
catalog's release declared to ship its snapshot."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from conftest import new_pg_database

MakeSite = Callable[[str, Path], tuple[Path, str]]


def site_maker(engine: str, root: Path, stack: ExitStack) -> MakeSite:
    """``make(name, catalog)``: a site.toml under ``root`` on a new ``engine`` database (a
    PostgreSQL one dropped when ``stack`` closes), and the database's URL."""

    def make(name: str, catalog: Path) -> tuple[Path, str]:
        if engine == "sqlite":
            url = f"sqlite:///{root / name}.db"
        else:
            url = stack.enter_context(new_pg_database())
        path = root / f"{name}.toml"
        path.write_text(
            f'[site]\ndatabase = "{url}"\ncatalog = "{catalog}"\n'
            f'backup_dir = "{root / name}-backups"\n',
            encoding="utf-8",
        )
        return path, url

    return make


def declare(catalog: Path, version: str) -> None:
    """Name ``snapshots/<version>`` as the release's snapshot in its stairway.toml."""
    manifest = catalog / "stairway.toml"
    text = manifest.read_text(encoding="utf-8")
    said = f'version = "{version}"\n'
    assert said in text
    manifest.write_text(text.replace(said, f'{said}snapshot = "snapshots/{version}"\n'), "utf-8")
