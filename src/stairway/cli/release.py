"""``stairway release``: signed releases, from the publisher's key to a site's install."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from stairway import context as site_context
from stairway import release_feed, releases
from stairway.context import current_version
from stairway.errors import UsageRefused
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out, plain
from stairway.release_index import INDEX_FILE
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


@app.command("publish-index")
def release_publish_index(
    listing: Annotated[Path, typer.Argument(help="TOML file listing the releases to offer")],
    key: Annotated[Path, typer.Option("--key", help="release.key")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory sites fetch the index from")],
    days: Annotated[
        int, typer.Option("--valid-days", min=1, max=3660, help="days until the index expires")
    ] = 30,
    index_version: Annotated[
        int | None,
        typer.Option(
            "--index-version", min=1, help="[default: one above the index already in --out]"
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Write release-index.json (releases, artifact digests, expiry) and its signature; publish
    it again before it expires."""
    index = release_feed.publish(listing, key, out_dir, timedelta(days=days), index_version)
    if json:
        emit_json(
            {
                "index": str(out_dir / INDEX_FILE),
                "index_version": index.index_version,
                "expires": index.expires.isoformat(),
                "releases": [r.version for r in index.releases],
            }
        )
        return
    out.print(
        f"index version {index.index_version} of {len(index.releases)} release(s), "
        f"expires {index.expires:%Y-%m-%d %H:%M} UTC: {out_dir / INDEX_FILE} and its .sig",
        highlight=False,
    )


@app.command("check")
def release_check(
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="URL or directory publishing release-index.json and its .sig "
            "[default: the site's release_index]",
        ),
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Verify the product's signed release index and say whether a newer release is offered,
    with the path to it; exit 2 when the index is refused (nothing is remembered then)."""
    ctx = site_context.open_context(site, catalog)
    found = release_feed.check(
        ctx.site, current_version(ctx), ctx.catalog.releases, ctx.catalog.product, source
    )
    if json:
        emit_json(found.as_json())
        return
    out.print(plain(found.describe()), highlight=False)
    if found.newest is not None:
        if found.newest.notes:
            out.print(f"notes: {plain(found.newest.notes)}", highlight=False)
        out.print(f"next: {release_feed.next_steps(found.newest.version)}", highlight=False)
