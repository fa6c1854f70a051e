"""``stairway quickstart``: a demo site of the bundled identity-sync example on SQLite, walked
up its stairs from 1.0.0 through the required stop 1.0.4 to 2.0.0."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import column, func, insert, select, table

from stairway import commands
from stairway.catalog import load_catalog
from stairway.database import engine_for
from stairway.errors import SiteError
from stairway.site import load_site

DEMO_USERS = 10_000
BATCH = 1_000


def demo_catalog() -> Path:
    return Path(str(resources.files("stairway") / "examples" / "identity_sync" / "upgrades"))


@dataclass(frozen=True)
class DemoSite:
    directory: Path
    site_file: Path


def write_site(directory: Path) -> DemoSite:
    """A site.toml for a fresh SQLite database in ``directory``; refuses to reuse one."""
    directory.mkdir(parents=True, exist_ok=True)
    site_file = directory / "site.toml"
    database = directory / "identity-sync.db"
    for existing in (site_file, database):
        if existing.exists():
            raise SiteError(
                f"{existing} already exists",
                hint="pass --dir with an empty or new directory for the demo",
            )
    site_file.write_text(
        f'[site]\ndatabase = "sqlite:///{database}"\ncatalog = "{demo_catalog()}"\n',
        encoding="utf-8",
    )
    return DemoSite(directory, site_file)


def open_demo(demo: DemoSite) -> commands.Context:
    site = load_site(demo.site_file)
    return commands.Context(site, load_catalog(demo_catalog()), engine_for(site.database))


def seed_users(ctx: commands.Context, advance: Callable[[int], None]) -> int:
    """Fill the 1.0.0 schema with demo users, in batches."""
    users = table("users", column("id"), column("username"), column("full_name"))
    with ctx.engine.begin() as conn:
        for start in range(1, DEMO_USERS + 1, BATCH):
            rows = [
                {"id": i, "username": f"user{i:05d}", "full_name": f"Demo User {i}"}
                for i in range(start, min(start + BATCH, DEMO_USERS + 1))
            ]
            conn.execute(insert(users), rows)
            advance(len(rows))
    return DEMO_USERS


def migrated_users(ctx: commands.Context) -> int:
    """Users whose display name the 2.0.0 changes filled in."""
    users = table("users", column("display_name"))
    with ctx.engine.connect() as conn:
        query = select(func.count()).select_from(users).where(users.c.display_name.is_not(None))
        return int(conn.execute(query).scalar_one())
