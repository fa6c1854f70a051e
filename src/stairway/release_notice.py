"""What an operator is told about newer releases wherever they look besides ``status``:
``verify`` and the web UI's dashboard. Read from the last ``release check`` alone, never the
network, so that a site that cannot reach its index still says what it last knew.

Two things are said. A release the last check found above a given one, with the path to it
from the site's release as ``plan`` plans it over the catalog (through required stops); when
the catalog does not know that release yet, that it must be fetched first. And a last check too
old to trust (older than :data:`STALE_AFTER`, or its index expired since), so that the operator
runs ``release check`` again: a site that stopped checking would otherwise look up to date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stairway import release_feed
from stairway.errors import PlanError
from stairway.release_index import Availability, IndexedRelease
from stairway.site import Site
from stairway.version_grammars import GrammarName
from stairway.versions import Release, Version, upgrade_path

STALE_AFTER = timedelta(days=7)  # an index is published about weekly or monthly: a week is late
CHECK_AGAIN = "`stairway release check`"


@dataclass(frozen=True)
class Announcement:
    """A sentence for the operator and the command(s) to run about it."""

    sentence: str
    action: str

    def describe(self) -> str:
        """The sentence and what to run, on one line."""
        return f"{self.sentence}: {self.action}"


def newer(
    found: Availability | None, above: str, current: Version, known: Sequence[Release]
) -> Announcement | None:
    """The release ``found`` holds above release ``above`` (the site's, or the one an upgrade
    goes to), with its path from ``current`` over the catalog's releases ``known``."""
    release = release_feed.newer_than_site(found, above)
    if release is None:
        return None
    if release.at not in {r.version for r in known}:
        return Announcement(
            f"{release.describe()} is available; the catalog does not know it yet, so fetch "
            "the release first",
            release_feed.next_steps(release.version),
        )
    return _planned(release, current, known)


def _planned(release: IndexedRelease, current: Version, known: Sequence[Release]) -> Announcement:
    target = release.version
    action = f"`stairway verify --to {target}` then `stairway upgrade --to {target}`"
    try:
        path = [current, *(r.version for r in upgrade_path(known, current, release.at))]
    except PlanError:  # e.g. a required stop the catalog lacks: ``plan`` says which
        return Announcement(
            f"{release.describe()} is available, but no path to it can be planned",
            f"`stairway plan --to {target}` says why",
        )
    steps = " -> ".join(str(v) for v in path)
    return Announcement(f"{release.describe()} is available, path {steps}", action)


def stale(found: Availability | None, now: datetime) -> Announcement | None:
    """That the last check is too old to say what is available; None when there was none or
    it is recent."""
    if found is None:
        return None
    if found.expires is not None and found.expires <= now:
        return Announcement(
            f"the release index the last check read expired at {_at(found.expires)}: "
            "newer releases may have been published since",
            CHECK_AGAIN,
        )
    age = now - found.checked_at
    if age < STALE_AFTER:
        return None
    return Announcement(
        f"the last release check was {age.days} days ago ({_at(found.checked_at)}): "
        "newer releases may have been published since",
        CHECK_AGAIN,
    )


def for_site(
    site: Site, grammar: GrammarName, above: str, current: Version, known: Sequence[Release]
) -> list[Announcement]:
    """What the site's last release check says about releases above ``above``, and whether it
    is too old; the site's file alone is read."""
    found = release_feed.last_check(site, grammar)
    said = [newer(found, above, current, known), stale(found, datetime.now(UTC))]
    return [a for a in said if a is not None]


def _at(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
