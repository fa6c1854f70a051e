"""identity-sync's HTTP service: FastAPI on uvicorn, guarded by Stairway at start.

The release it runs is the name of the ``current`` release directory (or ``--version``); at start
it calls ``stairway.guard()``, which refuses a database newer than the release or missing its
changes, and reports maintenance mode, during which only administrators are served (the rest
get 503 and the flag's message: ``stairway.maintenance_flag()`` on each request); then
``stairway.reconcile_jobs()``, which puts the sync runs an upgrade interrupted back in the queue.
With ``migrate_on_start`` (``serve --migrate-on-start``: one instance, the way a single binary
runs) the guard backs the database up into the site's backup_dir and migrates it to the release
itself; when that fails the database is restored and the process exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

import stairway
from stairway.database import engine_for
from stairway.errors import SecretError
from stairway.examples.identity_sync import BIND_PASSWORD, rolling
from stairway.maintenance import read as read_maintenance
from stairway.secrets import KeySource, SecretStore
from stairway.site import load_site
from stairway.startup import GuardResult
from stairway.versions import Version

ADMIN_TOKEN_HEADER = "x-admin"


def running_release(site_file: Path) -> str:
    """The release the site's ``current`` link names; exits when there is none."""
    site = load_site(site_file)
    releases = site.site.releases_dir
    if releases is not None and (releases / "current").is_symlink():
        return (releases / "current").readlink().name
    raise SystemExit("no current release: pass --version")


def create_app(
    site_file: Path, version: str | None = None, migrate_on_start: bool = False
) -> FastAPI:
    """The identity-sync web app for the site, serving ``version`` or the current release;
    ``migrate_on_start``: its database migrated at start, after a backup."""
    site = load_site(site_file)
    release = version or running_release(site_file)
    catalog = site.site.catalog
    assert catalog is not None
    state: dict[str, GuardResult] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state["guard"] = stairway.guard(
            site.database,
            catalog,
            release,
            auto_migrate=migrate_on_start,
            backup_first=migrate_on_start,
            backup_dir=site.site.backup_dir,
        )
        stairway.reconcile_jobs(engine, catalog)  # the sync runs an upgrade interrupted
        yield

    app = FastAPI(title="identity-sync", version=release, lifespan=lifespan)
    engine = engine_for(site.database)
    traffic = rolling.install(app, release)

    @app.middleware("http")
    async def maintenance_mode(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """While maintenance is on, everyone but administrators gets 503 and its message; the
        health check still answers, for the upgrade and the operator to see it serve."""
        if request.url.path != "/health" and request.headers.get(ADMIN_TOKEN_HEADER) != "yes":
            flag = await anyio.to_thread.run_sync(stairway.maintenance_flag, site.database)
            if flag is not None:
                return JSONResponse({"detail": flag.reason}, 503, {"Retry-After": "60"})
        return await call_next(request)

    @app.get("/health")
    def health(response: Response) -> dict[str, object]:
        if traffic.draining:
            response.status_code = 503
        with engine.connect() as conn:
            flag = read_maintenance(conn)
            users = conn.execute(text("SELECT count(*) FROM users")).scalar_one()
        return {
            "status": "ok",
            "release": release,
            "schema": state["guard"].level,
            "maintenance": flag is not None,
            "users": users,
        }

    @app.get("/users/{user_id}")
    def user(user_id: int) -> dict[str, object]:
        with engine.connect() as conn:
            column = "display_name" if Version(release) >= Version("2.0.0") else "full_name"
            row = conn.execute(
                text(f"SELECT id, username, {column} FROM users WHERE id = :id"), {"id": user_id}
            ).first()
        if row is None:
            raise HTTPException(404, "no such user")
        return {"id": row[0], "username": row[1], "name": row[2]}

    def rows(query: str) -> list[dict[str, object]]:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(query))]

    @app.get("/roles")
    def roles() -> list[dict[str, object]]:
        return rows("SELECT id, name FROM roles ORDER BY id")

    @app.get("/connectors")
    def connectors() -> list[dict[str, object]]:
        if Version(release) >= Version("2.1.0"):  # the column is `kind` from 2.1.0 on
            return rows("SELECT id, name, kind AS type FROM connectors ORDER BY id")
        return rows("SELECT id, name, type FROM connectors ORDER BY id")

    secrets = SecretStore(engine, KeySource(site.secrets.key_file))

    @app.get("/connectors/1/credential")
    def credential() -> dict[str, object]:
        """Whether the LDAP connector's bind password opens: the product reads its secret."""
        try:
            size = len(secrets.get(BIND_PASSWORD))
        except SecretError as err:
            raise HTTPException(500, f"the bind password does not open: {err.message}") from None
        return {"connector": 1, "bind_password": "opens", "bytes": size}

    @app.get("/schedules")
    def schedules() -> list[dict[str, object]]:
        return rows("SELECT id, connector_id, cron, paused FROM schedules ORDER BY id")

    @app.get("/sync-runs")
    def sync_runs() -> list[dict[str, object]]:
        return rows("SELECT id, schedule_id, state, started_at FROM sync_runs ORDER BY id")

    return app
