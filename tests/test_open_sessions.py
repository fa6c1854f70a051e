"""Open user sessions before an offline upgrade, on a real Redis: ``verify`` counts them, and
``upgrade`` waits for them to close, refuses when some are left, or ends them with notice."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from cli_runner import stairway
from conftest import REDIS_URL
from stairway.journal import Journal
from stairway.open_sessions import drain
from test_upgrade import build_site, fingerprint


@pytest.fixture
def site(tmp_path: Path, sqlite_database: str, redis_prefix: tuple[Any, str]) -> Path:
    """A people site at 1.0.0 whose sessions are under this test's own Redis prefix."""
    path = build_site(tmp_path, sqlite_database, service=False)
    _, prefix = redis_prefix
    with path.open("a", encoding="utf-8") as table:
        table.write(f'\n[sessions]\nredis = "{REDIS_URL}"\nprefix = "{prefix}"\n')
    return path


def open_sessions(redis_prefix: tuple[Any, str], count: int) -> list[str]:
    client, prefix = redis_prefix
    keys = [f"{prefix}:session:user-{n}" for n in range(count)]
    for key in keys:
        client.set(key, b'{"v": 1, "data": {}}', ex=600)
    return keys


def test_drain_counts_until_none_is_left_or_the_time_is_up() -> None:
    counts, now = iter([3, 2, 0]), [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    assert drain(lambda: next(counts), 10, sleep, lambda: now[0]) == (0, pytest.approx(0.4))
    assert drain(lambda: 2, 1, sleep, lambda: now[0])[0] == 2


def test_verify_says_how_many_sessions_are_open(site: Path, redis_prefix: tuple[Any, str]) -> None:
    open_sessions(redis_prefix, 3)
    code, out, err = stairway("verify", "--to", "2.0.0", "--site", str(site), "--json")
    assert code == 0, err
    found = [f for f in orjson.loads(out)["findings"] if f["topic"] == "sessions"]
    assert found[0]["count"] == 3 and "--drain-sessions" in found[0]["hint"]


def test_the_upgrade_waits_for_the_sessions_to_close(
    site: Path, redis_prefix: tuple[Any, str]
) -> None:
    client, prefix = redis_prefix
    keys = open_sessions(redis_prefix, 3)

    def users_sign_out() -> None:  # once the notice is up, while the upgrade waits
        deadline = time.monotonic() + 10
        while client.get(f"{prefix}:notice") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        client.delete(*keys)

    signing_out = threading.Thread(target=users_sign_out)
    signing_out.start()
    code, out, err = stairway(
        "upgrade", "--to", "2.0.0", "--drain-sessions", "15", "--site", str(site)
    )
    signing_out.join()
    assert code == 0, err
    assert "sessions: 3 open, all closed in" in out
    recorded = Journal(site.parent / "backups").history()[-1].plan["sessions"]
    assert recorded["mode"] == "drained" and recorded["open"] == 3 and recorded["remained"] == 0
    assert 0.3 < recorded["waited"] < 15


def test_sessions_left_after_the_wait_refuse_the_upgrade_and_change_nothing(
    site: Path, redis_prefix: tuple[Any, str]
) -> None:
    client, prefix = redis_prefix
    keys = open_sessions(redis_prefix, 2)
    before = fingerprint(site)
    code, out, err = stairway(
        "upgrade", "--to", "2.0.0", "--drain-sessions", "0.5", "--site", str(site)
    )
    assert code == 2, out + err
    assert "error: 2 of 2 user session(s) still open after waiting 0.5 s" in err
    assert "nothing was changed" in err and "hint:" in err and "--end-sessions" in err
    assert "Traceback" not in err
    assert fingerprint(site) == before
    assert client.exists(*keys) == 2
    assert client.get(f"{prefix}:notice") is None  # the notice was taken back
    assert not list((site.parent / "backups").glob("*.tar*"))


def test_end_sessions_ends_them_after_a_notice_and_says_how_many(
    site: Path, redis_prefix: tuple[Any, str]
) -> None:
    client, prefix = redis_prefix
    keys = open_sessions(redis_prefix, 4)
    code, out, err = stairway(
        "upgrade", "--to", "2.0.0", "--end-sessions", "--site", str(site), "--json"
    )
    assert code == 0, err
    said = orjson.loads(out)["sessions"]
    assert said == {"mode": "ended", "open": 4, "remained": 0, "ended": 4, "waited": 0.0}
    assert client.exists(*keys) == 0
    assert b"being upgraded" in client.get(f"{prefix}:notice")
    recorded = Journal(site.parent / "backups").history()[-1].plan["sessions"]
    assert recorded["ended"] == 4


def test_end_sessions_calls_the_product_hook(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "product_sessions.py").write_text(
        "ENDED = []\n"
        "def count():\n    return 0 if ENDED else 2\n"
        "def end(notice):\n    ENDED.append(notice)\n    return 2\n",
        "utf-8",
    )
    monkeypatch.syspath_prepend(str(hooks))
    text = site.read_text("utf-8").split("[sessions]")[0]
    site.write_text(
        text + '[sessions]\ncount = "product_sessions:count"\nend = "product_sessions:end"\n'
        'notice = "Back in five minutes."\n',
        "utf-8",
    )
    code, out, err = stairway("upgrade", "--to", "2.0.0", "--end-sessions", "--site", str(site))
    assert code == 0, err
    assert "sessions: 2 ended with notice" in out
    assert sys.modules["product_sessions"].ENDED == ["Back in five minutes."]


def test_session_flags_without_a_sessions_table_are_refused(site: Path) -> None:
    site.write_text(site.read_text("utf-8").split("[sessions]")[0], "utf-8")
    before = fingerprint(site)
    code, _, err = stairway("upgrade", "--to", "2.0.0", "--end-sessions", "--site", str(site))
    assert code == 2
    assert "error:" in err and "hint:" in err and "[sessions]" in err
    assert fingerprint(site) == before


def test_an_unreachable_store_is_a_refusal_not_a_traceback(site: Path) -> None:
    text = site.read_text("utf-8").replace(REDIS_URL, "redis://127.0.0.1:1/0")
    site.write_text(text, "utf-8")
    code, _, err = stairway(
        "upgrade", "--to", "2.0.0", "--drain-sessions", "5", "--site", str(site)
    )
    assert code == 2
    assert "error: the session store does not answer" in err and "hint:" in err
