"""``stairway export`` and ``export verify`` on SQLite and PostgreSQL: a checked file, resumed
after a kill with every object exactly once, and every kind of damage named by the check."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from cli_runner import stairway
from stairway import context, operations
from stairway.database import dispose_all
from stairway.transfer.format import check, line, records
from stairway.transfer.shards import Shard

CATALOG = Path(__file__).parent / "catalogs" / "people"
OBJECTS = 2_500


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Path:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "site.toml"
    path.write_text(f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\n', "utf-8")
    ctx = context.open_context(path, None)
    operations.init(ctx, "1.0.0")
    fill(ctx.engine, OBJECTS)
    dispose_all()
    return path


def fill(engine: object, count: int) -> None:
    with engine.begin() as conn:  # type: ignore[attr-defined]
        rows = [
            {
                "o": f"u{n:06d}",
                "t": "User" if n % 3 else "Role",
                "d": orjson.dumps({"fullName": f"User {n}", "n": n}).decode(),
            }
            for n in range(count)
        ]
        conn.execute(text("INSERT INTO objects VALUES (:o, :t, :d, '1.0.0')"), rows)


def exported_ids(path: Path) -> list[str]:
    found = []
    for _, raw in records(path):
        record = orjson.loads(raw)
        if record["kind"] == "object":
            found.append(record["id"])
    return found


def test_export_writes_a_file_that_checks_out(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "site.export.zst"
    code, said, err = stairway("export", "--out", str(out), "--chunk", "1000", "--site", str(site))
    assert code == 0, err
    assert "exported 2,500 objects and 0 audit entries in 3 chunks" in said
    code, said, err = stairway("export", "verify", str(out), "--json")
    assert code == 0, err
    summary = orjson.loads(said)
    assert summary["ok"] and summary["counts"] == {"User": 1666, "Role": 834}
    ids = exported_ids(out)
    assert ids == sorted(ids) and len(set(ids)) == OBJECTS, "stable id order, each once"
    first = next(orjson.loads(raw) for _, raw in records(out) if b'"object"' in raw)
    assert first["written_by"] == "1.0.0" and first["data"]["fullName"], "exported as stored"
    assert not out.with_name(out.name + ".progress").exists()


def test_an_existing_file_is_not_overwritten(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken.zst"
    out.write_bytes(b"mine")
    code, _, err = stairway("export", "--out", str(out), "--site", str(site))
    assert code == 2 and "already exists" in err and out.read_bytes() == b"mine"


def test_a_killed_export_resumes_with_every_object_exactly_once(site: Path, tmp_path: Path) -> None:
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        conn.execute(text("DELETE FROM objects"))
    fill(ctx.engine, 60_000)
    dispose_all()
    out = tmp_path / "big.export.zst"
    progress = out.with_name(out.name + ".part-1.progress")
    command = [sys.executable, "-m", "stairway", "export", "--out", str(out), "--chunk", "500"]
    child = subprocess.Popen([*command, "--site", str(site)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        if progress.exists() and orjson.loads(progress.read_bytes())["chunks"] >= 10:
            break
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the kill must land mid-way"
    assert not out.exists(), "the export's name only ever holds a whole export"
    code, said, err = stairway("export", "--out", str(out), "--chunk", "500", "--site", str(site))
    assert code == 0 and "resumed after" in said, err
    assert check(out).ok
    ids = exported_ids(out)
    assert len(ids) == len(set(ids)) == 60_000


# --- damage the check must name ---------------------------------------------------------------


def rewrite(path: Path, change: object) -> None:
    lines = [raw for _, raw in records(path)]
    changed = change(lines)  # type: ignore[operator]
    path.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(changed) + b"\n"))


def _edit_object(lines: list[bytes]) -> list[bytes]:
    record = orjson.loads(lines[5])
    record["data"]["n"] = -1
    return [*lines[:5], line(record).rstrip(), *lines[6:]]


def _drop_object(lines: list[bytes]) -> list[bytes]:
    return [*lines[:5], *lines[6:]]


def _no_header(lines: list[bytes]) -> list[bytes]:
    return lines[1:]


def _no_trailer(lines: list[bytes]) -> list[bytes]:
    return lines[:-1]


def _bad_json(lines: list[bytes]) -> list[bytes]:
    return [*lines[:7], b'{"kind": "object", ', *lines[8:]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_edit_object, "does not match its SHA-256"),
        (_drop_object, "says 1000 records, 999 precede it"),
        (_no_header, "not a Stairway export"),
        (_no_trailer, "no trailer"),
        (_bad_json, "line 8: not JSON"),
    ],
)
def test_damage_is_named_with_its_line(
    site: Path, tmp_path: Path, change: object, message: str
) -> None:
    out = tmp_path / "e.zst"
    operations.export(context.open_context(site, None), out, 1000)
    rewrite(out, change)
    code, _, err = stairway("export", "verify", str(out))
    assert code == 2 and message in err, err


def test_a_truncated_file_is_reported(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.zst"
    operations.export(context.open_context(site, None), out, 1000)
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    summary = check(out)
    assert not summary.ok and summary.problems


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_the_check_rejects_random_bytes_cleanly(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "x.zst"
    path.write_bytes(data)
    assert not check(path).ok


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=30))
def test_the_check_rejects_random_lines_cleanly(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "x.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines)))
    assert not check(path).ok


# --- workers, shards and the audit log ---------------------------------------------------------


def test_workers_split_by_id_ranges_and_the_file_keeps_id_order(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.zst"
    code, said, err = stairway(
        "export", "--out", str(out), "--chunk", "300", "--workers", "3", "--site", str(site)
    )
    assert code == 0 and "exported 2,500 objects" in said, err
    assert check(out).ok
    ids = exported_ids(out)
    assert ids == sorted(ids) and len(set(ids)) == OBJECTS
    assert not list(tmp_path.glob("w.zst.*")), "parts and progress files are removed"


def test_shards_cover_every_object_once_and_each_file_checks_out(
    site: Path, tmp_path: Path, database_url: str
) -> None:
    files = [tmp_path / f"shard-{n}.zst" for n in (1, 2, 3)]
    for n, out in enumerate(files, start=1):
        ctx = context.open_context(site, None)
        operations.export(ctx, out, 200, workers=2, shard=Shard.parse(f"{n}/3"))
        summary = check(out)
        assert summary.ok, summary.problems
        assert summary.header["shard"]["index"] == n and summary.header["shard"]["of"] == 3
    ids = [oid for out in files for oid in exported_ids(out)]
    assert ids == sorted(ids) and len(set(ids)) == OBJECTS
    sizes = [len(exported_ids(out)) for out in files]
    assert max(sizes) - min(sizes) <= 1, f"shards split at id quantiles: {sizes}"


def test_the_audit_log_travels_with_the_export_and_its_chain_is_checked(
    site: Path, tmp_path: Path
) -> None:
    from stairway import audit

    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        audit.append(conn, "site.upgrade", {"from": "0.9.0", "to": "1.0.0"}, actor="ops")
        audit.append(conn, "agent.upgrade", {"agent": "a1"}, actor="ops")
    out = tmp_path / "a.zst"
    report = operations.export(ctx, out, 1000)
    assert report.audit_entries == 2 and check(out).audit_entries == 2

    def edit_entry(lines: list[bytes]) -> list[bytes]:
        edited = []
        for raw in lines:
            record = orjson.loads(raw)
            if record.get("kind") == "audit" and record["id"] == 2:
                record["actor"] = "mallory"
                raw = line(record).rstrip()
            edited.append(raw)
        return edited

    damaged = tmp_path / "damaged.zst"
    shutil.copy(out, damaged)
    rewrite(damaged, edit_entry)
    problems = " ".join(p.describe() for p in check(damaged).problems)
    assert "the exported audit log: entry 2 (agent.upgrade) was changed" in problems


def test_a_killed_export_with_workers_resumes_with_every_object_once(
    site: Path, tmp_path: Path
) -> None:
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        conn.execute(text("DELETE FROM objects"))
    fill(ctx.engine, 60_000)
    dispose_all()
    out = tmp_path / "big.zst"
    parts = [out.with_name(f"big.zst.part-{n}.progress") for n in (1, 2)]
    command = [sys.executable, "-m", "stairway", "export", "--out", str(out), "--chunk", "500"]
    child = subprocess.Popen(
        [*command, "--workers", "2", "--site", str(site)], stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        if all(p.exists() and orjson.loads(p.read_bytes())["chunks"] >= 5 for p in parts):
            break
        time.sleep(0.01)
    workers = Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL and len(workers) == 2, "the kill must land mid-way"
    for pid in workers:  # orphaned workers stop at their next chunk
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
    code, said, err = stairway(
        "export", "--out", str(out), "--chunk", "500", "--workers", "2", "--site", str(site)
    )
    assert code == 0 and "resumed" in said, err
    assert check(out).ok
    ids = exported_ids(out)
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 60_000
