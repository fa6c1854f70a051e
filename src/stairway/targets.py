"""The release a command is asked to reach (``--to``), start from (``--from``) or create the
site at (``--version``), checked against the catalog before anything is read or written, so an
unknown one is an error and never an empty answer."""

from __future__ import annotations

from stairway.catalog import Catalog
from stairway.errors import PlanError
from stairway.versions import Release, Version


def named_release(catalog: Catalog, given: str, option: str = "--to") -> Release:
    """The catalog's release ``given``; an unknown one is refused naming the known ones."""
    wanted = catalog.version(given)
    found = next((r for r in catalog.releases if r.version == wanted), None)
    if found is None:
        known = ", ".join(str(r.version) for r in catalog.releases)
        raise PlanError(
            f"{option} {given}: the catalog of {catalog.product} has no release {wanted} "
            f"(known releases: {known})",
            hint=f"pass one of the known releases to {option}"
            + (
                f", or leave {option} out for the latest ({catalog.latest.version})"
                if option == "--to"
                else ""
            ),
            target=str(wanted),
        )
    return found


def target_version(catalog: Catalog, to: str | None) -> Version:
    """The release ``--to`` names, or the latest when it is left out."""
    return named_release(catalog, to).version if to else catalog.latest.version


def starting_version(catalog: Catalog, since: str) -> Version:
    """The release ``--from`` names."""
    return named_release(catalog, since, "--from").version
