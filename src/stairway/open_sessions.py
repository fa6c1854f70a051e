"""The user sessions open on a site before an offline upgrade: counted, waited for, or ended.

An offline upgrade stops the product, which ends every session it serves. ``site.toml``'s
``[sessions]`` table says where they are: the Redis session store (its prefix, or a key
pattern), or a product hook ``module:function`` returning how many are open (and another that
ends them). ``verify`` reports the count; ``upgrade --drain-sessions SECONDS`` waits for them
to close, with a notice published for the product to show; ``upgrade --end-sessions`` ends
those left, after the notice. What was done is an ``SessionOutcome``, shown and journaled.

Waiting is ``drain``, a plain loop over a count, a clock and a sleep: tested without Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import redis

from stairway.errors import SessionError, UpgradeError
from stairway.hooks import HookNotFound, find_hook
from stairway.sessions import SessionKeys
from stairway.site import SessionsSection

T = TypeVar("T")
POLL = 0.2  # seconds between two counts while waiting for sessions to close
TICK = 0.01


class OpenSessionsError(SessionError):
    """The open sessions cannot be counted or ended: the store does not answer, or a product
    hook fails; nothing was changed by the call that raised it."""


class SessionSource(Protocol):
    """Where a site's open sessions are counted, and ended with a notice."""

    def count(self) -> int:
        """How many sessions are open now."""
        ...

    def post(self, notice: str) -> None:
        """Publish ``notice`` for the product to show its signed-in users."""
        ...

    def withdraw(self) -> None:
        """Remove the notice: what it announced is not going to happen."""
        ...

    def end(self, notice: str) -> int:
        """End every open session (the notice was published first); how many were ended."""
        ...


class SessionMode(StrEnum):
    """What an upgrade did about the open sessions."""

    COUNTED = "counted"  # neither wait nor end was asked: the stop ends them
    DRAINED = "drained"  # they closed while the upgrade waited
    ENDED = "ended"  # those left were ended after the notice


@dataclass(frozen=True)
class SessionPolicy:
    """What an upgrade is asked to do: wait up to ``drain`` seconds, then ``end`` those left."""

    drain: float | None = None
    end: bool = False

    @property
    def asked(self) -> bool:
        """Whether the upgrade is to do anything about sessions beyond counting them."""
        return self.drain is not None or self.end


LEAVE = SessionPolicy()  # count them only: the stop ends them


@dataclass(frozen=True)
class SessionOutcome:
    """What an upgrade did: how many were open, how long it waited, how many it ended or left.

    Attributes:
        mode: Counted, drained or ended.
        open: Sessions open when the upgrade began.
        remained: Sessions still open when the upgrade went on (the stop ends them).
        ended: Sessions the upgrade ended after the notice.
        waited: Seconds the upgrade waited for sessions to close.
    """

    mode: SessionMode
    open: int
    remained: int = 0
    ended: int = 0
    waited: float = 0.0

    def describe(self) -> str:
        """One line for the upgrade's output."""
        if self.mode is SessionMode.ENDED:
            closed = (
                f", {self.open - self.ended} closed in {self.waited:.1f} s" if self.waited else ""
            )
            return f"sessions: {self.ended} ended with notice{closed}"
        if self.mode is SessionMode.DRAINED:
            return f"sessions: {self.open} open, all closed in {self.waited:.1f} s"
        return f"sessions: {self.open} open, ended by the stop"

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SessionOutcome:
        """The outcome the journal holds as ``value``."""
        return cls(
            SessionMode(value["mode"]),
            int(value["open"]),
            int(value.get("remained", 0)),
            int(value.get("ended", 0)),
            float(value.get("waited", 0.0)),
        )

    def as_json(self) -> dict[str, Any]:
        """The outcome as the journal and ``--json`` hold it."""
        return {
            "mode": str(self.mode),
            "open": self.open,
            "remained": self.remained,
            "ended": self.ended,
            "waited": round(self.waited, 3),
        }


def drain(
    count: Callable[[], int],
    seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, float]:
    """Count until none is open or ``seconds`` have passed; the last count and the time waited."""
    started = clock()
    deadline = started + seconds
    left = count()
    while left and clock() < deadline:
        sleep(max(TICK, min(POLL, deadline - clock())))  # a tick at least: time moves on
        left = count()
    return left, clock() - started


def source_for(section: SessionsSection | None, product: str) -> SessionSource | None:
    """The site's session source, or None without a ``[sessions]`` table."""
    if section is None:
        return None
    if section.count is not None:
        return _HookSessions(section.count, section.end, _redis_keys(section, product))
    keys = _redis_keys(section, product)
    assert keys is not None  # the table names a store or a count hook (SessionsSection)
    return _RedisSessions(keys)


def _redis_keys(section: SessionsSection, product: str) -> SessionKeys | None:
    if section.redis is None:
        return None
    client = redis.Redis.from_url(section.redis, socket_timeout=5, socket_connect_timeout=5)
    return SessionKeys(client, section.prefix or product, section.pattern or "")


@dataclass(frozen=True)
class _RedisSessions:
    """Sessions in the Redis store: counted by key, ended by deleting the keys."""

    keys: SessionKeys

    def count(self) -> int:
        return _answered(self.keys.count)

    def post(self, notice: str) -> None:
        _answered(lambda: self.keys.post_notice(notice))

    def withdraw(self) -> None:
        _answered(self.keys.withdraw_notice)

    def end(self, notice: str) -> int:
        return _answered(self.keys.end_all)


@dataclass(frozen=True)
class _HookSessions:
    """Sessions the product counts (and ends) itself; the notice goes to Redis when named."""

    count_hook: str
    end_hook: str | None
    keys: SessionKeys | None

    def count(self) -> int:
        found = _call(self.count_hook)
        if not isinstance(found, int) or isinstance(found, bool) or found < 0:
            raise OpenSessionsError(
                f"the session count hook {self.count_hook} returned {found!r}, not a count",
                hint="return how many user sessions are open, an int of 0 or more",
            )
        return found

    def post(self, notice: str) -> None:
        if self.keys is not None:
            keys = self.keys
            _answered(lambda: keys.post_notice(notice))

    def withdraw(self) -> None:
        if self.keys is not None:
            _answered(self.keys.withdraw_notice)

    def end(self, notice: str) -> int:
        if self.end_hook is None:
            if self.keys is None:
                raise OpenSessionsError(
                    "[sessions] names no end hook and no Redis store: they cannot be ended",
                    hint='add end = "module:function" to [sessions] in site.toml',
                )
            return _answered(self.keys.end_all)
        ended = _call(self.end_hook, notice)
        return ended if isinstance(ended, int) and not isinstance(ended, bool) else 0


def _answered(call: Callable[[], T]) -> T:
    try:
        return call()
    except redis.RedisError as err:
        raise OpenSessionsError(
            f"the session store does not answer: {err}",
            hint="start Redis or fix [sessions] redis in site.toml; nothing was changed",
        ) from None


def _call(hook: str, *args: object) -> object:
    try:
        found = find_hook(hook)
    except HookNotFound as err:
        raise OpenSessionsError(
            f"the session hook {hook}: {err}",
            hint="name a function of the product's module in [sessions] of site.toml"
            if err.imports
            else "install the product's module, or fix [sessions] in site.toml",
        ) from None
    try:
        return found(*args)
    except Exception as err:
        raise OpenSessionsError(
            f"the session hook {hook} failed: {err}", hint="fix the product's hook"
        ) from None


@dataclass(frozen=True)
class Drained:
    """Sessions before the upgrade's backup: open when it began, left after the wait."""

    open: int
    left: int
    waited: float


def wait_before_upgrade(
    source: SessionSource | None, policy: SessionPolicy, notice: str, target: str
) -> Drained | None:
    """Count the open sessions and, with ``policy.drain``, wait for them after publishing the
    notice; None without a ``[sessions]`` table.

    Raises:
        UpgradeError: Waiting or ending was asked of a site without ``[sessions]``, or
            sessions are still open after the wait and ending them was not asked (the notice
            is withdrawn: nothing was changed).
        OpenSessionsError: The sessions cannot be counted.
    """
    if source is None:
        if policy.asked:
            raise UpgradeError(
                "--drain-sessions and --end-sessions need to know where the sessions are",
                hint="add a [sessions] table to site.toml (redis = URL, or a count hook); "
                "nothing was changed",
            )
        return None
    opened = source.count()
    if policy.drain is None or not opened:
        return Drained(opened, opened, 0.0)
    source.post(notice)
    left, waited = drain(source.count, policy.drain)
    if left and not policy.end:
        source.withdraw()
        raise UpgradeError(
            f"{left} of {opened} user session(s) still open after waiting {policy.drain:g} s "
            f"for them to close; the upgrade to {target} did not start and nothing was changed",
            hint="wait longer (--drain-sessions SECONDS), or add --end-sessions to end those "
            "left with notice",
            target=target,
        )
    return Drained(opened, left, waited)


def end_before_upgrade(
    source: SessionSource | None, policy: SessionPolicy, notice: str, drained: Drained | None
) -> SessionOutcome | None:
    """End the sessions left when ``policy.end`` asks it (the notice first); what was done."""
    if source is None or drained is None:
        return None
    if not policy.end or not drained.left:
        mode = SessionMode.DRAINED if policy.drain is not None else SessionMode.COUNTED
        return SessionOutcome(mode, drained.open, drained.left, 0, drained.waited)
    source.post(notice)
    ended = source.end(notice)
    return SessionOutcome(SessionMode.ENDED, drained.open, 0, ended, drained.waited)
