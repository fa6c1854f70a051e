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
from typing import Any

from packaging.version import InvalidVersion, _BaseVersion
from packaging.version import Version as _PkgVersion

from stairway.errors import PlanError
from stairway.tasks import Task
from stairway.version_grammars import PARSERS, GrammarName, describe


class Version(_PkgVersion):
    """A release's version in the grammar its catalog chose (``[product] versions``).

    ``Version(text)`` is PEP 440, the default grammar; ``Version(text, "semver")`` (or
    ``Catalog.version(text)``) reads it as the product writes it. A version of another grammar
    prints as written and orders the way its ecosystem does; versions of two grammars never
    compare: that raises PlanError.
    """

    def __init__(self, text: str, grammar: GrammarName = "pep440") -> None:
        self._grammar = grammar
        if grammar == "pep440":
            super().__init__(text)
            return
        if not isinstance(text, str):
            raise InvalidVersion(f"{text!r} is not a version")
        try:
            self._parsed = PARSERS[grammar](text)
        except ValueError as err:
            raise InvalidVersion(str(err)) from None
        self._spelling = text

    @classmethod
    def parse(cls, text: str, grammar: GrammarName = "pep440") -> Version:
        """The version ``text`` names in ``grammar``.

        Args:
            text: A version as the product writes it, such as ``2.0.0`` or ``4.4-SNAPSHOT``.
            grammar: The catalog's version grammar.

        Raises:
            PlanError: ``text`` is not a version of that grammar; the hint names the grammar
                and gives an example.
        """
        try:
            return cls(text, grammar)
        except InvalidVersion:
            raise PlanError(
                f"{text!r} is not a version of the {grammar} grammar",
                hint=f"this catalog writes {describe(grammar)}",
            ) from None

    @property
    def grammar(self) -> GrammarName:
        """The grammar the version was read in."""
        return self._grammar

    @property
    def series(self) -> tuple[int, int]:
        """The minor series, ``(major, minor)``: 2.1.4 is in series (2, 1), 2024.10.1 in
        (2024, 10)."""
        return (self.major, self.minor)

    @property
    def _key(self) -> Any:
        if self._grammar == "pep440":
            return super()._key
        return self._parsed.key

    @property
    def release(self) -> tuple[int, ...]:
        """The leading numbers: (major, minor, micro ...)."""
        return super().release if self._grammar == "pep440" else self._parsed.release

    @property
    def is_prerelease(self) -> bool:
        """Whether the version comes before its release (rc1, -rc.1, -SNAPSHOT ...)."""
        return super().is_prerelease if self._grammar == "pep440" else self._parsed.prerelease

    @property
    def major(self) -> int:
        """The first number."""
        return self.release[0] if self.release else 0

    @property
    def minor(self) -> int:
        """The second number (0 when there is none)."""
        return self.release[1] if len(self.release) >= 2 else 0

    @property
    def micro(self) -> int:
        """The third number (0 when there is none)."""
        return self.release[2] if len(self.release) >= 3 else 0

    def __str__(self) -> str:
        return super().__str__() if self._grammar == "pep440" else self._spelling

    def __repr__(self) -> str:
        return f"<Version({str(self)!r}, {self._grammar!r})>"

    def __reduce__(self) -> tuple[type[Version], tuple[str, GrammarName]]:
        return (Version, (str(self), self._grammar))

    def __hash__(self) -> int:
        return hash((self._grammar, self._key))

    def _same_grammar(self, other: object) -> bool:
        """Whether ``other`` is a version to compare with; refuses one of another grammar."""
        if not isinstance(other, _BaseVersion):
            return False
        theirs = other._grammar if isinstance(other, Version) else "pep440"
        if theirs != self._grammar:
            raise PlanError(
                f"{self} ({self._grammar}) and {other} ({theirs}) are versions of different "
                "grammars: they do not compare",
                hint="read both through the catalog (its [product] versions grammar)",
            )
        return True

    def __lt__(self, other: _BaseVersion) -> bool:
        return self._key < other._key if self._same_grammar(other) else NotImplemented

    def __le__(self, other: _BaseVersion) -> bool:
        return self._key <= other._key if self._same_grammar(other) else NotImplemented

    def __gt__(self, other: _BaseVersion) -> bool:
        return self._key > other._key if self._same_grammar(other) else NotImplemented

    def __ge__(self, other: _BaseVersion) -> bool:
        return self._key >= other._key if self._same_grammar(other) else NotImplemented

    def __eq__(self, other: object) -> bool:
        if not self._same_grammar(other):
            return NotImplemented
        assert isinstance(other, _BaseVersion)
        return bool(self._key == other._key)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return NotImplemented if equal is NotImplemented else not equal


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
    return _latest_in(releases, version.series)


def _latest_in(releases: Sequence[Release], series: tuple[int, int]) -> Release:
    """The highest release of ``series``; a ValueError when it has none."""
    return max((r for r in releases if r.version.series == series), key=lambda r: r.version)


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
    return _latest_in(releases, next_series)
