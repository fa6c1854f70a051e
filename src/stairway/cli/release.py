"""``stairway release``: signed releases, from the publisher's key to a site's install."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stairway import releases
from stairway.errors import UsageRefused
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out
from stairway.release_source import catalog_product, fetch
from stairway.site import load_site

app = typer.Typer(
    help="Signed releases: keys, artifacts and manifests (publisher side), and their check."
)


@app.command("keygen")
def release_keygen(
    out_dir: Annotated[Path, typer.Option("--out", help="directory for release.key and .pub")],
    json: JsonOpt = False,
) -> None:
    """A new Ed25519 key pair for signing releases; keep release.key secret."""
    private, public = releases.generate_key(out_dir)
    if json:
        emit_json({"private": str(private), "public": str(public)})
        return
    out.print(f"private key {private} (keep it secret), public key {public} (give it to sites)")


@app.command("pack")
def release_pack(
    tree: Annotated[Path, typer.Argument(help="the release's directory tree")],
    artifact: Annotated[Path, typer.Option("--out", help="the .tar.zst to write")],
    json: JsonOpt = False,
) -> None:
    """Pack a release tree into a zstd tar artifact."""
    releases.pack_release(tree, artifact)
    if json:
        emit_json({"packed": str(tree), "artifact": str(artifact)})
        return
    out.print(f"packed {tree} into {artifact}")


@app.command("sign")
def release_sign(
    artifact: Annotated[Path, typer.Argument(help="the release artifact")],
    key: Annotated[Path, typer.Option("--key", help="release.key")],
    product: Annotated[str, typer.Option("--product")],
    version: Annotated[str, typer.Option("--version")],
    json: JsonOpt = False,
) -> None:
    """Write release-VERSION.json (artifact name, size, SHA-256) and its signature beside it."""
    manifest = releases.sign_release(key, artifact, product, version)
    if json:
        emit_json({"manifest": str(manifest), "signature": f"{manifest}.sig"})
        return
    out.print(f"signed {artifact.name}: {manifest} and {manifest.name}.sig")


@app.command("verify")
def release_verify(
    version: Annotated[str, typer.Option("--version", help="the release to check")],
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check a release's signature, size and SHA-256 with the site's key; installs nothing.

    The product is the one the catalog names when one is at hand (--catalog or the site's),
    else the one the signed manifest names."""
    where = load_site(site).site
    if where.artifacts is None or where.release_key is None:
        raise UsageRefused(
            "site.toml names no artifacts and release_key", hint="set both in the [site] table"
        )
    product = catalog_product(catalog or where.catalog)
    found = releases.check_release(where.artifacts, where.release_key, product, version)
    if json:
        emit_json(
            {
                "verified": str(found.artifact),
                "product": found.product,
                "version": str(found.version),
                "sha256": found.sha256,
            }
        )
        return
    out.print(
        f"[green]{found.artifact} verified[/green]: {found.product} {found.version}, "
        f"sha256 {found.sha256}"
    )


@app.command("fetch")
def release_fetch(
    version: Annotated[str, typer.Argument(help="the release to install")],
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="URL or directory publishing release-V.json, its .sig and the artifact "
            "[default: the site's artifacts]",
        ),
    ] = None,
    site: SiteOpt = None,
    json: JsonOpt = False,
) -> None:
    """Verify a signed release and unpack it into releases/VERSION; `current` is not moved
    (the upgrade switches it)."""
    installed = fetch(load_site(site).site, version, source)
    if json:
        emit_json({"release": version, "installed": str(installed)})
        return
    out.print(f"[green]release {version} verified[/green] and installed in {installed}")
