"""The audit log moved to a new installation while the old one keeps appending: a bulk move and
catch-ups with a writer running, on SQLite and PostgreSQL; the target ends with exactly the
source's entries and `audit verify` passes there. A forked tail, one signed by another key or
by none is refused (exit 2, nothing written); a catch-up run twice imports nothing; an import
killed before its commit leaves the target as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from sqlalchemy import create_engine, insert, select

from cli_runner import stairway
from conftest import new_pg_database
from stairway import audit
from stairway.database import dispose_all, engine_for
from stairway.transfer.export import LogRows, write_log
from test_audit_anchor import append, site_at, verify
from test_audit_carry import logged
from test_import import make_site

SRC = Path(__file__).parents[1] / "src"


@dataclass(frozen=True)
class Pair:
    """A source site and the new installation its audit log moves to."""

    source: Path
    target: Path
    source_url: str
    key: Path  # the source's audit public key


@contextmanager
def second_database(database_url: str, root: Path) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{root / 'second.db'}"
        return
    with new_pg_database() as url:
        yield url


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[Pair]:
    """A source whose log holds 300 entries, an empty target, and the source's key file."""
    yield from make_pair(tmp_path, database_url)


@pytest.fixture
def sqlite_pair(tmp_path: Path, sqlite_database: str) -> Iterator[Pair]:
    """``pair`` on SQLite only: for refusals that do not depend on the database."""
    yield from make_pair(tmp_path, sqlite_database)


def make_pair(tmp_path: Path, database_url: str) -> Iterator[Pair]:
    with second_database(database_url, tmp_path) as other:
        (tmp_path / "s").mkdir()
        (tmp_path / "t").mkdir()
        source = site_at(tmp_path / "s", database_url)
        target = site_at(tmp_path / "t", other)
        fill(database_url, 300)
        key = tmp_path / "source.pub"
        assert stairway("audit", "key", "--out", str(key), "--site", str(source))[0] == 0
        dispose_all()
        yield Pair(source, target, database_url, key)


def fill(url: str, count: int) -> None:
    with engine_for(url).begin() as conn:
        audit.append_many(conn, [("user.login", {"n": n, "note": "é"}) for n in range(count)])


class Writer:
    """A thread appending to the source's log through the library, one entry a transaction,
    until stopped: the old installation still serving."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, connect_args={"timeout": 30} if "sqlite" in url else {})
        self.stop = threading.Event()
        self.written = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.engine.begin() as conn:
                audit.append(conn, "secret.set", {"name": f"w{self.written}"}, actor="ops")
            self.written += 1
            self.stop.wait(0.003)

    def more(self, count: int) -> None:
        """Wait until the writer appended ``count`` more entries."""
        wanted, deadline = self.written + count, time.monotonic() + 30
        while self.written < wanted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.written >= wanted, "the writer is stuck"

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.engine.dispose()


def move(pair: Pair) -> tuple[int, str]:
    code, out, err = stairway(
        "audit", "move", "--to-site", str(pair.target), "--site", str(pair.source), "--json"
    )
    dispose_all()
    return code, out + err


def imported(site: Path) -> list[audit.Entry]:
    return [e for e in logged(site) if "source" in e.data]


def as_in_source(entry: audit.Entry) -> tuple[object, ...]:
    """An imported entry as it was in the source: id, hash, time, who, what, data."""
    source = entry.data["source"]
    data = {k: v for k, v in entry.data.items() if k != "source"}
    return (source["id"], source["hash"], entry.at, entry.actor, entry.action, data)


def source_entries(site: Path) -> list[tuple[object, ...]]:
    return [(e.id, e.hash, e.at, e.actor, e.action, e.data) for e in logged(site)]


def head_of(url: str) -> int:
    with engine_for(url).connect() as conn:
        found = audit.head(conn)
    return found.id if found else 0


def test_a_log_moved_while_appended_to_ends_whole_with_exactly_the_source_entries(
    pair: Pair,
) -> None:
    with Writer(pair.source_url) as writer:
        writer.more(1)
        before, written = head_of(pair.source_url), writer.written
        code, said = move(pair)  # the bulk move
        assert code == 0, said
        bulk = orjson.loads(said)
        assert writer.written > written and bulk["exported"]["entries"] >= before
        code, said = move(pair)  # a catch-up, the writer still appending
        assert code == 0, said
        catch_up = orjson.loads(said)
        assert catch_up["imported"]["before"] == bulk["exported"]["head"]
        writer.more(1)  # appended after the catch-up's checkpoint: for the next one
    final = head_of(pair.source_url)
    assert final > int(catch_up["exported"]["head"].split(":")[0]), "appended meanwhile"
    code, said = move(pair)  # the final catch-up, the writer stopped
    assert code == 0, said
    assert orjson.loads(said)["imported"]["position"].startswith(f"{final}:")

    assert verify(pair.target)[0] == 0, verify(pair.target)[1]
    assert [as_in_source(e) for e in imported(pair.target)] == source_entries(pair.source)
    moves = [e for e in logged(pair.target) if e.action == "audit.import"]
    assert len(moves) == 3 and moves[-1].data["to"] == final  # the target's own entries

    held = logged(pair.target)
    witnesses = [
        site.parent / ".stairway" / "site.audit.witness" for site in (pair.source, pair.target)
    ]
    signed = [w.read_bytes() for w in witnesses]
    code, said = move(pair)  # run again: nothing to import, nothing written
    assert code == 0 and orjson.loads(said)["imported"]["imported"] == 0, said
    code, out, _ = stairway(
        "audit", "move", "--to-site", str(pair.target), "--site", str(pair.source)
    )
    assert code == 0 and "nothing to import" in out, out
    dispose_all()
    assert logged(pair.target) == held
    assert [w.read_bytes() for w in witnesses] == signed


def test_export_position_and_import_by_hand_then_the_same_tail_twice(
    pair: Pair, tmp_path: Path
) -> None:
    bulk, tail = tmp_path / "bulk.zst", tmp_path / "tail.zst"
    assert stairway("audit", "export", "--out", str(bulk), "--site", str(pair.source))[0] == 0
    assert stairway("export", "verify", str(bulk))[0] == 0
    on_target = ("--trust", str(pair.key), "--site", str(pair.target))
    code, out, err = stairway("audit", "import", str(bulk), *on_target)
    assert code == 0 and "300 audit entries imported" in out, out + err
    code, position, _ = stairway("audit", "position", *on_target)
    assert code == 0 and position.startswith("300:"), position
    append(pair.source_url, 4)
    after = ("--after", position.strip())
    code, out, err = stairway(
        "audit", "export", "--out", str(tail), *after, "--site", str(pair.source)
    )
    assert code == 0 and "4 audit entries after entry 300" in out, out + err
    code, out, err = stairway("audit", "import", str(tail), *on_target)
    assert code == 0 and "entries 301..304" in out, out + err
    dispose_all()
    held = logged(pair.target)
    for again in (tail, bulk):  # both already held: nothing imported, nothing written
        code, out, err = stairway("audit", "import", str(again), *on_target)
        assert code == 0 and "nothing to import" in out, out + err
    dispose_all()
    assert logged(pair.target) == held
    assert [as_in_source(e) for e in imported(pair.target)] == source_entries(pair.source)


def test_a_forked_log_signed_with_the_same_key_is_refused_with_both_hashes(
    pair: Pair, tmp_path: Path
) -> None:
    """A clone of the source (its log, witness and key) that went its own way after entry 300."""
    fork_url = f"sqlite:///{tmp_path / 'fork.db'}"
    (tmp_path / "fork").mkdir()
    fork = site_at(tmp_path / "fork", fork_url)
    anchored = pair.source.parent / ".stairway"
    with fork.open("a", encoding="utf-8") as site:
        site.write(f'\n[audit]\nkey_file = "{anchored / "site.audit.key"}"\n')
    (tmp_path / "fork" / ".stairway").mkdir()
    shutil.copy(anchored / "site.audit.witness", tmp_path / "fork" / ".stairway")
    with engine_for(fork_url).begin() as conn:
        audit.ensure_table(conn)
        conn.execute(insert(audit.audit_table), [dict(r) for r in _rows(pair.source_url)])
    append(pair.source_url, 3)
    append(fork_url, 3, 100)
    assert move(pair)[0] == 0
    tail = tmp_path / "fork.zst"
    branch = f"300:{logged(pair.source)[299].hash}"
    export = ("audit", "export", "--out", str(tail), "--after", branch, "--site", str(fork))
    code, out, err = stairway(*export)
    assert code == 0 and "3 audit entries after entry 300" in out, out + err
    dispose_all()
    held = logged(pair.target)
    on_target = ("--trust", str(pair.key), "--site", str(pair.target))
    code, _, err = stairway("audit", "import", str(tail), *on_target)
    expected, got = logged(pair.source)[-1].hash, logged(fork)[-1].hash
    assert expected != got
    assert code == 2 and f"expected previous hash {expected}, got {got}" in err, err
    assert "hint:" in err and "Traceback" not in err
    assert logged(pair.target) == held, "nothing was written"


def test_a_tail_signed_by_another_key_or_by_none_is_refused(pair: Pair, tmp_path: Path) -> None:
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = site_at(other_root, f"sqlite:///{tmp_path / 'other.db'}")
    fill(f"sqlite:///{tmp_path / 'other.db'}", 5)
    tail = tmp_path / "other.zst"
    assert stairway("audit", "export", "--out", str(tail), "--site", str(other))[0] == 0
    on_target = ("--trust", str(pair.key), "--site", str(pair.target))
    code, _, err = stairway("audit", "import", str(tail), *on_target)
    assert code == 2 and "not the trusted" in err and "hint:" in err, err
    unsigned = tmp_path / "unsigned.zst"
    rows = _rows(f"sqlite:///{tmp_path / 'other.db'}")
    write_log(
        unsigned,
        {"product": "people", "audit_after": {"seq": 0, "hash": audit.GENESIS}},
        LogRows(len(rows), rows),
    )
    code, _, err = stairway("audit", "import", str(unsigned), *on_target)
    assert code == 2 and "no signed audit checkpoint" in err, err
    code, _, err = stairway("audit", "import", str(tail), "--site", str(pair.target))
    assert code == 2 and "--trust" in err, err  # without a key: the target's own, not the source's
    dispose_all()
    assert logged(pair.target) == []


def _rows(url: str) -> list[dict[str, object]]:
    with engine_for(url).connect() as conn:
        query = select(audit.audit_table).order_by(audit.audit_table.c.id)
        return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(query)]


BAD = [
    ("audit", "export", "--out", "x.zst", "--after", "12"),
    ("audit", "export", "--out", "x.zst", "--after", "12:zz"),
    ("audit", "export", "--out", "x.zst", "--after", f"9999:{'a' * 64}"),
    ("audit", "export", "--out", "x.zst", "--after", f"3:{'a' * 64}"),
    ("audit", "import", "missing.zst"),
    ("audit", "export", "--out", "no-such-directory/x.zst"),
    ("audit", "position", "--trust", "missing.pem"),
    ("audit", "move", "--to-site", "missing.toml"),
]


def test_bad_positions_and_files_are_refused_with_a_hint(sqlite_pair: Pair, tmp_path: Path) -> None:
    pair = sqlite_pair
    witness = pair.source.parent / ".stairway" / "site.audit.witness"
    signed = witness.read_bytes()
    append(pair.source_url, 1)  # a head a refused export must not sign
    audit.appended_to.clear()  # written by the test, not by a command that ends signing it
    for args in BAD:
        out = [str(tmp_path / a) if a.endswith((".zst", ".pem", ".toml")) else a for a in args]
        code, _, err = stairway(*out, "--site", str(pair.source))
        assert code == 2 and "error:" in err and "hint:" in err, (args, err)
        assert "Traceback" not in err and not (tmp_path / "x.zst").exists(), args
        assert witness.read_bytes() == signed, args
    assert witness.read_bytes() == signed, "a refused export signs nothing"


def test_an_object_export_and_an_audit_tail_do_not_pass_for_each_other(
    sqlite_pair: Pair, tmp_path: Path
) -> None:
    pair = sqlite_pair
    tail, full = tmp_path / "tail.zst", tmp_path / "full.zst"
    assert stairway("audit", "export", "--out", str(tail), "--site", str(pair.source))[0] == 0
    installed = make_site(tmp_path / "full", f"sqlite:///{tmp_path / 'full.db'}", "1.0.0")
    code, _, err = stairway("import", str(tail), "--site", str(installed))
    assert code == 2 and "audit tail" in err and "stairway audit import" in err, err
    assert stairway("export", "--out", str(full), "--site", str(installed))[0] == 0
    code, _, err = stairway("audit", "import", str(full), "--site", str(pair.target))
    assert code == 2 and "not an audit tail" in err and "hint:" in err, err


def test_an_import_killed_before_its_commit_leaves_the_target_as_it_was(
    pair: Pair, tmp_path: Path
) -> None:
    tail = tmp_path / "tail.zst"
    assert stairway("audit", "export", "--out", str(tail), "--site", str(pair.source))[0] == 0
    dispose_all()
    command = [sys.executable, "-m", "stairway", "audit", "import", str(tail)]
    command += ["--trust", str(pair.key), "--site", str(pair.target)]
    env = os.environ | {"PYTHONPATH": str(SRC), "STAIRWAY_FAULT": "before:audit-import-commit"}
    killed = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert imported(pair.target) == [] and logged(pair.target) == []
    code, out, err = stairway(*command[3:])  # run again, in process: it all goes in
    assert code == 0 and "300 audit entries imported" in out, out + err
    dispose_all()
    assert len(imported(pair.target)) == 300


def test_a_move_continues_where_a_full_import_left_off(
    tmp_path: Path, sqlite_database: str
) -> None:
    source = make_site(tmp_path / "s", sqlite_database, "1.0.0")
    target = make_site(tmp_path / "t", f"sqlite:///{tmp_path / 't.db'}", "1.0.0")
    fill(sqlite_database, 20)
    full, key = tmp_path / "full.zst", tmp_path / "source.pub"
    assert stairway("export", "--out", str(full), "--site", str(source))[0] == 0
    assert stairway("audit", "key", "--out", str(key), "--site", str(source))[0] == 0
    assert stairway("import", str(full), "--trust", str(key), "--site", str(target))[0] == 0
    dispose_all()
    append(sqlite_database, 3)
    code, out, err = stairway("audit", "move", "--to-site", str(target), "--site", str(source))
    assert code == 0 and out.startswith("3 audit entries imported"), out + err
    dispose_all()
    assert [as_in_source(e) for e in imported(target)] == source_entries(source)
    assert verify(target)[0] == 0
