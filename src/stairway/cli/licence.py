"""``stairway licence``: the product's signed licence checked on a site, or issued by a vendor."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from stairway import context as site_context
from stairway import licence
from stairway.errors import VerifyBlocked
from stairway.options import CatalogOpt, JsonOpt, SiteOpt, emit_json, out
from stairway.targets import named_release
from stairway.verify import licence_findings

app = typer.Typer(help="The product's signed licence: check it, or issue one (vendors).")


@app.command("check")
def licence_check(
    to: Annotated[
        str | None, typer.Option("--to", help="the version to run [default: the site's]")
    ] = None,
    site: SiteOpt = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check the site's licence for its version or a target; exit 2 when it does not hold."""
    ctx = site_context.open_context(site, catalog, to)
    version = named_release(ctx.catalog, to).version if to else site_context.current_version(ctx)
    found = licence_findings(ctx, version)
    if json:
        emit_json({"version": str(version), "findings": [dataclasses.asdict(f) for f in found]})
    elif not found:
        out.print(f"{ctx.catalog.product} needs no licence")
    for finding in [] if json else found:
        out.print(finding.describe(), highlight=False)
    blocking = [f for f in found if f.blocking]
    if blocking:
        raise VerifyBlocked(blocking[0].message, hint=blocking[0].hint)


@app.command("issue")
def licence_issue(
    key: Annotated[Path, typer.Option("--key", help="the vendor's PEM private key")],
    product: Annotated[str, typer.Option("--product")],
    customer: Annotated[str, typer.Option("--customer")],
    versions: Annotated[str, typer.Option("--versions", help='e.g. ">=2.0,<3"')],
    expires: Annotated[str, typer.Option("--expires", help="YYYY-MM-DD")],
    to: Annotated[Path, typer.Option("--out", help="the licence file to write")],
    licence_id: Annotated[str | None, typer.Option("--id")] = None,
    json: JsonOpt = False,
) -> None:
    """Sign a licence (the vendor's side)."""
    terms = licence.new_terms(product, customer, versions, expires, licence_id)
    issued = licence.issue(key, terms, to)
    if json:
        emit_json({**terms, "id": issued.id, "expires": str(issued.expires), "path": str(to)})
        return
    out.print(f"licence {issued.id} for {customer}: {product} {versions} until {issued.expires}")


@app.command("keygen")
def licence_keygen(
    folder: Annotated[Path, typer.Option("--out", help="directory for licence.key and .pub")],
    json: JsonOpt = False,
) -> None:
    """The vendor's Ed25519 licence key pair; licence.pub ships in the catalog."""
    private, public = licence.generate_key(folder)
    if json:
        emit_json({"private": str(private), "public": str(public)})
        return
    out.print(f"{private} (keep secret) and {public} (ship in the catalog as [licence] key)")
