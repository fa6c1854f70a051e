"""``stairway import``: round trips between engines, old exports migrated on the way in,
idempotent, resumable per chunk, and bad records rejected with their line."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from pathlib import Path

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from cli_runner import stairway
from stairway import audit_anchor, context, operations
from stairway.database import dispose_all
from stairway.errors import TransferError
from stairway.transfer.format import digest, line, records
from stairway.transfer.shards import Shard
from stairway.transfer.trust import AuditTrust

CATALOG = Path(__file__).parent / "catalogs" / "people"


def make_site(root: Path, url: str, version: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    catalog = root / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    path = root / "site.toml"
    path.write_text(f'[site]\ndatabase = "{url}"\ncatalog = "{catalog}"\n', "utf-8")
    operations.init(context.open_context(path, None), version)
    dispose_all()
    return path


def fill(site: Path, count: int) -> None:
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        rows = [
            {"o": f"u{n:05d}", "d": orjson.dumps({"fullName": f"User {n}", "n": n}).decode()}
            for n in range(count)
        ]
        conn.execute(text("INSERT INTO objects VALUES (:o, 'User', :d, '1.0.0')"), rows)
    dispose_all()


def objects(site: Path) -> dict[str, tuple[str, object, str]]:
    ctx = context.open_context(site, None)
    with ctx.engine.connect() as conn:
        rows = conn.execute(text("SELECT oid, type, data, written_by FROM objects")).all()
    dispose_all()
    return {r[0]: (r[1], orjson.loads(r[2]), r[3]) for r in rows}


def test_round_trip_sqlite_postgres_sqlite_gives_identical_objects(
    tmp_path: Path, sqlite_database: str, pg_database: str
) -> None:
    first = make_site(tmp_path / "a", sqlite_database, "1.0.0")
    fill(first, 1200)
    middle = make_site(tmp_path / "b", pg_database, "1.0.0")
    last = make_site(tmp_path / "c", f"sqlite:///{tmp_path / 'c.db'}", "1.0.0")
    for source, target, name in ((first, middle, "one.zst"), (middle, last, "two.zst")):
        out = tmp_path / name
        operations.export(context.open_context(source, None), out, 500)
        key = tmp_path / f"{name}.pub"  # the second export carries the first import's entry
        assert stairway("audit", "key", "--out", str(key), "--site", str(source))[0] == 0
        code, said, err = stairway("import", str(out), "--trust", str(key), "--site", str(target))
        assert code == 0 and "imported 1,200 objects" in said, err
    assert objects(last) == objects(first)


def test_an_old_export_comes_out_migrated_and_a_second_import_changes_nothing(
    tmp_path: Path, database_url: str
) -> None:
    old = make_site(tmp_path / "old", f"sqlite:///{tmp_path / 'old.db'}", "1.0.0")
    fill(old, 300)
    out = tmp_path / "old.zst"
    operations.export(context.open_context(old, None), out, 100)
    new = make_site(tmp_path / "new", database_url, "2.0.0")
    report = operations.import_file(context.open_context(new, None), out, 0)
    assert (report.imported, report.migrated, report.present) == (300, 300, 0)
    found = objects(new)
    assert found["u00007"] == ("User", {"n": 7, "displayName": "User 7"}, "2.0.0")
    again = operations.import_file(context.open_context(new, None), out, 0)
    assert (again.imported, again.skipped_chunks) == (0, 3), "its chunks are recorded as done"
    ctx = context.open_context(new, None)
    with ctx.engine.begin() as conn:
        conn.execute(text("DELETE FROM stairway_import_chunks"))
    third = operations.import_file(ctx, out, 0)
    assert (third.imported, third.present) == (0, 300), "importing twice leaves one copy"
    assert objects(new) == found


def reseal(lines: list[bytes]) -> bytes:
    """An export whose chunk records, manifest and digest match its (edited) records: what a
    faulty exporter would write, as opposed to a file damaged on the way."""
    out, body, manifest = [], [], []
    for raw in lines:
        record = orjson.loads(raw)
        if record["kind"] in ("object", "audit"):
            body.append(raw)
        elif record["kind"] == "chunk":
            sha = hashlib.sha256(b"".join(x + b"\n" for x in body)).hexdigest()
            record.update(count=len(body), sha256=sha)
            manifest.append({"count": len(body), "sha256": sha})
            body = []
        elif record["kind"] == "trailer":
            record.update(manifest=manifest, digest=digest([m["sha256"] for m in manifest]))
        out.append(raw if record["kind"] in ("object", "audit") else line(record).rstrip())
    return zstandard.ZstdCompressor().compress(b"\n".join(out) + b"\n")


def test_bad_records_are_rejected_with_their_line_and_max_errors_stops(
    tmp_path: Path, sqlite_database: str
) -> None:
    source = make_site(tmp_path / "s", sqlite_database, "1.0.0")
    fill(source, 10)
    out = tmp_path / "e.zst"
    operations.export(context.open_context(source, None), out, 100)
    lines = [raw for _, raw in records(out)]
    record = orjson.loads(lines[3])
    record["id"] = None
    lines[3] = line(record).rstrip()
    out.write_bytes(reseal(lines))
    target = make_site(tmp_path / "t", f"sqlite:///{tmp_path / 't.db'}", "1.0.0")
    code, _, err = stairway("import", str(out), "--site", str(target))
    assert code == 2 and "more than --max-errors 0" in err
    rejected = [
        orjson.loads(x) for x in out.with_name("e.zst.rejects.ndjson").read_bytes().splitlines()
    ]
    assert rejected[0]["line"] == 4 and "needs an id" in rejected[0]["reason"]
    code, _, err = stairway("import", str(out), "--max-errors", "5", "--site", str(target))
    assert code == 2 and "rejected" in err
    assert len(objects(target)) == 9, "the good records are in; the bad one is rejected"


@pytest.mark.parametrize("damage", ["not json", "changed object", "manifest bit"])
def test_a_damaged_file_is_refused_whole_before_anything_is_imported(
    tmp_path: Path, sqlite_database: str, damage: str
) -> None:
    source = make_site(tmp_path / "s", sqlite_database, "1.0.0")
    fill(source, 20)
    out = tmp_path / "e.zst"
    operations.export(context.open_context(source, None), out, 10)
    lines = [raw for _, raw in records(out)]
    if damage == "not json":
        lines.insert(3, b"{not json")
    elif damage == "changed object":
        record = orjson.loads(lines[2])
        record["data"]["n"] = 999
        lines[2] = line(record).rstrip()
    else:  # one bit of one SHA-256 in the trailer's manifest: only the manifest is wrong
        at = lines[-1].index(b'"sha256":"') + len(b'"sha256":"')
        lines[-1] = lines[-1][:at] + bytes([lines[-1][at] ^ 1]) + lines[-1][at + 1 :]
    out.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    assert stairway("export", "verify", str(out))[0] == 2
    target = make_site(tmp_path / "t", f"sqlite:///{tmp_path / 't.db'}", "1.0.0")
    before = objects(target)
    code, _, err = stairway("import", str(out), "--max-errors", "100", "--site", str(target))
    assert code == 2 and "fails its check, nothing was imported" in err, err
    assert "Traceback" not in err
    assert objects(target) == before
    assert not out.with_name("e.zst.rejects.ndjson").exists()


@pytest.mark.parametrize("damage", ["flipped bytes", "truncated", "garbage appended"])
def test_a_damaged_compressed_stream_is_refused_cleanly(
    tmp_path: Path, sqlite_database: str, damage: str
) -> None:
    source = make_site(tmp_path / "s", sqlite_database, "1.0.0")
    fill(source, 200)
    out = tmp_path / "e.zst"
    operations.export(context.open_context(source, None), out, 50)
    raw = bytearray(out.read_bytes())
    middle = len(raw) // 2
    if damage == "flipped bytes":
        raw[middle : middle + 8] = bytes(b ^ 0xFF for b in raw[middle : middle + 8])
    elif damage == "truncated":
        del raw[middle:]
    else:
        raw += b"\x00not zstd at all"
    out.write_bytes(bytes(raw))
    target = make_site(tmp_path / "t", f"sqlite:///{tmp_path / 't.db'}", "1.0.0")
    before = objects(target)
    code, _, err = stairway("import", str(out), "--site", str(target))
    assert code == 2 and "error:" in err and "Traceback" not in err, err
    assert objects(target) == before
    assert not out.with_name("e.zst.rejects.ndjson").exists()


def test_a_foreign_or_newer_export_is_refused(tmp_path: Path, sqlite_database: str) -> None:
    source = make_site(tmp_path / "s", sqlite_database, "2.0.0")
    fill(source, 3)
    out = tmp_path / "e.zst"
    operations.export(context.open_context(source, None), out, 100)
    older = make_site(tmp_path / "t", f"sqlite:///{tmp_path / 't.db'}", "1.0.0")
    with pytest.raises(TransferError, match=r"newer than this site's 1\.0\.0"):
        operations.import_file(context.open_context(older, None), out, 0)
    lines = [raw for _, raw in records(out)]
    header = orjson.loads(lines[0])
    header["product"] = "shop"
    lines[0] = line(header).rstrip()
    out.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    with pytest.raises(TransferError, match="the export is of 'shop'"):
        operations.import_file(context.open_context(older, None), out, 0)


def test_a_killed_import_resumes_after_its_last_chunk(tmp_path: Path, database_url: str) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    source = make_site(tmp_path / "s", f"sqlite:///{tmp_path / 's.db'}", "1.0.0")
    fill(source, 40_000)
    out = tmp_path / "e.zst"
    operations.export(context.open_context(source, None), out, 500)
    target = make_site(tmp_path / "t", database_url, "1.0.0")
    command = [sys.executable, "-m", "stairway", "import", str(out), "--site", str(target)]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = context.open_context(target, None)
    deadline = time.monotonic() + 60
    done = 0
    while child.poll() is None and time.monotonic() < deadline and done < 10:
        time.sleep(0.01)
        with ctx.engine.connect() as conn:
            found = (
                conn.execute(text("SELECT count(*) FROM stairway_import_chunks")).scalar()
                if conn.dialect.has_table(conn, "stairway_import_chunks")
                else None
            )
        done = int(found or 0)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    dispose_all()
    assert child.returncode == -signal.SIGKILL, "the kill must land mid-way"
    report = operations.import_file(context.open_context(target, None), out, 0)
    assert (
        report.skipped_chunks >= 10
        and report.imported + report.present == 40_000 - 500 * report.skipped_chunks
    )
    assert len(objects(target)) == 40_000


def test_workers_and_shards_import_each_chunk_once_and_check_the_counts(
    tmp_path: Path, database_url: str
) -> None:
    source = make_site(tmp_path / "s", f"sqlite:///{tmp_path / 's.db'}", "1.0.0")
    fill(source, 2_000)
    out = tmp_path / "e.zst"
    operations.export(context.open_context(source, None), out, 150)
    target = make_site(tmp_path / "t", database_url, "2.0.0")
    first = operations.import_file(
        context.open_context(target, None), out, 0, workers=2, shard=Shard.parse("1/2")
    )
    assert first.chunks == 14 and first.chunks_in == 7 and not first.complete
    assert len(objects(target)) == first.imported == 7 * 150  # chunks 1, 3, .., 13; 14 has 50
    code, said, err = stairway(
        "import", str(out), "--workers", "3", "--shard", "2/2", "--site", str(target)
    )
    assert code == 0, err
    assert "every count matches the header" in said and "2,000" in said
    found = objects(target)
    assert len(found) == 2_000
    assert found["u01999"] == ("User", {"n": 1999, "displayName": "User 1999"}, "2.0.0")
    again = operations.import_file(context.open_context(target, None), out, 0, workers=2)
    assert (again.imported, again.skipped_chunks, again.complete) == (0, 14, True)
    assert again.types["User"].stored == 2_000


def test_awkward_ids_and_documents_survive_the_copy_path(
    tmp_path: Path, sqlite_database: str, pg_database: str
) -> None:
    source = make_site(tmp_path / "s", sqlite_database, "2.0.0")
    awkward = ["tab\tid", "new\nline", "back\\slash", "ünïcödé", "cr\rid", "\\N"]
    ctx = context.open_context(source, None)
    with ctx.engine.begin() as conn:
        for n, oid in enumerate(awkward):
            document = {"displayName": f'a\tb\\c"d {oid}', "n": n, "nested": {"x": [1, None]}}
            conn.execute(
                text("INSERT INTO objects VALUES (:o, 'User', :d, '2.0.0')"),
                {"o": oid, "d": orjson.dumps(document).decode()},
            )
    dispose_all()
    out = tmp_path / "e.zst"
    operations.export(context.open_context(source, None), out, 4)
    target = make_site(tmp_path / "t", pg_database, "2.0.0")
    report = operations.import_file(context.open_context(target, None), out, 0)
    assert report.imported == len(awkward) and report.complete
    assert objects(target) == objects(source)


def test_a_killed_import_with_workers_resumes_with_each_object_once(
    tmp_path: Path, pg_database: str
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    source = make_site(tmp_path / "s", f"sqlite:///{tmp_path / 's.db'}", "1.0.0")
    fill(source, 40_000)
    out = tmp_path / "e.zst"
    operations.export(context.open_context(source, None), out, 500)
    target = make_site(tmp_path / "t", pg_database, "2.0.0")
    command = [sys.executable, "-m", "stairway", "import", str(out), "--workers", "2"]
    child = subprocess.Popen(
        [*command, "--site", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ctx = context.open_context(target, None)
    deadline, done = time.monotonic() + 60, 0
    while child.poll() is None and time.monotonic() < deadline and done < 10:
        time.sleep(0.01)
        with ctx.engine.connect() as conn:
            if conn.dialect.has_table(conn, "stairway_import_chunks"):
                done = int(
                    conn.execute(text("SELECT count(*) FROM stairway_import_chunks")).scalar() or 0
                )
    workers = Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL and len(workers) == 2, "the kill must land mid-way"
    for pid in map(int, workers):  # orphaned workers stop at their next chunk
        while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
            time.sleep(0.05)
    dispose_all()
    report = operations.import_file(context.open_context(target, None), out, 0, workers=2)
    assert report.skipped_chunks >= 10 and report.complete, report.problems
    assert report.imported + report.present + 500 * report.skipped_chunks == 40_000
    assert len(objects(target)) == 40_000


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return "Z"


@pytest.fixture(scope="module")
def fuzz_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    site = make_site(root / "site", f"sqlite:///{root / 'f.db'}", "2.0.0")
    source = make_site(root / "src", f"sqlite:///{root / 's.db'}", "1.0.0")
    fill(source, 30)
    operations.export(context.open_context(source, None), root / "good.zst", 10)
    return site


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_the_import_reader_only_ever_rejects_cleanly(fuzz_site: Path, data: st.DataObject) -> None:
    """Mutated exports: lines dropped, duplicated, truncated or replaced by random bytes."""
    good = [raw for _, raw in records(fuzz_site.parent.parent / "good.zst")]
    lines = list(good)
    for _ in range(data.draw(st.integers(1, 6))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "dup", "cut", "noise"]))
        if action == "drop" and len(lines) > 1:
            del lines[index]
        elif action == "dup":
            lines.insert(index, lines[index])
        elif action == "cut":
            lines[index] = lines[index][: data.draw(st.integers(0, len(lines[index])))]
        else:
            lines[index] = data.draw(st.binary(max_size=60)).replace(b"\n", b" ")
    path = fuzz_site.parent / "mutated.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    path.with_name("mutated.zst.rejects.ndjson").unlink(missing_ok=True)
    # A clean refusal (no header, another product) is fine; anything else fails the test.
    with contextlib.suppress(TransferError):
        operations.import_file(context.open_context(fuzz_site, None), path, 10_000)
    for oid, (type_, document, stamp) in objects(fuzz_site).items():
        n = int(oid[1:])
        assert (type_, document, stamp) == ("User", {"n": n, "displayName": f"User {n}"}, "2.0.0")


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_is_refused_before_anything_is_read(
    tmp_path: Path, sqlite_database: str, bad: str
) -> None:
    site = make_site(tmp_path / "s", sqlite_database, "1.0.0")
    code, _, err = stairway("import", "missing.zst", "--shard", bad, "--site", str(site))
    assert code == 2 and "is not of the form i/N" in err


def test_the_source_audit_log_joins_the_target_log_once(
    tmp_path: Path, sqlite_database: str, pg_database: str
) -> None:
    from stairway import audit

    source = make_site(tmp_path / "s", sqlite_database, "1.0.0")
    fill(source, 50)
    ctx = context.open_context(source, None)
    with ctx.engine.begin() as conn:
        audit.append(conn, "site.upgrade", {"from": "0.9.0", "to": "1.0.0"}, actor="ops")
        written = audit.append(conn, "agent.upgrade", {"agent": "a1"}, actor="ops")
    out = tmp_path / "e.zst"
    operations.export(ctx, out, 20)
    dispose_all()
    target = make_site(tmp_path / "t", pg_database, "1.0.0")
    tctx = context.open_context(target, None)
    with tctx.engine.begin() as conn:
        audit.append(conn, "site.init", {"version": "1.0.0"})
    trust = AuditTrust(audit_anchor.public_key(ctx.engine, context.anchor(ctx)))
    for _ in range(2):  # the second import finds every chunk in: nothing is added twice
        tctx = context.open_context(target, None)
        report = operations.import_file(tctx, out, 0, workers=2, trust=trust)
        assert report.complete, report.problems
    with tctx.engine.connect() as conn:
        entries = audit.entries(conn)
        assert audit.verify(conn) == []
    copied = [e for e in entries if "source" in e.data]
    assert [e.action for e in copied] == ["site.upgrade", "agent.upgrade"]
    assert copied[1].actor == "ops" and copied[1].at == written.at
    source_of = {"id": 2, "hash": written.hash, "key": trust.key.id if trust.key else None}
    assert copied[1].data == {"agent": "a1", "source": source_of}


SEMVER_TWO = "2.0.0-x.1"  # a SemVer pre-release PEP 440 cannot read


def semver_site(root: Path, url: str, version: str) -> Path:
    """A people site whose product writes SemVer, its second release being ``SEMVER_TWO``."""
    root.mkdir(parents=True, exist_ok=True)
    catalog = root / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("stairway.toml", "objects.toml", "config.toml"):
        file = catalog / name
        file.write_text(file.read_text().replace('"2.0.0"', f'"{SEMVER_TWO}"'))
    manifest = catalog / "stairway.toml"
    named = 'name = "people"\n'
    manifest.write_text(manifest.read_text().replace(named, f'{named}versions = "semver"\n'))
    path = root / "site.toml"
    path.write_text(f'[site]\ndatabase = "{url}"\ncatalog = "{catalog}"\n', "utf-8")
    operations.init(context.open_context(path, None), version)
    dispose_all()
    return path


def test_an_export_between_two_semver_sites_is_read_in_their_grammar(
    tmp_path: Path, sqlite_database: str
) -> None:
    old = semver_site(tmp_path / "old", sqlite_database, "1.0.0")
    fill(old, 30)
    out = tmp_path / "old.zst"
    operations.export(context.open_context(old, None), out, 10)
    new = semver_site(tmp_path / "new", f"sqlite:///{tmp_path / 'new.db'}", SEMVER_TWO)
    code, said, err = stairway("import", str(out), "--site", str(new))
    assert code == 0 and "imported 30 objects" in said, err
    assert objects(new)["u00007"] == ("User", {"n": 7, "displayName": "User 7"}, SEMVER_TWO)
    back = tmp_path / "new.zst"
    operations.export(context.open_context(new, None), back, 10)
    code, _, err = stairway("import", str(back), "--site", str(old))
    assert code == 2 and f"made by release {SEMVER_TWO}, newer than this site's 1.0.0" in err
    assert "Traceback" not in err


def test_an_export_naming_a_release_not_of_the_grammar_is_refused_before_any_write(
    tmp_path: Path, sqlite_database: str
) -> None:
    source = semver_site(tmp_path / "s", sqlite_database, "1.0.0")
    fill(source, 3)
    out = tmp_path / "e.zst"
    operations.export(context.open_context(source, None), out, 100)
    lines = [raw for _, raw in records(out)]
    header = orjson.loads(lines[0])
    header["version"] = "1.0.0rc1"  # PEP 440's spelling: no SemVer version
    lines[0] = line(header).rstrip()
    out.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    target = semver_site(tmp_path / "t", f"sqlite:///{tmp_path / 't.db'}", SEMVER_TWO)
    code, _, err = stairway("import", str(out), "--site", str(target))
    assert code == 2 and "release '1.0.0rc1', not a version of this catalog's semver" in err
    assert "hint:" in err and "Traceback" not in err and objects(target) == {}
