"""``--from-index URL|DIR``: the catalog of the release ``--to`` names, taken from its artifact
in the signed release index, for ``verify``, ``plan``, ``rehearse`` and ``upgrade`` alike. One
option and one function, so that every command verifies the index the same way and refuses
with the same words."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stairway.errors import UsageRefused
from stairway.indexed_release import catalog_from_index
from stairway.options import err, plain
from stairway.site import load_site

FromIndexOpt = Annotated[
    str | None,
    typer.Option(
        "--from-index",
        metavar="URL|DIR",
        help="take the catalog of --to from its release artifact in the signed release "
        "index there, verified as `release check` does and checked against its digest",
    ),
]


def indexed_catalog(
    command: str,
    site: Path | None,
    catalog: Path | None,
    to: str | None,
    source: str,
    resume: bool = False,
) -> Path:
    """The catalog of release ``to`` from the signed release index at ``source``, for
    ``stairway command``; refused without ``--to`` or with ``--catalog`` (or ``--resume``)."""
    if to is None or resume or catalog is not None:
        also = "neither --resume nor --catalog" if command == "upgrade" else "no --catalog"
        resuming = (
            "; to resume, pass --catalog the catalog it unpacked (the upgrade names it)"
            if command == "upgrade"
            else ""
        )
        raise UsageRefused(
            "--from-index takes the catalog of the release --to names: it needs --to, and "
            f"goes with {also}",
            hint=f"run `stairway {command} --to V --from-index URL|DIR`{resuming}",
        )
    found = catalog_from_index(load_site(site), to, source)
    err.print(plain(f"catalog of {to} from the release index: {found}"), highlight=False)
    return found
