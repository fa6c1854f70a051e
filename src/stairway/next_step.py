"""What an operator runs next on a site, as ``stairway status`` ends by saying: finish an
interrupted upgrade first, then put the schema in order, then finish the background work an
upgrade handed over, then take a newer release; otherwise nothing. Pure: the caller gathers what
the site's journal, schema, background work, catalog and last release check say.
"""

from __future__ import annotations

from dataclasses import dataclass

from stairway.version_grammars import GrammarName
from stairway.versions import Version


@dataclass(frozen=True)
class Site:
    """What decides the next step, as the site stands."""

    release: str | None  # the site's release; None before init or adoption
    interrupted: str | None = None  # the command that settles an interrupted upgrade
    unadopted: bool = False  # a database with tables Stairway has not recorded
    drifted: bool = False
    pending: bool = False  # changes of the site's release not applied yet
    unknown: bool = False  # applied changes this catalog does not ship
    catalog_latest: str | None = None
    index_newest: str | None = None  # the newest release the last release check found
    # the commands that finish the background work upgrades handed over: `background run`, the
    # retry of a failed task; a later upgrade is refused until it is done
    background: tuple[str, ...] = ()
    versions: GrammarName = "pep440"  # the catalog's grammar, in which the releases are read


@dataclass(frozen=True)
class NextStep:
    """The commands to run, in order, and why; or what to do when no command does it; or
    nothing at all (``done``)."""

    commands: tuple[str, ...]
    why: str
    done: bool = False

    def describe(self) -> str:
        """``next: stairway upgrade --to 2.1.0 (the catalog has 2.1.0)``."""
        if self.done:
            return f"next: nothing to do ({self.why})"
        if not self.commands:
            return f"next: {self.why}"
        return f"next: {', then '.join(self.commands)} ({self.why})"

    def as_json(self) -> dict[str, object]:
        """The ``next`` field of ``status --json``."""
        return {"commands": list(self.commands), "why": self.why, "nothing_to_do": self.done}


def next_step(site: Site) -> NextStep:
    """The first thing to do on ``site``, most urgent first."""
    if site.interrupted:
        return NextStep((site.interrupted,), "an upgrade was interrupted")
    if site.unadopted:
        return NextStep((), "adopt the database with `stairway baseline`, as said above")
    if site.release is None:
        latest = site.catalog_latest or "VERSION"
        return NextStep((f"stairway init {latest}",), "the site has no release yet")
    return (
        _in_order(site)
        or _background(site)
        or _newer(site.release, site)
        or NextStep((), "up to date", True)
    )


def _in_order(site: Site) -> NextStep | None:
    if site.drifted:
        return NextStep(("stairway repair",), "applied changes differ from the catalog")
    if site.pending:
        return NextStep(("stairway migrate",), f"changes of {site.release} are not applied")
    if site.unknown:
        return NextStep((), "point the site at a catalog with the database's changes (see above)")
    return None


def _background(site: Site) -> NextStep | None:
    if not site.background:
        return None
    return NextStep(site.background, "background work of an upgrade is not finished")


def _newer(release: str, site: Site) -> NextStep | None:
    running = Version(release, site.versions)
    if site.catalog_latest and Version(site.catalog_latest, site.versions) > running:
        target = site.catalog_latest
        return NextStep((f"stairway upgrade --to {target}",), f"the catalog has {target}")
    if site.index_newest and Version(site.index_newest, site.versions) > running:
        target = site.index_newest
        commands = (f"stairway release fetch {target}", f"stairway upgrade --to {target}")
        return NextStep(commands, f"the last release check found {target}")
    return None
