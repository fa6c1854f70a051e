"""Version skew between the control plane and its agents: which agent releases a server accepts.

A release may declare the agent releases it accepts (``agents`` in the catalog): how many
minor series an agent may lag behind, and whether one on a newer release is accepted. An
agent inside that window connects; one ahead of the server, when accepted, is shown as
``ahead`` rather than silently online; one outside is refused with a reason that names both
releases and what to do, or, when the window says ``outside = "hold"``, held: it stays
connected, shown as ``held`` with that reason, and is sent nothing but an upgrade into the
window. An agent whose release is not a version of the catalog's grammar (``[product]
versions``) is refused whatever the window: its place in it cannot be known. Pure: a function
of version strings, the catalog's grammar and its series.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from packaging.version import InvalidVersion

from stairway.version_grammars import GrammarName, describe
from stairway.versions import AgentWindow, Version

Series = tuple[int, int]


class Skew(StrEnum):
    """Where an agent's release stands against the server's."""

    SAME = "same"
    BEHIND = "behind"
    AHEAD = "ahead"
    UNKNOWN = "unknown"  # not a version: shown, never compared


@dataclass(frozen=True)
class Verdict:
    """An agent's skew, and why it is refused or held (None: inside the window)."""

    skew: Skew
    refusal: str | None = None
    held: str | None = None  # outside the window, but kept connected under ``outside = "hold"``

    @property
    def accepted(self) -> bool:
        """Whether the agent may connect."""
        return self.refusal is None


def skew(agent: str, server: str, grammar: GrammarName = "pep440") -> Skew:
    """Whether ``agent``'s release is the server's, older or newer, read in ``grammar``."""
    try:
        mine, theirs = Version(agent, grammar), Version(server, grammar)
    except InvalidVersion:
        return Skew.UNKNOWN
    if mine == theirs:
        return Skew.SAME
    return Skew.BEHIND if mine < theirs else Skew.AHEAD


def lag(
    agent: str, server: str, series: Iterable[Series] = (), grammar: GrammarName = "pep440"
) -> int:
    """How many minor series the agent lags: the series newer than the agent's, up to and with
    the server's, among ``series`` (the catalog's releases) and the server's own; 0 when the
    agent is in the server's series or ahead of it."""
    mine, theirs = Version(agent, grammar).series, Version(server, grammar).series
    known = {*series, theirs}
    return sum(1 for one in known if mine < one <= theirs)


def judge(
    agent: str,
    server: str,
    window: AgentWindow | None,
    series: Iterable[Series] = (),
    grammar: GrammarName = "pep440",
) -> Verdict:
    """Whether a server on ``server`` accepts an agent on ``agent`` under ``window`` (None:
    every release is accepted); an agent ahead of it is accepted only when the window allows.
    One outside the window is refused, or held when the window says so; one whose release is
    not a version of ``grammar`` is refused."""
    found = skew(agent, server, grammar)
    if found == Skew.UNKNOWN:
        return Verdict(found, refusal=_unreadable(agent, server, grammar))
    if window is None:
        return Verdict(found)
    why = outside(agent, server, window, series, grammar)
    if why is None:
        return Verdict(found)
    return Verdict(found, held=why) if window.hold else Verdict(found, refusal=why)


def outside(
    agent: str,
    server: str,
    window: AgentWindow,
    series: Iterable[Series] = (),
    grammar: GrammarName = "pep440",
) -> str | None:
    """Why ``agent``'s release lies outside ``window`` of the server on ``server``, naming both
    releases and what to do; None when it lies inside."""
    found = skew(agent, server, grammar)
    if found == Skew.UNKNOWN:
        return _unreadable(agent, server, grammar)
    if found == Skew.AHEAD and not window.ahead:
        said = f"agent release {agent} is newer than the server's {server}, which accepts"
        return f"{said} {window.describe()}; {_fix(server)}"
    behind = lag(agent, server, series, grammar)
    if window.minors_behind is not None and behind > window.minors_behind:
        said = f"agent release {agent} is {behind} minor series behind the server's {server}"
        limit = f"it accepts at most {window.minors_behind}"
        return f"{said}; {limit}; {_fix(server)}"
    return None


def _unreadable(agent: str, server: str, grammar: GrammarName) -> str:
    said = f"agent release {agent!r} is not a version of the catalog's {grammar} grammar"
    return f"{said} (it writes {describe(grammar)}); {_fix(server)}"


def _fix(server: str) -> str:
    return (
        f"install the agent build of {server} on its host "
        f"(`stairway agent install DIR --version {server} --home AGENT_HOME --product NAME`)"
    )
