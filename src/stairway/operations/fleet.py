"""The fleet's operations over a site: its control plane (also mounted by a product), agent
tokens and published agent builds."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI

from stairway import audit, release_notice
from stairway.context import Context, current_version, open_context
from stairway.database import writing
from stairway.errors import ReleaseError, UsageRefused
from stairway.files import write_atomic
from stairway.fleet import builds, credentials, listening, notices, tokens
from stairway.fleet.agent import point_current, write_state
from stairway.fleet.builds import Build
from stairway.fleet.messages import PluginDirectory
from stairway.fleet.notices import Notice
from stairway.fleet.server import FleetConfig, create_app
from stairway.fleet.tables import ensure_tables
from stairway.fleet.tls import AgentTLS, client_context, install_files
from stairway.plugin_moves import moves_between
from stairway.releases import check_release
from stairway.schema import migrator
from stairway.versions import Version


def fleet_config(ctx: Context, public_url: str, given: str | None = None) -> FleetConfig:
    """The control plane's configuration for the site's current release and its ``[fleet]`` section.

    How agents reach the server: ``given`` (an operator's ``--public-url``) when there is one,
    else the site's ``public_url``, else ``public_url`` (where the server listens).
    """
    version = current_version(ctx)
    release = ctx.catalog.release(version)
    section = ctx.site.fleet
    return FleetConfig(
        product=ctx.catalog.product,
        version=str(version),
        protocol=release.agent_protocol,
        agents=release.agents,
        series=tuple(sorted({r.version.series for r in ctx.catalog.releases})),
        grammar=ctx.catalog.versions,
        builds=section.builds,
        public_url=given or section.public_url or public_url,
        schema_level=migrator.read_state(ctx.engine, ctx.catalog).level,
        heartbeat=section.heartbeat,
        deadline=section.deadline,
        announced=_announced(ctx, version),
        plugins=_plugin_moves(ctx, str(version)),
    )


def _plugin_moves(ctx: Context, target: str) -> Callable[[str], list[PluginDirectory]]:
    """The plug-ins an agent's move from its release to ``target`` changes, with their
    directories; none for a release the catalog's grammar cannot read."""
    manifest = ctx.catalog.manifest
    directories = {p.name: p.directory for p in manifest.plugin} if manifest else {}

    def moves(release: str) -> list[PluginDirectory]:
        try:
            found = moves_between(manifest, release, target)
        except ValueError:  # not a version in the catalog's grammar: nothing can be said
            return []
        return [
            PluginDirectory.model_validate(
                {"name": m.plugin, "directory": directories[m.plugin], "from": m.old, "to": m.new}
            )
            for m in found
        ]

    return moves


def _announced(ctx: Context, version: Version) -> Callable[[], list[Notice]]:
    """What the site's last release check says of releases above the server's, as notices."""

    def read() -> list[Notice]:
        said = release_notice.for_site(
            ctx.site, ctx.catalog.versions, str(version), version, ctx.catalog.releases
        )
        return [notices.info(a.sentence, a.action) for a in said]

    return read


def control_plane(site: Path | None, public_url: str, docs: bool = False) -> FastAPI:
    """The app ``stairway serve`` runs, for a product to mount in its own (see ``running``);
    ``public_url`` includes the mount prefix, so build URLs reach it. With ``docs`` it serves
    ``/docs``, ``/redoc`` and ``/openapi.json`` to admin tokens."""
    ctx = open_context(site, None)
    return create_app(ctx.engine, fleet_config(ctx, public_url), docs=docs)


def create_token(
    ctx: Context, kind: tokens.TokenKind, label: str, uses: int | None, hours: float | None
) -> str:
    """A new admin or enrollment token, shown once; limited to ``uses`` and to ``hours`` if given.

    Raises:
        UsageRefused: ``kind`` is an agent credential, which only enrollment issues.
    """
    if kind == tokens.TokenKind.AGENT:
        raise UsageRefused(
            "agent credentials are not created by hand",
            hint="create an enrollment token and run `stairway agent enroll` on the agent's host",
        )
    valid = timedelta(hours=hours) if hours else None
    with writing(ctx.engine) as conn:  # beside a running server
        ensure_tables(conn)
        return tokens.issue(conn, kind, label, uses=uses, valid_for=valid)


def revoke_token(ctx: Context, token_id: str) -> None:
    """Revoke the token ``token_id``; refused when there is no such token."""
    with writing(ctx.engine) as conn:  # beside a running server
        ensure_tables(conn)
        if not tokens.revoke(conn, token_id):
            raise UsageRefused(f"no token {token_id}", hint="the id is the part after swt_KIND_")
        audit.append(conn, "token.revoke", {"token": token_id}, actor="cli")


def revoke_agent(ctx: Context, agent_id: str) -> int:
    """Revoke every credential of the enrolled agent ``agent_id``; how many were live. Its
    connections close on every replica; it can come back only re-enrolled by an administrator
    (``reissue``).

    Raises:
        UsageRefused: no agent ``agent_id`` is enrolled.
    """
    with writing(ctx.engine) as conn:  # beside a running server
        ensure_tables(conn)
        count = credentials.revoke_all(conn, agent_id, actor="cli")
        if count is None:
            raise UsageRefused(
                f"no agent {agent_id} is enrolled",
                hint="the enrolled agents are on the web UI's Agents page and at GET /api/agents",
            )
        return count


def publish_build(ctx: Context, build_file: Path, version: str, key: Path) -> Build:
    """Publish ``build_file`` as the agent build of ``version``, signed with the release ``key``.

    Raises:
        UsageRefused: site.toml names no directory for agent builds.
        ReleaseError: ``build_file`` does not exist.
    """
    folder = ctx.site.fleet.builds
    if folder is None:
        raise UsageRefused(
            "the site names no directory for agent builds",
            hint='set [fleet] builds = "DIR" in site.toml',
        )
    return builds.publish(folder, key, build_file, ctx.catalog.product, version)


@dataclass(frozen=True)
class Enrollment:
    """What ``stairway agent enroll`` was given: the server, the enrollment token, the agent's id
    and home, the product's release key and the build to start with.
    """

    server: str  # ws://host:port or wss://host:port
    token: str
    agent_id: str
    home: Path
    key: Path  # the product's release.pub
    product: str
    build: Path  # the agent build to start with
    group: str | None = None  # e.g. "canary": upgraded before the rest
    tls: AgentTLS = field(default_factory=AgentTLS)
    listen: str | None = None  # host:port the product's agent serves connections on
    deadline: float | None = None  # seconds a new build has to be welcomed and ready
    data_dir: Path | None = None  # where the product's plug-ins live on the agent's host


def checked_trial_options(listen: str | None, deadline: float | None) -> None:
    """Refuse a ``listen`` that is not ``host:port`` and a deadline that is not positive,
    before anything is written.

    Raises:
        FleetError: ``listen`` is malformed.
        UsageRefused: ``deadline`` is not a positive number of seconds.
    """
    if listen is not None:
        listening.Address.parse(listen)
    if deadline is not None and not deadline > 0:
        raise UsageRefused(
            f"--deadline {deadline}: not a positive number of seconds",
            hint="give the seconds a new build has to come up, e.g. --deadline 60",
        )


def enroll(asked: Enrollment) -> None:
    """Exchange an enrollment token for this agent's credential and set up its home."""
    checked_trial_options(asked.listen, asked.deadline)
    if asked.data_dir is not None and not asked.data_dir.is_dir():
        raise UsageRefused(
            f"--data-dir {asked.data_dir}: not a directory",
            hint="give the product's data directory on this host, where its plug-ins live; "
            "nothing was written",
        )
    credential = _credential(asked)
    home = asked.home
    home.mkdir(parents=True, exist_ok=True)
    (home / "builds").mkdir(exist_ok=True)
    installed = home / "builds" / asked.build.name
    write_atomic(installed, asked.build.read_bytes())
    write_atomic(home / "release.pub", asked.key.read_bytes())
    config = {
        "server": asked.server,
        "agent_id": asked.agent_id,
        "credential": credential,
        "key": "release.pub",
        "product": asked.product,
        **install_files(asked.tls, home),
        **({"listen": asked.listen} if asked.listen else {}),
        **({"deadline": asked.deadline} if asked.deadline else {}),
        **({"data_dir": str(asked.data_dir.resolve())} if asked.data_dir else {}),
    }
    write_atomic(home / "agent.json", json.dumps(config, indent=2).encode())
    point_current(home, installed)
    write_state(home, {})


def _credential(asked: Enrollment) -> str:
    body = json.dumps({"agent_id": asked.agent_id, "group": asked.group}).encode()
    url = asked.server.replace("ws://", "http://").replace("wss://", "https://").rstrip("/")
    # an enrollment token enrolls a new agent; the agent's own credential re-enrolls it
    again = asked.token.startswith(f"swt_{tokens.TokenKind.AGENT.value}_")
    path = f"/api/agents/{quote(asked.agent_id, safe='')}/credential" if again else "/api/enroll"
    request = urllib.request.Request(
        f"{url}{path}",
        data=body,
        headers={"Authorization": f"Bearer {asked.token}", "Content-Type": "application/json"},
    )
    try:
        context = client_context(url, asked.tls)
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return str(json.loads(response.read())["credential"])
    except urllib.error.HTTPError as err:
        raise _enrollment_refused(err) from None
    except (urllib.error.URLError, OSError) as err:
        hint = "check --server"
        if url.startswith("https://"):
            hint += "; for TLS, --ca must name the CA of the server's certificate and, if the "
            hint += "server requires client certificates, --cert/--cert-key this agent's"
        raise UsageRefused(f"cannot reach {url}: {err}", hint=hint) from None


def install(home: Path, source: Path, version: str, product: str) -> Path:
    """The manual upgrade: a build checked like any release, then made current."""
    try:
        manifest = check_release(source, home / "release.pub", f"{product}-agent", version)
    except ReleaseError:
        raise
    target = home / "builds" / manifest.artifact
    write_atomic(target, (source / manifest.artifact).read_bytes())
    point_current(home, target)
    write_state(home, {})
    return target


def _enrollment_refused(err: urllib.error.HTTPError) -> UsageRefused:
    if err.code == 409:  # the id is taken: the server's sentence says what to do
        said = str(_detail(err))
        return UsageRefused(
            f"the server refused the enrollment: {said}",
            hint="run `stairway agent enroll` with this agent's own credential as --token, or "
            "ask an administrator for one (`stairway tokens reissue`); or choose another --id",
        )
    return UsageRefused(
        f"the server refused the enrollment ({err.code})",
        hint="check the token: it may be wrong, used up, expired or revoked",
    )


def _detail(err: urllib.error.HTTPError) -> object:
    try:
        return json.loads(err.read(4096)).get("detail", "")
    except (ValueError, AttributeError, OSError):
        return ""


def reissue(ctx: Context, agent_id: str, label: str) -> str:
    """A new credential for the enrolled agent ``agent_id``, its earlier ones revoked (every
    replica closes their connections); an administrator's re-enrollment, audited.

    Raises:
        UsageRefused: no agent ``agent_id`` is enrolled.
    """
    with writing(ctx.engine) as conn:  # beside a running server
        ensure_tables(conn)
        credential = credentials.reissue(conn, agent_id, actor=f"admin:{label}")
        if credential is None:
            raise UsageRefused(
                f"no agent {agent_id} is enrolled",
                hint="new agents enroll with an enrollment token (`stairway agent enroll`)",
            )
        return credential
