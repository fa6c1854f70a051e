"""The backup archive: a zstd-compressed tar stream whose last member is ``manifest.json``.

Writing hashes every member as it goes, so the manifest is written last and the archive is read
in one pass. Reading refuses, before anything is extracted outside its staging area, any member
that is not a plain file or directory under a known top-level folder: absolute names, ``..``,
links, devices and FIFOs are refused, as is a member the manifest does not list or lists with
another size or SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

import zstandard

from stairway import faults
from stairway.errors import BackupError

MANIFEST = "manifest.json"
FOLDERS = ("database", "data", "config")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str


class ArchiveWriter:
    """Adds files to the tar stream and remembers each member's size and SHA-256."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar
        self.members: list[Member] = []

    def add_file(self, name: str, source: Path) -> Member:
        info = tarfile.TarInfo(_checked_name(name))
        stat = source.stat()
        info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), stat.st_mode & 0o777
        with source.open("rb") as handle:
            hashing = _HashingReader(handle)
            self._tar.addfile(info, hashing)
        if hashing.read_bytes != info.size:
            raise BackupError(
                f"{source} changed size while it was copied",
                hint="stop the product before taking a backup",
            )
        member = Member(info.name, info.size, hashing.hexdigest())
        self.members.append(member)
        return member

    def add_directory(self, name: str) -> None:
        info = tarfile.TarInfo(_checked_name(name))
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        self._tar.addfile(info)

    def add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o600
        self._tar.addfile(info, io.BytesIO(data))


@contextmanager
def writing(path: Path) -> Iterator[ArchiveWriter]:
    """A new archive at ``path``, written beside it and renamed into place when complete."""
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with temporary.open("wb") as raw:
            compressor = zstandard.ZstdCompressor(level=3, threads=-1)
            with (
                compressor.stream_writer(raw, closefd=False) as packed,
                tarfile.open(fileobj=packed, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                yield ArchiveWriter(tar)
            raw.flush()
            os.fsync(raw.fileno())
        faults.point("before:archive-write")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Extracted:
    """What one pass over an archive found: every member's size and hash, and the manifest."""

    members: dict[str, Member]
    manifest: bytes


def extract(path: Path, place: dict[str, Path]) -> Extracted:
    """Stream ``path`` once: each member into ``place[folder] / rest``, hashed on the way.

    ``place`` maps each top-level folder to a staging directory; nothing else is written.
    """
    members: dict[str, Member] = {}
    manifest = b""
    try:
        with path.open("rb") as raw, _reader(raw) as tar:
            for info in tar:
                if info.name == MANIFEST and info.isfile():
                    manifest = _read_all(tar.extractfile(info))
                    continue
                folder, rest = _split(info)
                if info.isdir():
                    (place[folder] / rest).mkdir(parents=True, exist_ok=True)
                    continue
                members[info.name] = _extract_file(tar, info, place[folder] / rest)
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as err:
        raise BackupError(
            f"{path.name} is damaged: {err}", hint="use another backup (`stairway backups`)"
        ) from None
    if not manifest:
        raise BackupError(
            f"{path.name} has no manifest: it is truncated or not a Stairway backup",
            hint="use another backup (`stairway backups`)",
        )
    return Extracted(members, manifest)


def read_manifest(path: Path) -> bytes:
    """The manifest bytes, read by streaming past the other members (for listing backups)."""
    with path.open("rb") as raw, _reader(raw) as tar:
        for info in tar:
            if info.name == MANIFEST:
                return _read_all(tar.extractfile(info))
    raise BackupError(f"{path.name} has no manifest", hint="it is truncated or not a backup")


@contextmanager
def _reader(raw: BinaryIO) -> Iterator[tarfile.TarFile]:
    stream = zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)
    with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        yield tar


def _split(info: tarfile.TarInfo) -> tuple[str, str]:
    """The member's top-level folder and the rest of its name, or a refusal saying why."""
    name = _checked_name(info.name)
    if not (info.isfile() or info.isdir()):
        kind = "a link" if info.issym() or info.islnk() else "a device or FIFO"
        raise BackupError(
            f"the archive member {info.name!r} is {kind}: refused",
            hint="a Stairway backup holds plain files only; this archive was not made by it",
        )
    folder, _, rest = name.partition("/")
    if folder not in FOLDERS:
        raise BackupError(
            f"the archive member {info.name!r} lies outside {', '.join(FOLDERS)}",
            hint="this archive was not made by Stairway",
        )
    return folder, rest


def _checked_name(name: str) -> str:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name or not pure.parts:
        raise BackupError(
            f"the archive member {name!r} has an absolute or parent-relative name: refused",
            hint="a member must stay inside the archive's tree",
        )
    return pure.as_posix()


def _extract_file(tar: tarfile.TarFile, info: tarfile.TarInfo, target: Path) -> Member:
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(info)
    assert source is not None  # a regular file always has a stream
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(target, info.mode & 0o777)
    return Member(info.name, info.size, digest.hexdigest())


def _read_all(stream: IO[bytes] | None) -> bytes:
    return stream.read() if stream is not None else b""


class _HashingReader(io.RawIOBase):
    """A file wrapper that hashes what tarfile reads from it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._digest.update(data)
        self.read_bytes += len(data)
        return data

    def readable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
