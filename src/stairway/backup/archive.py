"""The backup archive: a zstd-compressed tar stream whose last member is ``manifest.json``.

Writing hashes every member as it goes, so the manifest is written last. Reading takes two
passes: the first streams past the members to the manifest (``read_manifest``) so that it can be
checked before anything is written; the second (``extract``) stages only the members the
manifest lists, with the sizes it lists. Both passes are bounded: an archive may not expand
beyond ``MAX_RATIO`` times its compressed size (``ceiling``), so a decompression bomb is refused
after a bounded amount of work and no disk at all. Any member that is not a plain file or a
directory under a known top-level folder is refused: absolute names, ``..``, links, devices and
FIFOs.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator, Mapping
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
FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)  # not sparse or contiguous: they expand
# zstd shrinks real site data (dumps, text, attachments) 2 to 50 times; a thousand times is
# zeros or a bomb. Below the floor the ratio is not looked at: tiny archives of empty files
# compress very well and can do no harm.
MAX_RATIO = 1000
RATIO_FLOOR = 16 << 20
MANIFEST_LIMIT = 128 << 20  # bytes of manifest read into memory at most
FOREIGN = (
    "Stairway did not write this archive, or it was altered since; nothing was restored: "
    "use another backup (`stairway backups`)"
)


@dataclass(frozen=True)
class Member:
    """One file in a backup archive: its name in the archive, size and SHA-256."""

    name: str
    size: int
    sha256: str


class ArchiveWriter:
    """Adds files to the tar stream and remembers each member's size and SHA-256."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar
        self.members: list[Member] = []

    def add_file(self, name: str, source: Path) -> Member:
        """Copy ``source`` into the archive as ``name``, hashing it on the way.

        Raises:
            BackupError: The name is not one a backup may hold, or the file changed size while it
                was copied (the product was still writing).
        """
        info = tarfile.TarInfo(checked_name(name))
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
        """Add an empty directory ``name`` to the archive."""
        info = tarfile.TarInfo(checked_name(name))
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        self._tar.addfile(info)

    def add_bytes(self, name: str, data: bytes) -> None:
        """Add ``data`` as the member ``name``; it is not listed in ``members``."""
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


def ceiling(compressed: int) -> int:
    """The most an archive of ``compressed`` bytes may declare before it is taken for a bomb."""
    return max(MAX_RATIO * compressed, RATIO_FLOOR)


def read_manifest(path: Path) -> bytes:
    """The manifest's bytes, read by streaming past the other members without keeping them.

    The stream is bounded (``ceiling``), so an archive that expands without end is refused
    here, before its manifest is even found.
    """
    with _reading(path) as tar:
        for info in tar:
            if info.name == MANIFEST:
                return _manifest_bytes(tar, info, path)
    raise BackupError(
        f"{path.name} has no manifest: it is truncated or not a Stairway backup",
        hint="use another backup (`stairway backups`)",
    )


def extract(
    path: Path, place: dict[str, Path], expected: Mapping[str, int], manifest: bytes
) -> dict[str, Member]:
    """Stream ``path`` again: each listed member into ``place[folder] / rest``, hashed on the way.

    ``expected`` is the manifest's size of every member and ``manifest`` its bytes from the
    first pass. Refused: a member not listed, listed with another size, seen twice, or one that
    is not a plain file (or a directory under ``data/``). ``place`` maps each top-level folder
    to a staging directory; nothing else is written.
    """
    found: dict[str, Member] = {}
    seen: set[str] = set()
    try:
        with _reading(path) as tar:
            for info in tar:
                name = _first_time(info, seen)
                if name == MANIFEST:
                    _same_manifest(tar, info, path, manifest)
                    continue
                folder, rest = _split(info)
                if info.isdir():
                    _make_directory(place[folder], folder, rest, name)
                    continue
                size = _declared(name, info.size, expected)
                found[name] = _extract_file(tar, info, place[folder] / rest, size)
    except OSError as err:
        raise BackupError(
            f"staging {path.name} failed: {err.strerror or err} ({err.filename or path})",
            hint="nothing live was changed; free space beside the data directory and in "
            "backup_dir, then run the restore again",
        ) from None
    return found


@contextmanager
def _reading(path: Path) -> Iterator[tarfile.TarFile]:
    """The archive's tar stream, bounded by ``ceiling``; a broken stream is a BackupError."""
    try:
        with path.open("rb") as raw:
            limit = 2 * ceiling(os.fstat(raw.fileno()).st_size)  # headers and padding: slack
            stream = zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)
            bounded = _Bounded(stream, limit, path.name)
            with stream, tarfile.open(fileobj=bounded, mode="r|") as tar:
                yield tar
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as err:
        raise BackupError(
            f"{path.name} is damaged: {err}", hint="use another backup (`stairway backups`)"
        ) from None


def _manifest_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path) -> bytes:
    if info.type not in FILE_TYPES or info.size > MANIFEST_LIMIT:
        raise BackupError(
            f"{path.name}: its {MANIFEST} is not a plain file of at most {MANIFEST_LIMIT} bytes",
            hint=FOREIGN,
        )
    return _read_all(tar.extractfile(info))


@dataclass(frozen=True)
class Extracted:
    """One member taken out of an archive, and the archive's manifest bytes."""

    members: dict[str, Member]
    manifest: bytes


def extract_member(path: Path, name: str, target: Path, size: int) -> Extracted:
    """The member ``name`` (``size`` bytes, as the manifest says) into ``target``, and the
    manifest: what a comparison with the backup needs, without unpacking its data directory."""
    manifest = read_manifest(path)
    members: dict[str, Member] = {}
    with _reading(path) as tar:
        for info in tar:
            if info.name == name and info.isfile():
                members[name] = _extract_file(tar, info, target, size)
                break
    if name not in members:
        raise BackupError(
            f"{path.name} lacks {name}: it is truncated or not a Stairway backup",
            hint="use another backup (`stairway backups`)",
        )
    return Extracted(members, manifest)


def _same_manifest(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path, first: bytes) -> None:
    if _manifest_bytes(tar, info, path) != first:
        raise BackupError(
            f"{path.name} changed while it was read: its manifest differs between two passes",
            hint="make sure nothing writes to backup_dir during a restore, then run it again",
        )


def _first_time(info: tarfile.TarInfo, seen: set[str]) -> str:
    """The member's name in its one spelling; a second member of the same name is refused."""
    name = checked_name(info.name)
    if name in seen:
        raise BackupError(
            f"the archive holds {name!r} twice: refused",
            hint=FOREIGN,
        )
    seen.add(name)
    return name


def _declared(name: str, size: int, expected: Mapping[str, int]) -> int:
    if name not in expected:
        raise BackupError(
            f"the archive member {name} is not listed in the manifest: refused",
            hint=FOREIGN,
        )
    if size != expected[name]:
        raise BackupError(
            f"the archive member {name!r} says it holds {size} bytes, the manifest "
            f"{expected[name]}: refused",
            hint=FOREIGN,
        )
    return size


def _make_directory(root: Path, folder: str, rest: str, name: str) -> None:
    if folder != "data":
        raise BackupError(
            f"the archive member {name!r} is a directory outside data/: refused",
            hint=FOREIGN,
        )
    (root / rest).mkdir(parents=True, exist_ok=True)


def _split(info: tarfile.TarInfo) -> tuple[str, str]:
    """The member's top-level folder and the rest of its name, or a refusal saying why."""
    name = checked_name(info.name)
    if info.type not in (*FILE_TYPES, tarfile.DIRTYPE):
        kind = "a link" if info.issym() or info.islnk() else "a device or FIFO (not a plain file)"
        raise BackupError(
            f"the archive member {info.name!r} is {kind}: refused",
            hint=FOREIGN,
        )
    return split_name(name)


def split_name(name: str) -> tuple[str, str]:
    """``folder/rest`` of a checked member name; refused outside the known folders."""
    folder, _, rest = name.partition("/")
    if folder not in FOLDERS or not rest:
        raise BackupError(
            f"the archive member {name!r} lies outside {', '.join(FOLDERS)}",
            hint=FOREIGN,
        )
    return folder, rest


def checked_name(name: str) -> str:
    """A member name that stays inside the archive's tree, in its one spelling."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name or "\x00" in name or not pure.parts:
        raise BackupError(
            f"the archive member {name!r} has an absolute or parent-relative name: refused",
            hint=FOREIGN,
        )
    return pure.as_posix()


def _extract_file(tar: tarfile.TarFile, info: tarfile.TarInfo, target: Path, size: int) -> Member:
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(info)
    assert source is not None  # a regular file always has a stream
    digest, written = hashlib.sha256(), 0
    with target.open("xb") as out:  # never over a file staged before
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > size:  # stop at once: the member is larger than it said
                raise BackupError(
                    f"the archive member {info.name!r} holds more than its {size} bytes: refused",
                    hint=FOREIGN,
                )
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(target, info.mode & 0o777)
    return Member(info.name, written, digest.hexdigest())


def _read_all(stream: IO[bytes] | None) -> bytes:
    return stream.read() if stream is not None else b""


class _HashingReader(io.RawIOBase):
    """A file wrapper that hashes what tarfile reads from it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        """Read from the file, hashing and counting what is read."""
        data = self._handle.read(size)
        self._digest.update(data)
        self.read_bytes += len(data)
        return data

    def readable(self) -> bool:
        """Always true: the wrapper is read from."""
        return True

    def hexdigest(self) -> str:
        """The SHA-256 of everything read so far."""
        return self._digest.hexdigest()


class _Bounded(io.RawIOBase):
    """A decompressed stream that refuses to yield more than ``limit`` bytes."""

    def __init__(self, stream: zstandard.ZstdDecompressionReader, limit: int, name: str) -> None:
        self._stream = stream
        self._limit = limit
        self._name = name
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        """Read decompressed bytes; raises BackupError once past the limit."""
        data = self._stream.read(size)
        self._read += len(data)
        if self._read > self._limit:
            raise BackupError(
                f"{self._name} expands to more than {self._limit} bytes, over {MAX_RATIO} times "
                "its compressed size: refused as a decompression bomb",
                hint=f"a Stairway backup is never compressed that far. {FOREIGN}",
            )
        return data

    def readable(self) -> bool:
        """Always true: the stream is read from."""
        return True
