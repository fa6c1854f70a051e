"""``stairway serve``, ``stairway tokens`` and ``stairway agent``."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated

import typer

from stairway import context
from stairway.errors import UsageRefused
from stairway.fleet import tls
from stairway.fleet.messages import MESSAGE_LIMIT
from stairway.fleet.tokens import TokenKind
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out, say

# The control plane's modules load FastAPI, uvicorn and websockets; the commands below import
# them when they run, so that `stairway --help` and every other command start without them.

app = typer.Typer()
tokens_app = typer.Typer(help="Admin and enrollment tokens for the control plane.")
agent_app = typer.Typer(help="The agent runtime: enroll, run, publish builds, install by hand.")
PEM = {"exists": True, "dir_okay": False, "readable": True}  # a PEM file option's checks


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8700,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="how agents reach this server; beats site.toml's [fleet] public_url",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate: serve TLS", **PEM)
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="its private key", **PEM)
    ] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option("--client-ca", help="PEM CA: require agents' certificates (mTLS)", **PEM),
    ] = None,
    max_body: Annotated[
        int,
        typer.Option("--max-body", help="largest request body, in bytes (413 past it)", min=1024),
    ] = 64 * 1024,
    docs: Annotated[
        bool,
        typer.Option("--docs", help="serve /docs, /redoc and /openapi.json (admin token only)"),
    ] = False,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """The control plane: agent listener, admin API, web UI and upgrade policy evaluator."""
    import uvicorn  # lazily: see above

    from stairway.fleet.server import create_app  # lazily: FastAPI
    from stairway.operations import fleet  # lazily: FastAPI

    _check_tls(tls_cert, tls_key, client_ca)
    ctx = context.open_context(site, catalog)
    scheme = "https" if tls_cert else "http"
    config = fleet.fleet_config(ctx, f"{scheme}://{host}:{port}", given=public_url)
    config.anchor = context.anchor(ctx)  # checkpoints of the audit log while it serves
    app = create_app(ctx.engine, config, max_body=max_body, docs=docs)
    extra: dict[str, object] = {}
    if tls_cert:
        extra = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
        if client_ca:
            extra |= {"ssl_ca_certs": str(client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    out.print(f"control plane for {config.product} {config.version} on {scheme}://{host}:{port}")
    # log_config=None: uvicorn's records go through the handler -v/--log-format set up, at its
    # level and in its format, instead of uvicorn's own text handler
    # ws_max_size: a larger agent message is refused by the server before it is buffered whole
    uvicorn.run(app, host=host, port=port, log_config=None, ws_max_size=MESSAGE_LIMIT, **extra)  # type: ignore[arg-type]


def _check_tls(cert: Path | None, key: Path | None, client_ca: Path | None) -> None:
    if (cert is None) != (key is None):
        raise UsageRefused(
            "--tls-cert and --tls-key go together",
            hint="give the server's PEM certificate and its private key, or neither",
        )
    if client_ca and not cert:
        raise UsageRefused(
            "--client-ca needs --tls-cert and --tls-key",
            hint="mutual TLS is TLS first: give the server's certificate and key too",
        )


@tokens_app.command("create")
def tokens_create(
    kind: Annotated[TokenKind, typer.Option("--kind", help="admin or enroll")],
    label: Annotated[str, typer.Option("--label", help="who or what it is for")],
    uses: Annotated[int | None, typer.Option("--uses", help="enrollments it allows", min=1)] = None,
    hours: Annotated[float | None, typer.Option("--hours", help="valid for", min=0.01)] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """A new token, printed once: only its hash is kept."""
    from stairway.operations import fleet  # lazily: FastAPI

    ctx = context.open_context(site, catalog)
    token = fleet.create_token(ctx, kind, label, uses, hours)
    if json:
        emit_json({"token": token, "kind": kind.value, "label": label})
    else:
        out.print(token, highlight=False, soft_wrap=True)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str | None, typer.Argument(help="the id: the part after swt_KIND_")] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="revoke every credential of this agent instead")
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Revoke a token, or every credential of an agent, at once: the connections made with them
    close within a second on every replica."""
    from stairway.operations import fleet  # lazily: FastAPI

    if (token_id is None) == (agent is None):
        raise UsageRefused(
            "name one token id, or --agent and an agent id",
            hint="stairway tokens revoke ID, or stairway tokens revoke --agent AGENT_ID",
        )
    ctx = context.open_context(site, catalog)
    if agent is not None:
        count = fleet.revoke_agent(ctx, agent)
        say(json, {"agent": agent, "revoked": count}, f"{count} credential(s) of {agent} revoked")
        return
    assert token_id is not None
    fleet.revoke_token(ctx, token_id)
    say(json, {"revoked": token_id}, f"token {token_id} revoked")


@tokens_app.command("reissue")
def tokens_reissue(
    agent_id: Annotated[str, typer.Argument(help="the enrolled agent's id")],
    label: Annotated[str, typer.Option("--label", help="who is re-enrolling it")] = "cli",
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """A new credential for an enrolled agent; its old ones are revoked and their connections
    closed. The credential is shown once: enroll the agent with it as --token."""
    from stairway.operations import fleet  # lazily: FastAPI

    credential = fleet.reissue(context.open_context(site, catalog), agent_id, label)
    if json:
        emit_json({"agent_id": agent_id, "credential": credential})
    else:
        out.print(credential, highlight=False, soft_wrap=True)


@agent_app.command("enroll")
def agent_enroll(
    server: Annotated[
        str, typer.Option("--server", help="ws://host:port (wss:// with TLS) of the control plane")
    ],
    token: Annotated[str, typer.Option("--token", help="an enrollment token")],
    agent_id: Annotated[str, typer.Option("--id", help="this agent's id")],
    home: Annotated[Path, typer.Option("--home", help="the agent's directory")],
    key: Annotated[Path, typer.Option("--key", help="the product's release.pub")],
    product: Annotated[str, typer.Option("--product")],
    build: Annotated[Path, typer.Option("--build", help="the agent build to start with")],
    group: Annotated[
        str | None, typer.Option("--group", help="e.g. canary: the policy's canary group")
    ] = None,
    ca: Annotated[
        Path | None, typer.Option("--ca", help="PEM CA of the server's certificate", **PEM)
    ] = None,
    cert: Annotated[
        Path | None, typer.Option("--cert", help="this agent's PEM certificate (mTLS)", **PEM)
    ] = None,
    cert_key: Annotated[
        Path | None, typer.Option("--cert-key", help="its private key (PEM)", **PEM)
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="HOST:PORT where the agent serves connections; kept open across its builds",
        ),
    ] = None,
    deadline: Annotated[
        float | None,
        typer.Option("--deadline", help="seconds a new build has to come up (default 60)"),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="the product's data directory on this host, where its plug-ins live: they "
            "are snapshotted before an upgrade that moves them",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Get this agent's credential and set up its home."""
    from stairway.operations import fleet  # lazily: FastAPI

    asked = fleet.Enrollment(
        server,
        token,
        agent_id,
        home,
        key,
        product,
        build,
        group,
        tls.checked(server, ca, cert, cert_key),
        listen,
        deadline,
        data_dir,
    )
    fleet.enroll(asked)
    said = f"agent {agent_id} enrolled; start it with `stairway agent run --home {home}`"
    say(json, {"enrolled": agent_id, "home": str(home)}, said)


@agent_app.command("run")
def agent_run(home: Annotated[Path, typer.Option("--home", help="the agent's directory")]) -> None:
    """Run the current build; an upgrade that does not come up is rolled back by itself."""
    from stairway.fleet.supervisor import supervise  # lazily: websockets

    raise typer.Exit(supervise(home))


@agent_app.command("publish")
def agent_publish(
    build: Annotated[Path, typer.Argument(help="the agent build (a zipapp)")],
    version: Annotated[str, typer.Option("--version")],
    key: Annotated[Path, typer.Option("--key", help="the product's release.key")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Sign an agent build and put it where the control plane offers it to agents."""
    from stairway.operations import fleet  # lazily: FastAPI

    found = fleet.publish_build(context.open_context(site, catalog), build, version, key)
    said = f"published {found.manifest.artifact} (sha256 {found.manifest.sha256})"
    say(json, {"published": found.manifest.artifact, "sha256": found.manifest.sha256}, said)


@agent_app.command("install")
def agent_install(
    source: Annotated[Path, typer.Argument(help="directory with the build, manifest and .sig")],
    version: Annotated[str, typer.Option("--version")],
    home: Annotated[Path, typer.Option("--home")],
    product: Annotated[str, typer.Option("--product")],
    json: JsonOpt = False,
) -> None:
    """Upgrade an agent by hand (when it cannot reach the server's build URL)."""
    from stairway.operations import fleet  # lazily: FastAPI

    target = fleet.install(home, source, version, product)
    said = f"{target.name} checked and made current; restart the agent"
    say(json, {"current": target.name}, said)
