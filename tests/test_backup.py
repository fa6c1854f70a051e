"""Backups on SQLite and PostgreSQL: a round trip restores every row and file; a damaged, foreign
or malicious archive is refused with the live site untouched."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import orjson
import pytest
import zstandard
from sqlalchemy import inspect, text

from cli_runner import stairway
from stairway import audit, context, operations
from stairway.backup.archive import MANIFEST
from stairway.database import dispose_all
from stairway.errors import BackupError

CATALOG = Path(__file__).parent / "catalogs" / "people"


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Path:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    data = tmp_path / "data"
    (data / "attachments" / "2026").mkdir(parents=True)
    (data / "attachments" / "2026" / "a.bin").write_bytes(os.urandom(200_000))
    (data / "keys").mkdir()
    (data / "keys" / "site.key").write_text("secret-ish", "utf-8")
    (data / "keys" / "site.key").chmod(0o600)
    (data / "empty").mkdir()
    (data / "current").symlink_to("attachments/2026")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "app.toml").write_text("[server]\nport = 8080\n", "utf-8")
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "{database_url}"\ncatalog = "{catalog}"\n'
        f'data_dir = "data"\nbackup_dir = "backups"\nconfig_files = ["etc/app.toml"]\n',
        "utf-8",
    )
    ctx = context.open_context(path, None)
    operations.init(ctx, "1.0.0")
    with ctx.engine.begin() as conn:
        for n in range(300):
            document = orjson.dumps({"fullName": f"User {n}", "n": n}).decode()
            conn.execute(
                text("INSERT INTO objects VALUES (:o, 'User', :d, '1.0.0')"),
                {"o": f"u{n:04d}", "d": document},
            )
        conn.execute(text("INSERT INTO settings VALUES ('mode', 'strict')"))
    return path


def fingerprint(site: Path) -> dict[str, str]:
    """A digest of every table's rows and of every file and link of the site."""
    ctx = context.open_context(site, None)
    found = {}
    with ctx.engine.connect() as conn:
        # The audit log is left out: a restore logs itself (checked apart).
        for table in sorted(set(inspect(conn).get_table_names()) - {"stairway_audit"}):
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            found[f"table:{table}"] = _digest(sorted(repr(tuple(r)) for r in rows))
    dispose_all()
    for root in (site.parent / "data", site.parent / "etc"):
        for path in sorted(root.rglob("*")):
            key = f"file:{path.relative_to(site.parent)}"
            if path.is_symlink():
                found[key] = f"link->{os.readlink(path)}"
            elif path.is_file():
                found[key] = (
                    f"{hashlib.sha256(path.read_bytes()).hexdigest()}:{path.stat().st_mode:o}"
                )
            else:
                found[key] = "dir"
    return found


def _digest(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()


def damage(site: Path) -> None:
    """Change the site after the backup: rows, a data file, a config file."""
    ctx = context.open_context(site, None)
    with ctx.engine.begin() as conn:
        conn.execute(text("DELETE FROM objects WHERE oid < 'u0100'"))
        conn.execute(text("UPDATE settings SET value = 'lax'"))
    dispose_all()
    (site.parent / "data" / "keys" / "site.key").write_text("overwritten", "utf-8")
    (site.parent / "data" / "new.txt").write_text("added later", "utf-8")
    (site.parent / "etc" / "app.toml").write_text("[server]\nport = 1\n", "utf-8")


def test_backup_then_restore_gives_back_every_row_and_file(site: Path) -> None:
    before = fingerprint(site)
    code, out, err = stairway("backup", "--site", str(site), "--json")
    assert code == 0, err
    taken = orjson.loads(out)
    assert taken["version"] == "1.0.0" and taken["members"] == 4

    damage(site)
    assert fingerprint(site) != before
    code, out, err = stairway("restore", taken["id"], "--yes", "--site", str(site))
    assert code == 0, err
    assert fingerprint(site) == before
    with context.open_context(site, None).engine.connect() as conn:
        logged = audit.entries(conn)
    assert [(e.action, e.data["backup"]) for e in logged] == [("site.restore", taken["id"])]
    leftovers = [p.name for p in site.parent.iterdir() if p.name.startswith(".")]
    # .stairway holds the audit key and witness: the restore's signed checkpoint re-bases there
    assert leftovers == [".stairway"], "no staging directory is left behind"
    assert b'"reason":"restore"' in (site.parent / ".stairway" / "site.audit.witness").read_bytes()

    code, out, _ = stairway("backups", "--site", str(site), "--json")
    assert [b["id"] for b in orjson.loads(out)] == [taken["id"]]


def test_two_backups_in_one_second_get_their_own_ids(site: Path) -> None:
    first = operations.backup(context.open_context(site, None))
    second = operations.backup(context.open_context(site, None))
    assert first.id != second.id and first.path.exists() and second.path.exists()


def test_restore_without_a_terminal_needs_yes(site: Path) -> None:
    taken = operations.backup(context.open_context(site, None))
    code, _, err = stairway("restore", taken.id, "--site", str(site))
    assert code == 2 and "--yes" in err


def test_an_unknown_backup_id_is_refused(site: Path) -> None:
    code, _, err = stairway("restore", "nope", "--yes", "--site", str(site))
    assert code == 2 and "no backup 'nope'" in err


# --- archives that must be refused ------------------------------------------------------------


def repack(path: Path, change: object) -> None:
    """Rewrite the archive at ``path``, passing each (info, data) through ``change``."""
    with path.open("rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            members = []
            for info in tar:
                stream = tar.extractfile(info) if info.isfile() else None
                members.append((info, stream.read() if stream else b""))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            for new_info, new_data in change(info, data):  # type: ignore[operator]
                new_info.size = len(new_data)
                tar.addfile(new_info, io.BytesIO(new_data) if new_info.isfile() else None)
    path.write_bytes(zstandard.ZstdCompressor().compress(out.getvalue()))


def _keep(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(info, data)]


def _flip_data(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    if info.name == "data/keys/site.key":
        return [(info, b"tampered!!")]
    return [(info, data)]


def _extra(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> object:
    def change(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if info.name != MANIFEST:
            return [(info, data)]
        evil = tarfile.TarInfo(name)
        evil.type, evil.linkname = kind, link
        return [(evil, b"" if kind != tarfile.REGTYPE else b"evil"), (info, data)]

    return change


def _link_out(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    if info.name != MANIFEST:
        return [(info, data)]
    manifest = orjson.loads(data)
    manifest["links"]["escape"] = "../../etc"
    return [(info, orjson.dumps(manifest))]


def _no_manifest(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [] if info.name == MANIFEST else [(info, data)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_flip_data, "data/keys/site.key does not match its SHA-256"),
        (_extra("../outside"), "absolute or parent-relative"),
        (_extra("/etc/evil"), "absolute or parent-relative"),
        (_extra("data/link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
        (_extra("data/hard", tarfile.LNKTYPE, "data/keys/site.key"), "is a link"),
        (_extra("data/dev", tarfile.CHRTYPE), "a device or FIFO"),
        (_extra("data/fifo", tarfile.FIFOTYPE), "a device or FIFO"),
        (_extra("elsewhere/x"), "lies outside"),
        (_extra("data/unlisted"), "data/unlisted is not listed in the manifest"),
        (_link_out, "points out of the data directory"),
        (_no_manifest, "has no manifest"),
    ],
)
def test_a_bad_archive_is_refused_and_the_site_is_untouched(
    site: Path, change: object, message: str
) -> None:
    taken = operations.backup(context.open_context(site, None))
    repack(taken.path, change)
    damage(site)
    before = fingerprint(site)
    with pytest.raises(BackupError) as caught:
        operations.restore(context.open_context(site, None), taken.id)
    assert message in caught.value.message
    assert fingerprint(site) == before
    assert not (site.parent / "outside").exists() and not Path("/etc/evil").exists()
    assert [p.name for p in site.parent.iterdir() if p.name.startswith(".")] == []


def test_the_repacking_helper_alone_keeps_a_restorable_archive(site: Path) -> None:
    taken = operations.backup(context.open_context(site, None))
    repack(taken.path, _keep)
    operations.restore(context.open_context(site, None), taken.id)


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_a_truncated_or_corrupted_archive_is_refused(site: Path, cut: float) -> None:
    taken = operations.backup(context.open_context(site, None))
    raw = taken.path.read_bytes()
    taken.path.write_bytes(raw[: int(len(raw) * cut)])
    damage(site)
    before = fingerprint(site)
    code, _, err = stairway("restore", taken.id, "--yes", "--site", str(site))
    assert code == 2 and ("damaged" in err or "no manifest" in err)
    assert fingerprint(site) == before

    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    taken.path.write_bytes(bytes(flipped))
    code, _, err = stairway("restore", taken.id, "--yes", "--site", str(site))
    assert code == 2 and "damaged" in err
    assert fingerprint(site) == before


def test_a_backup_of_another_product_is_refused(site: Path) -> None:
    taken = operations.backup(context.open_context(site, None))

    def other(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if info.name == MANIFEST:
            data = data.replace(b'"product": "people"', b'"product": "shop"')
        return [(info, data)]

    repack(taken.path, other)
    with pytest.raises(BackupError, match="is of shop, this site runs people"):
        operations.restore(context.open_context(site, None), taken.id)


def test_a_link_out_of_the_data_directory_is_refused_at_backup(site: Path) -> None:
    (site.parent / "data" / "escape").symlink_to("../etc")
    code, _, err = stairway("backup", "--site", str(site))
    assert code == 2 and "outside the data directory" in err
    assert not list((site.parent / "backups").glob("*.tar.zst"))


def test_missing_backup_dir_and_config_file_are_refused(site: Path) -> None:
    (site.parent / "etc" / "app.toml").unlink()
    code, _, err = stairway("backup", "--site", str(site))
    assert code == 2 and "app.toml does not exist" in err
    assert not list((site.parent / "backups").glob("*.tar.zst")), "no partial archive"
    site.write_text(site.read_text("utf-8").replace('backup_dir = "backups"\n', ""), "utf-8")
    code, _, err = stairway("backup", "--site", str(site))
    assert code == 2 and "no backup_dir" in err


@pytest.mark.postgres
def test_pg_dump_missing_is_a_clear_error(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "{pg_database}"\ncatalog = "{CATALOG}"\nbackup_dir = "b"\n', "utf-8"
    )
    operations.init(context.open_context(path, None), "1.0.0")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(BackupError, match="pg_dump is not on PATH") as caught:
        operations.backup(context.open_context(path, None))
    assert "postgresql-client" in caught.value.hint


def test_a_killed_backup_leaves_no_archive_and_the_next_one_works(site: Path) -> None:
    (site.parent / "data" / "big.bin").write_bytes(os.urandom(60_000_000))
    backups = site.parent / "backups"
    command = [sys.executable, "-m", "stairway", "backup", "--site", str(site)]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(backups.glob(".*.partial")) and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the kill must land while it writes"
    assert list(backups.glob("*.tar.zst")) == []
    assert operations.backups(context.open_context(site, None)) == []
    taken = operations.backup(context.open_context(site, None))
    locks = (".lock", ".site.lock")  # the backup's own lock and the site lock
    assert [p.name for p in backups.iterdir() if p.name not in locks] == [taken.path.name]


def test_one_backup_or_restore_at_a_time(site: Path) -> None:
    from stairway.backup.snapshot import exclusive

    backups = site.parent / "backups"
    backups.mkdir(exist_ok=True)
    with exclusive(backups), pytest.raises(BackupError, match="another backup or restore"):
        operations.backup(context.open_context(site, None))


@pytest.mark.postgres
def test_pg_dump_older_than_the_server_is_a_clear_error(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "{pg_database}"\ncatalog = "{CATALOG}"\nbackup_dir = "b"\n', "utf-8"
    )
    operations.init(context.open_context(path, None), "1.0.0")
    tools = tmp_path / "old-tools"
    tools.mkdir()
    fake = tools / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n", "utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    with pytest.raises(BackupError, match="pg_dump 9 is older than the server") as caught:
        operations.backup(context.open_context(path, None))
    assert "or newer" in caught.value.hint
    assert not list((tmp_path / "b").glob("*.tar.zst"))
