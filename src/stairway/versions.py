"""Versions, releases and upgrade paths through required stops. Pure: no I/O.

Rules of an upgrade path, so that every site passes the releases whose migrations the next ones
rely on:

- a path only goes up; a downgrade is refused;
- before leaving a minor series the site first moves to the latest maintenance release of that
  series ("latest maintenance first");
- a release's ``requires`` is a stop every path to it passes through;
- between stops the path jumps directly: intermediate releases are not visited, their changes are
  cumulative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packaging.version import InvalidVersion
from packaging.version import Version as _PkgVersion

from stairway.errors import PlanError
from stairway.tasks import Task


class Version(_PkgVersion):
    """A PEP 440 version (semver strings such as 2.0.0 are valid PEP 440)."""

    @classmethod
    def parse(cls, text: str) -> Version:
        """The version ``text`` names.

        Args:
            text: A PEP 440 or semver version, such as ``2.0.0`` or ``2.1.0rc1``.

        Raises:
            PlanError: ``text`` is not a version.
        """
        try:
            return cls(text)
        except InvalidVersion:
            raise PlanError(
                f"{text!r} is not a version",
                hint="write versions as PEP 440 / semver, e.g. 2.0.0 or 2.1.0rc1",
            ) from None

    @property
    def series(self) -> tuple[int, int]:
        """The minor series, ``(major, minor)``: 2.1.4 is in series (2, 1)."""
        return (self.major, self.minor)


@dataclass(frozen=True)
class AgentWindow:
    """Which agent releases a release accepts, besides their protocol (``agents`` in the
    catalog).

    Attributes:
        minors_behind: How many minor series an agent may lag behind the server's release,
            counted over the catalog's releases (0: only the server's own series); None
            accepts any older release.
        ahead: Whether an agent on a newer release than the server's is accepted (and shown as
            ``ahead``) rather than refused.
        hold: Whether an agent outside the window is held (connected, shown as ``held``, sent
            nothing but an upgrade into the window) rather than refused.
    """

    minors_behind: int | None = None
    ahead: bool = False
    hold: bool = False

    def describe(self) -> str:
        """The window in words, as refusals say it."""
        behind = (
            "any older release"
            if self.minors_behind is None
            else f"releases up to {self.minors_behind} minor series older"
        )
        newer = "newer releases too" if self.ahead else "no newer release"
        return f"{behind}; {newer}{'; others held' if self.hold else ''}"


@dataclass(frozen=True)
class Release:
    """A release of the product as the catalog declares it.

    Attributes:
        version: The release's version.
        schema: The number of the last mainline schema change the release needs.
        lts: Whether its series is a long-term-support line.
        rolling: Whether it may be reached by a rolling upgrade, its contract changes running
            once no older instance is left.
        requires: A release every path to this one must stop at; None when there is none.
        agent_protocol: The lowest and highest agent protocol it accepts; None when it has
            no agents.
        agents: The agent releases it accepts; None accepts every release (an agent on a
            newer one is still shown as ``ahead``).
        patches: The patch changes ``(number, patch)`` of an LTS line it carries besides
            changes 1 to ``schema``.
        clear: Transient paths of the data directory (relative to it) that an upgrade to it
            removes after the backup and before the product starts.
        tasks: Post-upgrade tasks (a reindex, a product command) an upgrade to it runs after
            its schema and objects.
    """

    version: Version
    schema: int
    lts: bool = False
    rolling: bool = False
    requires: Version | None = None
    agent_protocol: tuple[int, int] | None = None
    agents: AgentWindow | None = None
    patches: tuple[tuple[int, int], ...] = ()  # patch changes N.K it carries besides 1..schema
    clear: tuple[str, ...] = ()  # data-directory paths removed before it starts
    tasks: tuple[Task, ...] = ()  # post-upgrade tasks, in the catalog's order

    def carries(self, number: int, patch: int) -> bool:
        """Whether the release needs change ``number`` (``patch`` > 0: the patch number.patch).

        Args:
            number: The change's number.
            patch: 0 for a mainline change; otherwise the patch's number after the dot.
        """
        return (number, patch) in self.patches if patch else number <= self.schema

    def describe(self) -> str:
        """The release in one line: version, schema, flags, required stop and patches."""
        flags = [f for f, on in (("lts", self.lts), ("rolling", self.rolling)) if on]
        extra = f" requires {self.requires}" if self.requires else ""
        if self.patches:
            extra += " patches " + ", ".join(f"{n}.{k}" for n, k in self.patches)
        if self.clear:
            extra += " clears " + ", ".join(self.clear)
        shown = "".join(f", {flag}" for flag in flags)
        return f"{self.version} (schema {self.schema}{shown}){extra}"


def find_release(releases: Sequence[Release], version: Version) -> Release:
    """The release of ``version``.

    Args:
        releases: The catalog's releases.
        version: The version looked for.

    Raises:
        PlanError: No release has that version; the hint lists those there are.
    """
    for release in releases:
        if release.version == version:
            return release
    known = ", ".join(str(r.version) for r in releases)
    raise PlanError(f"no release {version} in the catalog", hint=f"known releases: {known}")


def _is_lts_series(releases: Sequence[Release], version: Version) -> bool:
    """A series is LTS when any of its releases is marked ``lts`` (4.0.4 is LTS as 4.0 is)."""
    return any(r.lts for r in releases if r.version.series == version.series)


def latest_maintenance(releases: Sequence[Release], version: Version) -> Release:
    """The highest release of ``version``'s minor series.

    Args:
        releases: The catalog's releases; at least one must be in the series.
        version: Any version of the series.

    Raises:
        ValueError: No release is in the series.
    """
    same = [r for r in releases if r.version.series == version.series]
    return max(same, key=lambda r: r.version)


def upgrade_path(releases: Sequence[Release], current: Version, target: Version) -> list[Release]:
    """The releases to visit after ``current``, ending with ``target``; empty when already there.

    Args:
        releases: The catalog's releases.
        current: The site's release.
        target: The release asked for.

    Raises:
        PlanError: ``target`` is older than ``current`` (a downgrade), either is not a release
            of the catalog, or the required stops form a cycle.
    """
    if target < current:
        raise PlanError(
            f"{target} is older than the site's {current}: downgrades are refused",
            hint="restore a backup taken before the upgrade instead",
            current=str(current),
            target=str(target),
        )
    find_release(releases, current)
    goal = find_release(releases, target)
    path: list[Release] = []
    here = current
    for waypoint in [*required_stops(releases, current, goal), goal]:
        segment = _segment(releases, here, waypoint)
        path.extend(segment)
        here = waypoint.version
    return path


def required_stops(releases: Sequence[Release], current: Version, goal: Release) -> list[Release]:
    """Required stops strictly between ``current`` and ``goal``, oldest first.

    Args:
        releases: The catalog's releases.
        current: The site's release.
        goal: The release asked for.

    Raises:
        PlanError: A required stop is not in the catalog, or the stops form a cycle.
    """
    stops: list[Release] = []
    release = goal
    seen: set[Version] = {goal.version}
    while release.requires is not None and release.requires > current:
        if release.requires in seen:
            raise PlanError(
                f"requires cycle through {release.requires}",
                hint="a required stop must be an older release",
            )
        seen.add(release.requires)
        release = find_release(releases, release.requires)
        stops.append(release)
    return list(reversed(stops))


def check_hop(releases: Sequence[Release], current: Version, target: Version) -> None:
    """Refuse a direct move from ``current`` to ``target`` that the upgrade path would not take.

    Args:
        releases: The catalog's releases.
        current: The site's release.
        target: The release the move goes to.

    Raises:
        PlanError: The path passes through other releases first (it names them), or
            ``upgrade_path`` refuses the move.
    """
    path = upgrade_path(releases, current, target)
    if len(path) > 1:
        stops = " -> ".join(str(r.version) for r in path)
        raise PlanError(
            f"{current} -> {target} skips required stops: the path is {current} -> {stops}",
            hint="go step by step through each stop (`stairway plan --to` lists them)",
            current=str(current),
            target=str(target),
        )


def _segment(releases: Sequence[Release], here: Version, waypoint: Release) -> list[Release]:
    """Hops from ``here`` to ``waypoint`` with no required stop in between."""
    hops: list[Release] = []
    while here < waypoint.version:
        nxt = _next_hop(releases, here, waypoint)
        hops.append(nxt)
        here = nxt.version
    return hops


def _next_hop(releases: Sequence[Release], here: Version, waypoint: Release) -> Release:
    """Latest maintenance of the own series first; then LTS -> LTS, or the next series' latest."""
    if waypoint.version.series == here.series:
        return waypoint
    tail = latest_maintenance(releases, here)
    if tail.version > here:
        return tail
    ahead = [r for r in releases if here < r.version <= waypoint.version]
    if _is_lts_series(releases, here):
        if _is_lts_series(releases, waypoint.version):
            return waypoint
        lts = [r for r in ahead if _is_lts_series(releases, r.version)]
        if lts:
            return latest_maintenance(releases, max(lts, key=lambda r: r.version).version)
    next_series = min(r.version.series for r in ahead)
    if next_series == waypoint.version.series:
        return waypoint
    return latest_maintenance(releases, Version(f"{next_series[0]}.{next_series[1]}"))
