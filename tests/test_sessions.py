"""Sessions in a real Redis across a rolling upgrade: a newer instance migrates and re-stamps an
older session, an older instance refuses a newer one and never writes it back."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest
import redis

from stairway.sessions import SessionError, SessionStore, SessionTooNew


def add_roles(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "roles": ["user"]}


def rename_user(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["subject"] = data.pop("user")
    return data


def stores(redis_prefix: tuple[Any, str]) -> tuple[SessionStore, SessionStore, SessionStore]:
    client, prefix = redis_prefix
    old = SessionStore(client, prefix, 1)
    middle = SessionStore(client, prefix, 2, {1: add_roles})
    new = SessionStore(client, prefix, 3, {1: add_roles, 2: rename_user})
    return old, middle, new


def stamp(client: redis.Redis, store: SessionStore, session_id: str) -> tuple[int, int]:
    raw = client.get(store.key(session_id))
    assert raw is not None
    return int(orjson.loads(raw)["v"]), int(client.ttl(store.key(session_id)))


def test_a_newer_instance_migrates_an_older_session_step_by_step_and_re_stamps_it(
    redis_prefix: tuple[Any, str],
) -> None:
    client, _ = redis_prefix
    old, _middle, new = stores(redis_prefix)
    session = old.create({"user": "ada"})
    assert old.read(session) == {"user": "ada"}
    assert new.read(session) == {"subject": "ada", "roles": ["user"]}
    version, ttl = stamp(client, new, session)
    assert version == 3 and 0 < ttl <= old.ttl, "re-stamped, its expiry kept"
    assert new.read(session) == {"subject": "ada", "roles": ["user"]}


def test_an_older_instance_refuses_a_newer_session_and_leaves_it_as_it_is(
    redis_prefix: tuple[Any, str],
) -> None:
    client, _ = redis_prefix
    old, _middle, new = stores(redis_prefix)
    session = new.create({"subject": "ada", "roles": ["admin"]})
    before = client.get(new.key(session))
    with pytest.raises(SessionTooNew, match="format 3; this instance reads up to 1"):
        old.read(session)
    with pytest.raises(SessionTooNew):
        old.write(session, {"user": "mallory"})
    assert client.get(new.key(session)) == before, "never corrupted"
    assert old.read("no-such-session") is None


def test_old_writes_race_a_new_reader_and_the_format_never_goes_back(
    redis_prefix: tuple[Any, str],
) -> None:
    client, _ = redis_prefix
    old, middle, _new = stores(redis_prefix)
    session = old.create({"user": "ada", "n": 0})
    seen: list[int] = []
    refused = threading.Event()

    def old_writer() -> None:
        for n in range(300):
            try:
                old.write(session, {"user": "ada", "n": n})
            except SessionTooNew:
                refused.set()

    def new_reader() -> None:
        for _ in range(300):
            data = middle.read(session)
            assert data is not None and data["roles"] == ["user"]
            seen.append(stamp(client, middle, session)[0])

    threads = [threading.Thread(target=old_writer), threading.Thread(target=new_reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert refused.is_set(), "once migrated, the old instance may not write it"
    assert seen and all(v == 2 for v in seen[seen.index(2) :])
    assert stamp(client, middle, session)[0] == 2


def test_a_store_without_every_step_and_a_foreign_entry_are_refused(
    redis_prefix: tuple[Any, str],
) -> None:
    client, prefix = redis_prefix
    with pytest.raises(ValueError, match="no session migration from format 2 to 3"):
        SessionStore(client, prefix, 3, {1: add_roles})
    store = SessionStore(client, prefix, 1)
    client.set(store.key("junk"), b"not json")
    with pytest.raises(SessionError, match="not a stamped session entry"):
        store.read("junk")
