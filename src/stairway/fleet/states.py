"""An agent's states and the one table of how they may change.

Every change of an agent's state names the event that causes it; the table says, for each
event, which states it may happen in and the state it leads to. An event in a state the table
does not list is impossible (an upgrade failure reported by an agent that was sent no upgrade,
an upgrade sent to an agent that is not connected) and is refused with ``TransitionRefused``;
nothing is written. Pure: no database, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from stairway.errors import TransitionRefused


class State(StrEnum):
    """Where an agent is, as the operator sees it on the Agents page."""

    ONLINE = "online"  # connected, said hello
    OFFLINE = "offline"
    UPGRADING = "upgrading"  # an upgrade was sent; waiting for hello with the target
    PENDING = "pending upgrade"  # cannot reach the artifact URL: upgrade it by hand
    FAILED = "failed"  # the agent refused the build or went back to its previous one
    NO_SIGNAL = "no signal"  # silent past the deadline: neither success nor failure
    REFUSED = "refused"  # its protocol or release lies outside what the release accepts
    AHEAD = "ahead"  # connected on a newer release than the server's, which accepts it
    HELD = "held"  # connected outside the window under ``outside = "hold"``: only upgraded


class Event(StrEnum):
    """What happened to an agent, which moves it from one state to the next."""

    HELLO = "hello"  # a hello on a version that completes no upgrade
    ARRIVED = "hello on the target"  # a hello on the version it was being upgraded to
    ROLLED_BACK = "hello after a rollback"  # the previous build is back and says why
    AHEAD = "hello on a newer release than the server's"
    HELD = "hello on a release outside the window, held"
    PROTOCOL_REFUSED = "a protocol outside the release's range"
    RELEASE_REFUSED = "a release outside the agent releases the server accepts"
    UPGRADE_SENT = "an upgrade sent"
    UNREACHABLE = "an upgrade it cannot download"
    BUILD_REFUSED = "an upgrade it refused"
    SILENT = "silence past the deadline"
    GONE = "a disconnect"


_ANY = tuple(State)
_TRYING = (State.UPGRADING, State.NO_SIGNAL, State.PENDING)  # an upgrade is on its way
_IDLE = (State.OFFLINE, State.ONLINE, State.REFUSED, State.AHEAD, State.HELD)  # none under way


def _all(to: State, sources: tuple[State, ...] = _ANY) -> dict[State, State]:
    return dict.fromkeys(sources, to)


def _stay(*states: State) -> dict[State, State]:
    return {state: state for state in states}


TRANSITIONS: Mapping[Event, Mapping[State, State]] = MappingProxyType(
    {
        # a plain hello brings an idle agent online; one that is mid-upgrade or failed stays so
        Event.HELLO: _all(State.ONLINE, _IDLE) | _stay(*_TRYING, State.FAILED),
        Event.ARRIVED: _all(State.ONLINE, (*_IDLE, *_TRYING))
        | _stay(State.FAILED),  # a failed version stays pinned until the operator resends it
        # an agent newer than the server is flagged, never taken for an online one
        Event.AHEAD: _all(State.AHEAD, _IDLE) | _stay(*_TRYING, State.FAILED),
        # an agent outside the window is kept, flagged; a hello inside it brings it online
        Event.HELD: _all(State.HELD, _IDLE) | _stay(*_TRYING, State.FAILED),
        Event.ROLLED_BACK: _all(State.FAILED),
        Event.PROTOCOL_REFUSED: _all(State.REFUSED),
        Event.RELEASE_REFUSED: _all(State.REFUSED),
        # the operator may resend to an agent that failed, went silent or could not download;
        # a held agent is sent the server's release, which brings it into the window
        Event.UPGRADE_SENT: _all(
            State.UPGRADING, (State.ONLINE, State.HELD, State.FAILED, *_TRYING)
        ),
        Event.UNREACHABLE: _all(State.PENDING, _TRYING),
        Event.BUILD_REFUSED: _all(State.FAILED, _TRYING),
        Event.SILENT: _all(State.NO_SIGNAL, (State.UPGRADING,)),
        # only an online agent goes offline: an upgrade in flight disconnects by design
        Event.GONE: _all(State.OFFLINE, (State.ONLINE, State.AHEAD, State.HELD))
        | _stay(*_TRYING, State.FAILED, State.OFFLINE, State.REFUSED),
    }
)


def allowed(state: State, event: Event) -> bool:
    """Whether ``event`` may happen to an agent in ``state``."""
    return state in TRANSITIONS[event]


def after(agent_id: str, state: State, event: Event) -> State:
    """The state ``event`` leads to from ``state``; refused when the table has no such move."""
    found = TRANSITIONS[event].get(state)
    if found is None:
        raise TransitionRefused(agent_id, state.value, event.value)
    return found


def sources(event: Event) -> list[State]:
    """The states ``event`` may happen in, for updates of many rows at once."""
    return list(TRANSITIONS[event])
