"""Restore accepts only what the site owns: crafted archives that would write outside the site,
through links, to another file than site.toml lists, or fill the disk are refused with exit 2,
the site unchanged and nothing written outside a temporary directory. A full disk during a
backup is a clean error. Site files whose backup_dir and data_dir overlap are refused."""

from __future__ import annotations

import copy
import errno
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from sqlalchemy import inspect, text

from cli_runner import stairway
from stairway import context, operations
from stairway.backup import archive, restore
from stairway.backup.archive import MANIFEST
from stairway.backup.links import restore_links
from stairway.database import dispose_all
from stairway.errors import BackupError

CATALOG = Path(__file__).parent / "catalogs" / "people"
EVIL = "people-1.0.0-20260101T000000Z"  # the crafted archive's id


# --- the site -----------------------------------------------------------------------------------


def make_site(root: Path, database_url: str) -> Path:
    """A people site under ``root/site`` with rows, a data directory with a link, a config
    file and one genuine backup; ``root/outside`` and ``root/victim.conf`` lie outside it."""
    home = root / "site"
    shutil.copytree(CATALOG, home / "catalog", ignore=shutil.ignore_patterns("__pycache__"))
    data = home / "data"
    (data / "attachments" / "2026").mkdir(parents=True)
    (data / "attachments" / "2026" / "a.bin").write_bytes(os.urandom(50_000))
    (data / "keys").mkdir()
    (data / "keys" / "site.key").write_text("secret-ish", "utf-8")
    (data / "current").symlink_to("attachments/2026")
    (home / "etc").mkdir()
    (home / "etc" / "app.toml").write_text("[server]\nport = 8080\n", "utf-8")
    (root / "outside").mkdir()
    (root / "victim.conf").write_text("the operator's own file\n", "utf-8")
    path = home / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "{database_url}"\ncatalog = "catalog"\ndata_dir = "data"\n'
        f'backup_dir = "backups"\nconfig_files = ["etc/app.toml"]\n',
        "utf-8",
    )
    ctx = context.open_context(path, None)
    operations.init(ctx, "1.0.0")
    with ctx.engine.begin() as conn:
        for n in range(50):
            document = orjson.dumps({"fullName": f"User {n}"}).decode()
            conn.execute(
                text("INSERT INTO objects VALUES (:o, 'User', :d, '1.0.0')"),
                {"o": f"u{n:04d}", "d": document},
            )
    operations.backup(ctx)
    dispose_all()
    return path


@pytest.fixture
def site(tmp_path: Path, sqlite_database: str) -> Path:
    return make_site(tmp_path, sqlite_database)


@pytest.fixture
def any_site(tmp_path: Path, database_url: str) -> Path:
    return make_site(tmp_path, database_url)


def rows(site: Path) -> dict[str, str]:
    """A digest of every table's rows, the audit log included (a refused restore logs nothing)."""
    ctx = context.open_context(site, None)
    found = {}
    with ctx.engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            got = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            found[table] = _digest(sorted(repr(tuple(r)) for r in got))
    dispose_all()
    return found


LOCKS = {".lock", ".site.lock"}  # empty files a command locks; taking a lock is not a write


def tree(root: Path) -> dict[str, str]:
    """Every file, directory and link under ``root`` but lock files: content hash and mode, or
    link target."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.name in LOCKS:
            continue
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = f"link->{os.readlink(path)}"
        elif path.is_file():
            found[key] = f"{hashlib.sha256(path.read_bytes()).hexdigest()}:{path.stat().st_mode:o}"
        else:
            found[key] = f"dir:{path.stat().st_mode:o}"
    return found


def _digest(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()


def refused(site: Path, backup_id: str = EVIL) -> str:
    """Restore ``backup_id``: exit 2 with an error and no traceback, the database rows and
    every file under the test's directory (site, backups, outside) exactly as before."""
    root = site.parent.parent
    before_rows, before_files = rows(site), tree(root)
    code, _, err = stairway("restore", backup_id, "--yes", "--site", str(site))
    assert code == 2, err
    assert "error:" in err and "hint:" in err and "Traceback" not in err
    assert rows(site) == before_rows
    assert tree(root) == before_files
    assert not Path("/tmp/stairway-hostile-x").exists()
    return " ".join(err.split())  # one line: Rich may wrap a long message


# --- crafting archives --------------------------------------------------------------------------


@dataclass
class Craft:
    """An archive to write: its members in order (the manifest last) and the manifest."""

    members: list[tuple[tarfile.TarInfo, bytes]]
    manifest: dict[str, Any]
    relist: bool = True  # recompute the manifest's members from the file members
    raw_manifest: bytes | None = None  # written instead of the manifest, as is
    big: list[tuple[str, int]] = field(default_factory=list)  # members of n zero bytes


def genuine(site: Path) -> Craft:
    """The members and manifest of the site's one genuine backup."""
    (path,) = sorted((site.parent / "backups").glob("*.tar.zst"))
    members, manifest = [], {}
    with path.open("rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for info in tar:
                stream = tar.extractfile(info) if info.isfile() else None
                data = stream.read() if stream else b""
                if info.name == MANIFEST:
                    manifest = orjson.loads(data)
                else:
                    members.append((info, data))
    return Craft(members, manifest)


def write(site: Path, craft: Craft, backup_id: str = EVIL) -> Path:
    """Write ``craft`` into the site's backup_dir as backup ``backup_id``."""
    manifest = copy.deepcopy(craft.manifest)
    manifest["id"] = backup_id
    if craft.relist:
        manifest["members"] = {
            info.name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for info, data in craft.members
            if info.isfile()
        }
        for name, size in craft.big:
            manifest["members"][name] = {"size": size, "sha256": _zeros_sha(size)}
    path = site.parent / "backups" / f"{backup_id}.tar.zst"
    with (
        path.open("wb") as raw,
        zstandard.ZstdCompressor().stream_writer(raw) as packed,
        tarfile.open(fileobj=packed, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for info, data in craft.members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
        for name, size in craft.big:
            tar.addfile(_file(name, size), _Zeros(size))
        body = craft.raw_manifest or orjson.dumps(manifest)
        tar.addfile(_file(MANIFEST, len(body)), io.BytesIO(body))
    return path


def _file(name: str, size: int, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.linkname = size, 0o644, kind, link
    return info


def _zeros_sha(size: int) -> str:
    digest, block = hashlib.sha256(), bytes(1 << 20)
    for start in range(0, size, len(block)):
        digest.update(block[: min(len(block), size - start)])
    return digest.hexdigest()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, size: int = -1) -> bytes:
        n = self.left if size < 0 else min(size, self.left)
        self.left -= n
        return bytes(n)

    def readable(self) -> bool:
        return True


def add(name: str, data: bytes = b"evil", kind: bytes = tarfile.REGTYPE, link: str = "") -> Any:
    """A change adding one member before the manifest (listed in it if it is a file)."""

    def change(craft: Craft, root: Path) -> None:
        craft.members.append((_file(name, len(data), kind, link), data))

    return change


# --- the cases: each a change to the genuine archive and what the refusal says ---------------


def config_path_outside(craft: Craft, root: Path) -> None:
    craft.manifest["config_files"][0]["path"] = str(root / "outside" / "evil.conf")


def config_path_to_existing_file(craft: Craft, root: Path) -> None:
    craft.manifest["config_files"][0]["path"] = str(root / "victim.conf")


def config_path_relative(craft: Craft, root: Path) -> None:
    craft.manifest["config_files"][0]["path"] = "../../victim.conf"


def config_member_not_config(craft: Craft, root: Path) -> None:
    craft.manifest["config_files"][0]["member"] = "data/keys/site.key"


def config_member_parent(craft: Craft, root: Path) -> None:
    craft.manifest["config_files"][0]["member"] = "config/../../../victim.conf"


def links(given: dict[str, str]) -> Callable[[Craft, Path], None]:
    def change(craft: Craft, root: Path) -> None:
        craft.manifest["links"] = given

    return change


def data_behind_link(craft: Craft, root: Path) -> None:
    craft.manifest["links"]["s"] = "attachments"
    craft.members.append((_file("data/s/x", 4), b"evil"))


def directory_where_a_link_goes(craft: Craft, root: Path) -> None:
    craft.manifest["links"]["s"] = "."
    info = _file("data/s", 0, tarfile.DIRTYPE)
    craft.members.append((info, b""))


def file_holding_a_file(craft: Craft, root: Path) -> None:
    craft.members.append((_file("data/keys/site.key/x", 4), b"evil"))


def duplicate_member(craft: Craft, root: Path) -> None:
    again = next(m for m in craft.members if m[0].name == "data/keys/site.key")
    craft.members.append((copy.copy(again[0]), again[1]))


def header_size_lies(craft: Craft, root: Path) -> None:
    """The tar header says 3 bytes; the manifest lists the file's real 10."""
    craft.relist = False
    info = next(m[0] for m in craft.members if m[0].name == "data/keys/site.key")
    info.size = 3


def manifest_size_lies(craft: Craft, root: Path) -> None:
    """The manifest says 100 bytes for a 50,000-byte file (and so keeps its total small)."""
    craft.relist = False
    craft.manifest["members"]["data/attachments/2026/a.bin"]["size"] = 100


def content_differs(craft: Craft, root: Path) -> None:
    craft.relist = False
    for n, (info, _) in enumerate(craft.members):
        if info.name == "data/keys/site.key":
            craft.members[n] = (info, b"tampered!!")


def bomb(craft: Craft, root: Path) -> None:
    """200 MB of zeros, declared honestly: zstd makes them a few kilobytes."""
    craft.big.append(("data/zeros.bin", 200_000_000))


def database_member_renamed(craft: Craft, root: Path) -> None:
    for info, _ in craft.members:
        if info.name.startswith("database/"):
            info.name = "database/other.dump"
    craft.manifest["database"] = "database/other.dump"


def second_database(craft: Craft, root: Path) -> None:
    craft.members.append((_file("database/extra.sqlite", 4), b"evil"))


def not_json(craft: Craft, root: Path) -> None:
    craft.raw_manifest = b'{"format": 1, "id": '


def negative_size(craft: Craft, root: Path) -> None:
    craft.relist = False
    craft.manifest["members"]["data/keys/site.key"]["size"] = -1


def manifest_as_link(craft: Craft, root: Path) -> None:
    craft.members.append((_file(MANIFEST, 0, tarfile.SYMTYPE, "/etc/passwd"), b""))


CASES: list[tuple[str, Callable[[Craft, Path], None], str]] = [
    ("config path outside the site", config_path_outside, "not one of this site's config_files"),
    ("config path to an existing file", config_path_to_existing_file, "not one of this site's"),
    ("config path relative", config_path_relative, "not a full path"),
    ("config member outside config/", config_member_not_config, "not a config/ member"),
    ("config member with ..", config_member_parent, "not a config/ member"),
    ("member ../../x", add("../../x"), "absolute or parent-relative"),
    ("member data/../../x", add("data/../../x"), "absolute or parent-relative"),
    ("absolute member", add("/tmp/stairway-hostile-x"), "absolute or parent-relative"),
    ("member under an unknown folder", add("elsewhere/x"), "lies outside"),
    ("member not in plain form", add("data/./keys/x"), "not written in its plain form"),
    ("symlink member", add("data/lnk", b"", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
    ("hardlink member", add("data/hard", b"", tarfile.LNKTYPE, "/etc/passwd"), "is a link"),
    ("device member", add("data/dev", b"", tarfile.CHRTYPE), "a device or FIFO"),
    ("fifo member", add("data/fifo", b"", tarfile.FIFOTYPE), "a device or FIFO"),
    ("link chain s -> . then s/escape", links({"s": ".", "s/escape": "../.."}), "points out of"),
    (
        "link behind a link",
        links({"s": ".", "s/up": ".."}),
        "data/s/up lies behind the link data/s",
    ),
    (
        "later link bends an earlier one",
        links({"a": "b/..", "b": "."}),
        "points out of the data dir",
    ),
    ("absolute link target", links({"etc": "/etc"}), "points out of the data directory"),
    ("link target ../..", links({"up": "../.."}), "points out of the data directory"),
    ("link named like a file", links({"keys/site.key": "x"}), "has the name of a file"),
    ("link where a directory is", directory_where_a_link_goes, "has the name of a file"),
    ("data member behind a link", data_behind_link, "lies behind the link data/s"),
    ("a file holding a file", file_holding_a_file, "is a file and also holds"),
    ("duplicate member", duplicate_member, "twice"),
    ("tar header size lies", header_size_lies, "says it holds 3 bytes, the manifest 10"),
    ("manifest size lies", manifest_size_lies, "says it holds 50000 bytes, the manifest 100"),
    ("content differs from its hash", content_differs, "does not match its SHA-256"),
    ("negative size", negative_size, "greater than or equal to 0"),
    ("decompression bomb", bomb, "decompression bomb"),
    ("database member renamed", database_member_renamed, "holds it in 'database/site.sqlite'"),
    ("a second database", second_database, "more than one database"),
    ("manifest not JSON", not_json, "not valid JSON"),
    ("manifest as a link", manifest_as_link, "not a plain file"),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_crafted_archive_is_refused_with_nothing_written(
    site: Path, change: Callable[[Craft, Path], None], message: str
) -> None:
    craft = genuine(site)
    change(craft, site.parent.parent)
    write(site, craft)
    assert message in refused(site)


def test_the_crafting_helpers_alone_make_a_restorable_archive(site: Path) -> None:
    write(site, genuine(site))
    code, _, err = stairway("restore", EVIL, "--yes", "--site", str(site))
    assert code == 0, err


def test_a_truncated_archive_is_refused(site: Path) -> None:
    path = write(site, genuine(site))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    said = refused(site)
    assert "damaged" in said or "no manifest" in said


def test_a_bomb_with_its_manifest_first_is_refused_before_expanding(site: Path) -> None:
    """The manifest first and honest: the ratio alone refuses it, with no pass over the zeros."""
    craft = genuine(site)
    craft.big.append(("data/zeros.bin", 200_000_000))
    path = write(site, craft)
    body = _read_member(path, MANIFEST)
    first = Craft([(_file(MANIFEST, len(body)), body), *craft.members], craft.manifest)
    first.big, first.raw_manifest = craft.big, body
    write(site, first)
    assert "decompression bomb" in refused(site)


def _read_member(path: Path, name: str) -> bytes:
    with path.open("rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for info in tar:
                if info.name == name:
                    stream = tar.extractfile(info)
                    assert stream is not None
                    return stream.read()
    raise AssertionError(name)


def test_the_ratio_ceiling_is_a_setting(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A genuine archive over a lowered ceiling is refused, and says the ceiling."""
    # found before the ceiling is lowered: listing reads the manifest member, which the lowered
    # ceiling may already refuse, depending on how well the archive's first bytes compress
    (backup,) = operations.backups(context.open_context(site, None))
    monkeypatch.setattr(archive, "MAX_RATIO", 1)
    monkeypatch.setattr(archive, "RATIO_FLOOR", 1000)
    said = refused(site, backup.id)
    assert "above the ceiling of 1:1" in said or "decompression bomb" in said


def test_a_restore_that_would_not_fit_the_disk_is_refused(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (backup,) = operations.backups(context.open_context(site, None))
    real = shutil.disk_usage

    def tiny(path: str | os.PathLike[str]) -> Any:
        return real(path)._replace(free=1000)

    monkeypatch.setattr(restore.shutil, "disk_usage", tiny)
    said = refused(site, backup.id)
    assert "MB free" in said and "free space there" in said


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (database_member_renamed, "holds it in 'database/site."),
        (config_path_to_existing_file, "not one of this site's config_files"),
        (links({"s": ".", "s/up": ".."}), "behind the link"),
        (add("../../x"), "absolute or parent-relative"),
    ],
    ids=["database", "config", "link chain", "member name"],
)
def test_crafted_archives_are_refused_on_either_engine(
    any_site: Path, change: Callable[[Craft, Path], None], message: str
) -> None:
    craft = genuine(any_site)
    change(craft, any_site.parent.parent)
    write(any_site, craft)
    assert message in refused(any_site)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"s": ".", "s/escape": "../.."}, "data/s/escape lies behind another link"),
        ({"s": "keys", "s/up": "../.."}, "data/s/up lies behind another link"),
        ({"a": "b/..", "b": "."}, "data/a points out of the data directory"),
        ({"up": "keys/../.."}, "data/up points out of the data directory"),
        ({"keys": "."}, "data/keys has the name of a file"),
    ],
)
def test_links_are_resolved_on_the_real_tree(
    tmp_path: Path, given: dict[str, str], message: str
) -> None:
    """The check on the staged tree alone, as a restore makes it after extraction."""
    staging = tmp_path / "staging"
    (staging / "keys").mkdir(parents=True)
    with pytest.raises(BackupError, match=message):
        restore_links(given, staging, "b1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staging"]


# --- what a restore still does ------------------------------------------------------------------


def test_a_round_trip_restores_every_row_file_and_link(any_site: Path) -> None:
    home = any_site.parent
    (home / "data" / "here").symlink_to(".")  # a link to the tree itself stays inside it
    taken = operations.backup(context.open_context(any_site, None))
    before_rows, before_files = rows(any_site), tree(home / "data")
    with context.open_context(any_site, None).engine.begin() as conn:
        conn.execute(text("DELETE FROM objects"))
    dispose_all()
    (home / "data" / "keys" / "site.key").write_text("changed", "utf-8")
    (home / "etc" / "app.toml").write_text("changed", "utf-8")
    code, _, err = stairway("restore", taken.id, "--yes", "--site", str(any_site))
    assert code == 0, err
    after = rows(any_site)
    assert {k: v for k, v in after.items() if k != "stairway_audit"} == {
        k: v for k, v in before_rows.items() if k != "stairway_audit"
    }
    assert tree(home / "data") == before_files
    assert (home / "etc" / "app.toml").read_text("utf-8") == "[server]\nport = 8080\n"


def test_config_files_go_where_site_toml_lists_them_now(site: Path) -> None:
    """Another config file listed first shifts the indexes; the path decides."""
    home = site.parent
    (home / "etc" / "other.toml").write_text("other\n", "utf-8")
    site.write_text(
        site.read_text("utf-8").replace(
            'config_files = ["etc/app.toml"]', 'config_files = ["etc/other.toml", "etc/app.toml"]'
        ),
        "utf-8",
    )
    (backup,) = operations.backups(context.open_context(site, None))
    (home / "etc" / "app.toml").write_text("changed\n", "utf-8")
    operations.restore(context.open_context(site, None), backup.id)
    assert (home / "etc" / "app.toml").read_text("utf-8") == "[server]\nport = 8080\n"
    assert (home / "etc" / "other.toml").read_text("utf-8") == "other\n"


def test_a_config_file_no_longer_listed_is_refused(site: Path) -> None:
    site.write_text(site.read_text("utf-8").replace('["etc/app.toml"]', "[]"), "utf-8")
    (backup,) = operations.backups(context.open_context(site, None))
    said = refused(site, backup.id)
    assert "not one of this site's config_files" in said and "lists now (none)" in said


# --- site files whose backups and data overlap ------------------------------------------------


@pytest.mark.parametrize(
    ("data_dir", "backup_dir", "message"),
    [
        ("data", "data/backups", "backup_dir {b} lies inside data_dir {d}"),
        ("data", "data", "backup_dir {b} lies inside data_dir {d}"),
        ("backups/data", "backups", "data_dir {d} lies inside backup_dir {b}"),
        ("data", "app-backups", "the SQLite database {db} lies inside backup_dir {b}"),
        ("data", "link-into-data/b", "backup_dir {b} lies inside data_dir {d}"),
    ],
)
def test_site_load_refuses_backups_and_data_overlapping(
    tmp_path: Path, data_dir: str, backup_dir: str, message: str
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "link-into-data").symlink_to("data")
    (tmp_path / "app-backups").mkdir()
    database = tmp_path / "app-backups" / "app.db"
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "sqlite:///{database}"\ncatalog = "{CATALOG}"\n'
        f'data_dir = "{data_dir}"\nbackup_dir = "{backup_dir}"\n',
        "utf-8",
    )
    code, _, err = stairway("backup", "--site", str(path))
    assert code == 2 and "Traceback" not in err
    said = " ".join(err.split())
    resolved = (tmp_path / backup_dir).resolve()
    assert message.format(b=resolved, d=(tmp_path / data_dir).resolve(), db=database) in said
    assert "hint:" in said
    assert not database.exists() and list((tmp_path / "data").iterdir()) == []


def test_the_hint_says_where_backups_could_go(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\ndatabase = "sqlite:///{tmp_path / "app.db"}"\ncatalog = "{CATALOG}"\n'
        'data_dir = "data"\nbackup_dir = "data/backups"\n',
        "utf-8",
    )
    code, _, err = stairway("status", "--site", str(path))
    assert code == 2 and f'backup_dir = "{tmp_path / "backups"}"' in " ".join(err.split())


# --- a full or failing disk during a backup -------------------------------------------------


def _no_partials(site: Path) -> None:
    left = [p.name for p in (site.parent / "backups").iterdir() if p.name not in LOCKS]
    assert len(left) == 1 and left[0].endswith(".tar.zst"), left  # the genuine one only


def test_a_full_disk_during_a_backup_is_a_clean_error(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tarfile.TarFile.addfile
    calls = []

    def full(self: tarfile.TarFile, info: tarfile.TarInfo, fileobj: Any = None) -> None:
        calls.append(info.name)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, info, fileobj)

    monkeypatch.setattr(tarfile.TarFile, "addfile", full)
    before = rows(site), tree(site.parent)
    code, _, err = stairway("backup", "--site", str(site))
    said = " ".join(err.split())
    assert code == 2 and "Traceback" not in err
    assert "No space left on device [ENOSPC]" in said and "free space in" in said
    assert (rows(site), tree(site.parent)) == before
    _no_partials(site)


def test_a_failing_disk_during_a_backup_is_a_clean_error(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(archive.os, "fsync", broken)
    code, _, err = stairway("backup", "--site", str(site))
    assert code == 2 and "Traceback" not in err
    assert "Input/output error [EIO]" in " ".join(err.split())
    _no_partials(site)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 200 KB tmpfs (root only; skipped where mounting is not allowed)."""
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        if os.geteuid() == 0 and os.environ.get("CI") == "true":
            pytest.fail(f"mounting a tmpfs failed as root: {done.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_backup_onto_a_full_tmpfs_is_a_clean_error(site: Path, small_disk: Path) -> None:
    (site.parent / "data" / "big.bin").write_bytes(os.urandom(400_000))
    site.write_text(
        site.read_text("utf-8").replace('backup_dir = "backups"', f'backup_dir = "{small_disk}"'),
        "utf-8",
    )
    before = rows(site), tree(site.parent)
    code, _, err = stairway("backup", "--site", str(site))
    said = " ".join(err.split())
    assert code == 2 and "Traceback" not in err, err
    assert "No space left on device" in said and f"free space in {small_disk}" in said
    assert (rows(site), tree(site.parent)) == before
    assert [p.name for p in small_disk.iterdir() if p.name not in LOCKS] == []


def test_the_backup_library_refuses_overlapping_directories(site: Path, tmp_path: Path) -> None:
    """Callers that build a target without site.toml get the same rule."""
    ctx = context.open_context(site, None)
    (backup,) = operations.backups(ctx)
    data = site.parent / "data"
    target = restore.RestoreTarget("people", ctx.engine, data, data / "backups")
    before = tree(tmp_path)
    with pytest.raises(BackupError, match="overlap"):
        restore.restore_backup(target, backup.path)
    assert tree(tmp_path) == before


def test_a_backup_id_names_a_file_in_backup_dir_only(site: Path) -> None:
    (backup,) = operations.backups(context.open_context(site, None))
    shutil.copy(backup.path, site.parent.parent / "outside" / backup.path.name)
    code, _, err = stairway("restore", f"../../outside/{backup.id}", "--yes", "--site", str(site))
    assert code == 2 and "no backup" in err
