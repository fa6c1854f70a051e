"""The site key ring: the current site key, and during a rotation the previous one too.

A key file holds one key per line, ``<id> <base64 of 32 bytes>``, the current key first; the id
is the start of the key's SHA-256, so a sealed secret names the key it needs without revealing
it. The file must be readable by its owner only (like ssh's keys): a key file others can read is
refused. ``STAIRWAY_SITE_KEY`` may hold the same lines instead (``;`` also separates keys).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from stairway.errors import SecretError
from stairway.files import write_atomic

ENVIRONMENT = "STAIRWAY_SITE_KEY"
KEY_BYTES = 32


@dataclass(frozen=True)
class SiteKey:
    """One site key: its id (the start of its SHA-256) and its 32 bytes."""

    id: str
    material: bytes

    @classmethod
    def generate(cls) -> SiteKey:
        """A new random site key."""
        return cls.of(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def of(cls, material: bytes) -> SiteKey:
        """The site key of ``material``, with the id derived from it."""
        return cls(hashlib.sha256(material).hexdigest()[:16], material)

    def line(self) -> str:
        """The key as a key file holds it: ``<id> <base64 key>``."""
        return f"{self.id} {base64.b64encode(self.material).decode()}"

    def __repr__(self) -> str:  # never the material, in a traceback or a log
        return f"SiteKey({self.id})"


@dataclass(frozen=True)
class KeyRing:
    """The site keys a host holds: the current key, and during a rotation older ones."""

    keys: tuple[SiteKey, ...]  # the current key first

    @property
    def current(self) -> SiteKey:
        """The key new secrets are sealed with."""
        return self.keys[0]

    def find(self, key_id: str) -> SiteKey | None:
        """The key with id ``key_id``, or None when the ring lacks it."""
        return next((k for k in self.keys if k.id == key_id), None)

    def encode(self) -> bytes:
        """The ring as a key file's bytes, one key a line, the current key first."""
        return "".join(f"{k.line()}\n" for k in self.keys).encode()

    @classmethod
    def parse(cls, text: str, where: str) -> KeyRing:
        """Read key lines (newline- or ``;``-separated); ``where`` names the source in errors.

        Blank lines and ``#`` comments are skipped.

        Raises:
            SecretError: A line is not a site key or does not match its id, or no key is given.
        """
        keys = []
        for number, line in enumerate(text.replace(";", "\n").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            keys.append(_parse_line(line, f"{where}, line {number}"))
        if not keys:
            raise SecretError(f"{where} holds no site key", hint=_SET_UP)
        return cls(tuple(keys))


_SET_UP = "create one with `stairway secrets init` (it writes [secrets] key_file), or restore it"


def _parse_line(line: str, where: str) -> SiteKey:
    parts = line.split()
    try:
        if len(parts) != 2:
            raise ValueError("expected `<id> <base64 key>`")
        material = base64.b64decode(parts[1], validate=True)
        if len(material) != KEY_BYTES:
            raise ValueError(f"the key is {len(material)} bytes, not {KEY_BYTES}")
    except ValueError as err:
        raise SecretError(f"{where}: not a site key: {err}", hint=_SET_UP) from None
    key = SiteKey.of(material)
    if key.id != parts[0]:
        raise SecretError(
            f"{where}: the key does not match its id {parts[0]}",
            hint="the line was edited or cut: restore the key file from where it is kept safe",
        )
    return key


@dataclass
class KeySource:
    """Where this host's site key ring comes from; reloaded when the key file changes, so a
    running product follows a rotation without a restart."""

    key_file: Path | None
    _ring: KeyRing | None = None
    _stamp: tuple[int, int] | None = None

    def ring(self) -> KeyRing:
        """The key ring, read again when the key file has changed since it was last read."""
        if self._ring is None or self._changed():
            self._ring = self._load()
        return self._ring

    def reload(self) -> KeyRing:
        """The key ring, read afresh from the environment or the key file."""
        self._ring = self._load()
        return self._ring

    def _changed(self) -> bool:
        return self.key_file is not None and self._file_stamp() != self._stamp

    def _file_stamp(self) -> tuple[int, int] | None:
        assert self.key_file is not None
        try:
            found = self.key_file.stat()
        except OSError:
            return None
        return (found.st_ino, found.st_mtime_ns)

    def _load(self) -> KeyRing:
        if os.environ.get(ENVIRONMENT):
            return KeyRing.parse(os.environ[ENVIRONMENT], ENVIRONMENT)
        if self.key_file is None:
            raise SecretError(
                f"this site has no site key: neither {ENVIRONMENT} nor [secrets] key_file is set",
                hint=_SET_UP,
            )
        self._stamp = self._file_stamp()
        return read_key_file(self.key_file)

    @property
    def writable(self) -> bool:
        """A rotation rewrites the key file; a key given in the environment cannot be."""
        return not os.environ.get(ENVIRONMENT) and self.key_file is not None


def read_key_file(path: Path) -> KeyRing:
    """The key ring in the key file at ``path``.

    Raises SecretError when it is missing, unreadable, not key lines, or readable by others.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise SecretError(f"the site key file {path} does not exist", hint=_SET_UP) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SecretError(f"cannot read the site key file {path}: {err}", hint=_SET_UP) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"the site key file {path} can be read by others (mode {stat.S_IMODE(mode):o})",
            hint=f"chmod 600 {path}: the key must be readable by the product's user only",
        )
    return KeyRing.parse(text, str(path))


def write_key_file(path: Path, ring: KeyRing) -> None:
    """Atomically, created 0600 (``write_atomic``'s temporary file is), never briefly wider."""
    write_atomic(path, ring.encode())
