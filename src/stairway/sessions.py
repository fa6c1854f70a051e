"""Sessions in Redis that survive a rolling upgrade, shared by old and new instances.

Every entry is stamped with the session format version of the release that wrote it. A newer
instance that reads an older session migrates it, step by step through the product's
migrations, and writes it back re-stamped; an older instance that meets a newer session refuses
it (``SessionTooNew``: send the client to log in again, or route it to a new instance) and never
writes it, so an old instance can never turn a migrated session back into the old format. Writes
are compare-and-set on the stored version (Redis WATCH), so two instances never overwrite each
other's format.

A product gives its format version and one function per step up::

    store = SessionStore(redis, "identity-sync", version=2, migrations={1: add_roles})

Before an offline upgrade the open sessions are counted, waited for, or ended with a notice the
product shows (``SessionKeys``, which ``SessionStore.keys`` gives): every key is
``PREFIX:session:ID`` and the notice is ``PREFIX:notice``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from stairway.errors import SessionError, SessionTooNew, SessionUnreadable

Migration = Callable[[dict[str, Any]], dict[str, Any]]  # format N -> format N + 1
TTL = 8 * 3600


__all__ = [
    "Migration",
    "SessionError",
    "SessionKeys",
    "SessionStore",
    "SessionTooNew",
    "SessionUnreadable",
]


@dataclass(frozen=True)
class SessionKeys:
    """Where a product's sessions and its notice to their users are kept, whatever their format.

    Attributes:
        client: The Redis connection.
        prefix: The first part of every key, usually the product's name.
        pattern: The keys that are sessions (a Redis glob); ``PREFIX:session:*`` unless given.
    """

    client: redis.Redis
    prefix: str
    pattern: str = ""

    @property
    def glob(self) -> str:
        """The Redis glob that matches every session key."""
        return self.pattern or f"{self.prefix}:session:*"

    @property
    def notice_key(self) -> str:
        """The key holding the notice a product shows its signed-in users."""
        return f"{self.prefix}:notice"

    def key(self, session_id: str) -> str:
        """The Redis key that holds session ``session_id``."""
        return f"{self.prefix}:session:{session_id}"

    def count(self) -> int:
        """How many sessions are open now (expired ones are gone from Redis)."""
        return sum(1 for _ in self.client.scan_iter(match=self.glob, count=500))

    def end_all(self) -> int:
        """Delete every session (their users must log in again); how many were deleted."""
        ended = 0
        for batch in _batches(self.client.scan_iter(match=self.glob, count=500)):
            ended += int(self.client.delete(*batch))
        return ended

    def post_notice(self, message: str, ttl: int = 3600) -> None:
        """Publish ``message`` for the product to show every signed-in user (an hour by
        default)."""
        self.client.set(self.notice_key, message, ex=ttl)

    def notice(self) -> str | None:
        """The notice published now, or None."""
        raw = self.client.get(self.notice_key)
        return raw.decode() if isinstance(raw, bytes) else raw

    def withdraw_notice(self) -> None:
        """Remove the notice: what it announced is not going to happen."""
        self.client.delete(self.notice_key)


def _batches(keys: Iterable[Any], size: int = 500) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class SessionStore:
    """A product's sessions in Redis, each stamped with the format version that wrote it.

    Attributes:
        client: The Redis connection.
        prefix: The first part of every key (``PREFIX:session:ID``), usually the product's name.
        version: The session format this release reads and writes, from 1 up.
        migrations: For every older format N, the function that turns a session of format N
            into format N + 1; one is required for each of 1 .. ``version`` - 1.
        ttl: Seconds a session lives after it is created or written (eight hours by default).

    Raises:
        ValueError: A migration from one of the older formats is missing.
    """

    client: redis.Redis
    prefix: str
    version: int
    migrations: dict[int, Migration] = field(default_factory=dict)
    ttl: int = TTL

    def __post_init__(self) -> None:
        missing = [v for v in range(1, self.version) if v not in self.migrations]
        if missing:
            raise ValueError(f"no session migration from format {missing[0]} to {missing[0] + 1}")

    @property
    def keys(self) -> SessionKeys:
        """The store's keys: how many sessions are open, the notice to their users."""
        return SessionKeys(self.client, self.prefix)

    def key(self, session_id: str) -> str:
        """The Redis key that holds session ``session_id``."""
        return self.keys.key(session_id)

    def create(self, data: dict[str, Any]) -> str:
        """Store a new session of this release's format and return its new random id.

        Args:
            data: The session's content, a dict that serialises to JSON.
        """
        session_id = secrets.token_urlsafe(24)
        self.client.set(self.key(session_id), self._encode(data), ex=self.ttl)
        return session_id

    def read(self, session_id: str) -> dict[str, Any] | None:
        """The session in this release's format; None when there is none (expired, logged out).

        A session of an older format is migrated and written back re-stamped, unless another
        instance wrote it meanwhile (then it is read again).

        Args:
            session_id: The id ``create`` returned.

        Raises:
            SessionTooNew: A newer release wrote the session; it is left as it is.
            SessionUnreadable: The entry under the key is not a stamped session.
        """
        key = self.key(session_id)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = pipe.get(key)
                    if raw is None:
                        return None
                    version, data = self._decode(raw, session_id)
                    if version == self.version:
                        return data
                    migrated = self._migrate(version, data)
                    pipe.multi()
                    pipe.set(key, self._encode(migrated), keepttl=True)
                    pipe.execute()
                    return migrated
                except redis.WatchError:
                    continue  # another instance wrote it meanwhile: read again

    def write(self, session_id: str, data: dict[str, Any]) -> None:
        """Replace the session with ``data`` in this release's format, resetting its lifetime.

        Args:
            session_id: The id ``create`` returned.
            data: The session's new content.

        Raises:
            SessionTooNew: A newer release has taken the session over; it is left as it is.
            SessionUnreadable: The entry under the key is not a stamped session.
        """
        key = self.key(session_id)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = pipe.get(key)
                    if raw is not None:
                        self._check_not_newer(self._decode(raw, session_id)[0], session_id)
                    pipe.multi()
                    pipe.set(key, self._encode(data), ex=self.ttl)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def delete(self, session_id: str) -> None:
        """Remove the session (log out); nothing happens when there is none."""
        self.client.delete(self.key(session_id))

    def _encode(self, data: dict[str, Any]) -> bytes:
        return orjson.dumps({"v": self.version, "data": data})

    def _decode(self, raw: bytes | str, session_id: str) -> tuple[int, dict[str, Any]]:
        try:
            entry = orjson.loads(raw)
            version, data = int(entry["v"]), entry["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise SessionUnreadable(
                f"session {session_id[:6]}... is not a stamped session entry",
                hint="it was written by something else under this prefix: log in again",
            ) from None
        if not isinstance(data, dict):
            raise SessionUnreadable(
                f"session {session_id[:6]}... holds no data", hint="log in again"
            )
        self._check_not_newer(version, session_id)
        return version, data

    def _check_not_newer(self, version: int, session_id: str) -> None:
        if version > self.version:
            raise SessionTooNew(
                f"session {session_id[:6]}... has format {version}; this instance reads up to "
                f"{self.version}",
                hint="send the client to log in again or to an instance of the newer release; "
                "the session was left as it is",
                found=version,
                reads=self.version,
            )

    def _migrate(self, version: int, data: dict[str, Any]) -> dict[str, Any]:
        for step in range(version, self.version):
            data = self.migrations[step](dict(data))
        return data
