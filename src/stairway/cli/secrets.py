"""``stairway secrets``: the site key, secrets in and out, rotation and host moves.

Values are read from standard input (or an environment variable), never from the command
line, where other users could see them in the process list.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from stairway import context, operations
from stairway.errors import SecretError
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out, say
from stairway.secrets import SecretStore
from stairway.secrets.hosts import export_bundle, import_bundle, make_host_key
from stairway.secrets.keyring import KeyRing, SiteKey, write_key_file
from stairway.secrets.store import retired_file

secrets_app = typer.Typer(help="Secrets encrypted at rest in the site database.")
NameArg = Annotated[str, typer.Argument(help="the secret's name, e.g. connector/ldap/password")]


@secrets_app.command("init")
def secrets_init(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Create the site key file that site.toml names as secrets.key_file (mode 0600)."""
    ctx = context.open_context(site, catalog)
    where = ctx.site.secrets.key_file
    if where is None:
        raise SecretError(
            "site.toml names no key file",
            hint='add [secrets] key_file = "site.key" (outside the data directory), then init',
        )
    with context.changing(ctx):  # not beside a rekey, which rewrites the same file
        if where.exists():
            raise SecretError(
                f"{where} exists already", hint="a site has one key; rotate with rekey"
            )
        key = SiteKey.generate()
        write_key_file(where, KeyRing((key,)))
    said = f"site key {key.id} written to {where}; keep a copy where backups are not"
    say(json, {"key": key.id, "path": str(where)}, said)


@secrets_app.command("set")
def secrets_set(
    name: NameArg,
    from_env: Annotated[
        str | None, typer.Option("--from-env", help="read the value from this variable")
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Store a secret; the value is read from standard input."""
    value = _value(from_env)
    ctx = context.open_context(site, catalog)
    with context.changing(ctx):
        SecretStore(ctx.engine, context.secret_keys(ctx)).put(name, value, actor="cli")
    said = f"secret {name} stored ({len(value)} bytes, sealed)"
    say(json, {"stored": name, "bytes": len(value)}, said)


def _value(from_env: str | None) -> bytes:
    if from_env is not None:
        if from_env not in os.environ:
            raise SecretError(f"${from_env} is not set", hint="export it, or pipe the value in")
        return os.environ[from_env].encode()
    if sys.stdin.isatty():
        raise SecretError(
            "no value on standard input",
            hint="pipe it in: `printf %s VALUE | stairway secrets set`",
        )
    value = sys.stdin.buffer.read()
    if not value:
        raise SecretError("the value read from standard input is empty", hint="pipe the value in")
    return value


@secrets_app.command("get")
def secrets_get(name: NameArg, site: SiteOpt = None, catalog: CatalogOpt = None) -> None:
    """Print a secret's value to standard output."""
    ctx = context.open_context(site, catalog)
    value = SecretStore(ctx.engine, context.secret_keys(ctx)).get(name)
    sys.stdout.buffer.write(value)
    sys.stdout.flush()


@secrets_app.command("list")
def secrets_list(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Every secret's name, the site key sealing it and when it was set: never a value."""
    ctx = context.open_context(site, catalog)
    found = SecretStore(ctx.engine, context.secret_keys(ctx)).names()
    if json:
        emit_json([{"name": n, "key": k, "updated": u} for n, k, u in found])
        return
    for name, key_id, updated in found:
        out.print(f"{name}  key {key_id}  set {updated}", highlight=False)
    if not found:
        out.print("no secrets")


@secrets_app.command("delete")
def secrets_delete(
    name: NameArg, site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False
) -> None:
    """Remove a secret."""
    ctx = context.open_context(site, catalog)
    with context.changing(ctx):
        SecretStore(ctx.engine, context.secret_keys(ctx)).delete(name, actor="cli")
    say(json, {"deleted": name}, f"secret {name} deleted")


@secrets_app.command("rekey")
def secrets_rekey(site: SiteOpt = None, catalog: CatalogOpt = None, json: JsonOpt = False) -> None:
    """Rotate the site key while the product runs; run again to finish one cut short."""
    ctx = context.open_context(site, catalog)
    keys = context.secret_keys(ctx)
    done = operations.rekey_secrets(ctx)
    if json:
        retired = str(retired_file(keys.key_file)) if done.old and keys.key_file else None
        emit_json(
            {
                "key": done.new,
                "secrets": done.secrets,
                "retired": list(done.old),
                "retired_file": retired,
            }
        )
        return
    out.print(f"site key {done.new} now seals {done.secrets} secret(s)")
    if done.old and keys.key_file:
        out.print(
            f"retired key(s) {', '.join(done.old)} kept in {retired_file(keys.key_file)}: "
            "backups taken before now need them"
        )


@secrets_app.command("host-key")
def secrets_host_key(
    out_dir: Annotated[Path, typer.Option("--out", help="directory for host.key and host.pub")],
    json: JsonOpt = False,
) -> None:
    """On a new host: a key pair to receive secrets; give host.pub to the old host."""
    private, public = make_host_key(out_dir)
    said = f"{private} (keep here, 0600) and {public} (give to the old host)"
    say(json, {"private": str(private), "public": str(public)}, said)


@secrets_app.command("export")
def secrets_export(
    to_host: Annotated[Path, typer.Option("--to-host", help="the new host's host.pub")],
    to: Annotated[Path, typer.Option("--out", help="the bundle to write")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Seal every secret to the new host's key: only that host can open the bundle."""
    ctx = context.open_context(site, catalog)
    moved = export_bundle(ctx.engine, context.secret_keys(ctx), to_host, to)
    said = f"{len(moved.names)} secret(s) sealed for host key {moved.recipient} in {to}"
    say(json, {"sealed": list(moved.names), "recipient": moved.recipient, "path": str(to)}, said)


@secrets_app.command("import")
def secrets_import(
    bundle: Annotated[Path, typer.Argument(help="the bundle from `secrets export --to-host`")],
    host_key: Annotated[Path, typer.Option("--host-key", help="this host's host.key")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Open a bundle sealed for this host and store its secrets under this site's key."""
    ctx = context.open_context(site, catalog)
    with context.changing(ctx):
        moved = import_bundle(ctx.engine, context.secret_keys(ctx), bundle, host_key)
    said = f"{len(moved.names)} secret(s) imported and sealed under this site's key"
    say(json, {"imported": list(moved.names)}, said)
