"""``stairway quickstart``: a demo site of the bundled identity-sync product on SQLite, upgraded
end to end from 1.0.0 through the required stop 1.0.4 to 2.0.0 by ``stairway upgrade``.

The demo is a whole site: a database with users, stored documents, connectors and a running sync,
a data directory, the operator's config files (a TOML settings file and the embedded server's
standalone.xml), signed releases on disk, and the product's real HTTP service, started, stopped
and health-checked by the upgrade.
"""

from __future__ import annotations

import shutil
import socket
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from secrets import token_urlsafe

import orjson
from sqlalchemy import Connection, column, func, insert, select, table, text

from stairway import context, releases, service
from stairway.catalog import load_catalog
from stairway.database import engine_for
from stairway.errors import SiteError
from stairway.examples.identity_sync import BIND_PASSWORD
from stairway.secrets import KeyRing, SecretStore, SiteKey
from stairway.secrets.keyring import write_key_file
from stairway.site import load_site

DEMO_USERS = 10_000
BATCH = 1_000
RELEASES = ("1.0.0", "1.0.4", "2.0.0", "2.1.0")


def example_dir() -> Path:
    """The bundled identity-sync product, as installed with Stairway."""
    return Path(str(resources.files("stairway") / "examples" / "identity_sync"))


def demo_catalog() -> Path:
    """The identity-sync product's upgrade catalog."""
    return example_dir() / "upgrades"


@dataclass(frozen=True)
class DemoSite:
    """A demo site on disk: its directory, its site.toml and the port its service listens on."""

    directory: Path
    site_file: Path
    port: int

    @property
    def health_url(self) -> str:
        """Where the demo's service answers its health check."""
        return f"http://127.0.0.1:{self.port}/health"


def write_site(directory: Path) -> DemoSite:
    """The demo's site.toml, config files, data directory and signed releases; refuses reuse."""
    directory.mkdir(parents=True, exist_ok=True)
    site_file = directory / "site.toml"
    for existing in (site_file, directory / "identity-sync.db"):
        if existing.exists():
            raise SiteError(
                f"{existing} already exists",
                hint="pass --dir with an empty or new directory for the demo",
            )
    etc = directory / "etc"
    etc.mkdir()
    for name in ("identity-sync.toml", "standalone.xml"):
        shutil.copy(example_dir() / "files" / name, etc / name)
    (directory / "data").mkdir()
    (directory / "data" / "avatars").mkdir()
    _publish_releases(directory)
    port = _free_port()
    serve = f"{sys.executable} -m stairway.examples.identity_sync"
    site_file.write_text(
        f'[site]\ndatabase = "sqlite:///{directory / "identity-sync.db"}"\n'
        f'catalog = "{demo_catalog()}"\ndata_dir = "data"\nbackup_dir = "backups"\n'
        'config_files = ["etc/identity-sync.toml", "etc/standalone.xml"]\n'
        'releases_dir = "releases"\nartifacts = "artifacts"\nrelease_key = "keys/release.pub"\n\n'
        f'[service]\nstart = "{serve} start --site {site_file} --port {port}"\n'
        f'stop = "{serve} stop --site {site_file}"\n'
        f'health = "http://127.0.0.1:{port}/health"\nhealth_timeout = 30\n\n'
        '[secrets]\nkey_file = "keys/site.key"\n',
        encoding="utf-8",
    )
    write_key_file(directory / "keys" / "site.key", KeyRing((SiteKey.generate(),)))
    return DemoSite(directory, site_file, port)


def _publish_releases(directory: Path) -> None:
    """Each release packed and signed with a key made for the demo, as a vendor would."""
    private, public = releases.generate_key(directory / "keys")
    artifacts = directory / "artifacts"
    artifacts.mkdir()
    for version in RELEASES:
        tree = directory / "build" / version
        tree.mkdir(parents=True)
        (tree / "VERSION").write_text(version + "\n", encoding="utf-8")
        artifact = artifacts / f"identity-sync-{version}.tar.zst"
        releases.pack_release(tree, artifact)
        releases.sign_release(private, artifact, "identity-sync", version)
    shutil.rmtree(directory / "build")
    manifest = releases.check_release(artifacts, public, "identity-sync", RELEASES[0])
    releases.install_release(artifacts, directory / "releases", manifest)
    releases.switch_current(directory / "releases", RELEASES[0])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def open_demo(demo: DemoSite) -> context.Context:
    """The site context of a demo site: its site, the identity-sync catalog and its database."""
    site = load_site(demo.site_file)
    return context.Context(site, load_catalog(demo_catalog()), engine_for(site.database))


def seed(ctx: context.Context, advance: Callable[[int], None], count: int = DEMO_USERS) -> int:
    """Users (rows and profile documents), LDAP connectors, schedules and a running sync."""
    users = table("users", column("id"), column("username"), column("full_name"))
    objects = table("objects", column("oid"), column("type"), column("data"), column("written_by"))
    with ctx.engine.begin() as conn:
        for start in range(1, count + 1, BATCH):
            numbers = range(start, min(start + BATCH, count + 1))
            rows = [
                {"id": i, "username": f"user{i:05d}", "full_name": f"Demo User {i}"}
                for i in numbers
            ]
            conn.execute(insert(users), rows)
            conn.execute(insert(objects), [_profile(i) for i in numbers])
            advance(len(rows))
        _connectors(conn)
    secrets = SecretStore(ctx.engine, context.secret_keys(ctx))
    secrets.put(BIND_PASSWORD, token_urlsafe(24), actor="quickstart")  # sealed, never shown
    return count


def _profile(number: int) -> dict[str, object]:
    document = {"fullName": f"Demo User {number}", "locale": "en", "username": f"user{number:05d}"}
    return {
        "oid": f"profile-{number:05d}",
        "type": "UserProfile",
        "data": orjson.dumps(document).decode(),
        "written_by": "1.0.0",
    }


def _connectors(conn: Connection) -> None:
    statements = [
        "INSERT INTO connectors (id, name, type) VALUES (1, 'Corporate LDAP', 'ldap'), "
        "(2, 'HR export', 'csv')",
        "INSERT INTO schedules (id, connector_id, cron) VALUES (1, 1, '*/5 * * * *'), "
        "(2, 2, '0 2 * * *')",
        "INSERT INTO sync_runs (id, schedule_id, state, started_at) VALUES "
        "(1, 1, 'finished', '2026-11-24T01:00:00Z'), (2, 1, 'running', '2026-11-24T01:05:00Z')",
    ]
    config = {"kind": "ldap", "server": "ldap.example.org:636", "baseDn": "dc=example,dc=org"}
    for statement in statements:
        conn.execute(text(statement))
    documents = [
        ("connector-1", "ConnectorConfig", config),
        ("schedule-1", "ScheduleConfig", {"connectorType": "ldap", "cron": "*/5 * * * *"}),
        ("schedule-2", "ScheduleConfig", {"connectorType": "csv", "cron": "0 2 * * *"}),
    ]
    for oid, type_, document in documents:
        conn.execute(
            text("INSERT INTO objects VALUES (:o, :t, :d, '1.0.0')"),
            {"o": oid, "t": type_, "d": orjson.dumps(document).decode()},
        )


def migrated_users(ctx: context.Context) -> int:
    """Users whose display name the 2.0.0 changes filled in."""
    users = table("users", column("display_name"))
    with ctx.engine.connect() as conn:
        query = select(func.count()).select_from(users).where(users.c.display_name.is_not(None))
        return int(conn.execute(query).scalar_one())


@contextmanager
def serving(ctx: context.Context) -> Iterator[None]:
    """The demo's service started and healthy for the block, and stopped however it ends."""
    try:  # a start that fails half way is stopped too
        service.run_command(ctx.site.service, "start")
        service.wait_healthy(ctx.site.service)
        yield
    finally:
        service.run_command(ctx.site.service, "stop")


def answer(url: str) -> str:
    """What the demo's service answers at ``url``."""
    with urllib.request.urlopen(url, timeout=5) as said:
        return str(said.read().decode())


def credential_url(demo: DemoSite) -> str:
    """Where the demo's service says what it reads of the LDAP connector's sealed password."""
    return demo.health_url.replace("/health", "/connectors/1/credential")
