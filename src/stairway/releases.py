"""Releases on disk: signed artifacts checked before they are unpacked, and a ``current`` link.

A product publishes, for each release, an artifact (a zstd tar of the release tree), a release
manifest naming the artifact with its size and SHA-256, and an Ed25519 signature of that
manifest. A site trusts one public key (``[site] release_key``). Nothing is unpacked until the
signature, the product, the version, the size and the hash all match; then the tree goes to
``releases/<version>/`` under a temporary name and is renamed into place, and ``current`` is
swapped to it with one rename of a link. The previous release stays for rollback.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import orjson
import zstandard
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from stairway.errors import ReleaseError
from stairway.files import sync_directory, write_atomic

CURRENT = "current"
MARKER = ".stairway-release.json"


@dataclass(frozen=True)
class ReleaseManifest:
    """What a release manifest says of its artifact: product, version, file, SHA-256, size."""

    product: str
    version: str
    artifact: str  # file name, beside the manifest
    sha256: str
    size: int

    def encode(self) -> bytes:
        """The manifest as compact JSON with sorted keys: the bytes its signature covers."""
        return orjson.dumps(self.__dict__, option=orjson.OPT_SORT_KEYS)


def manifest_path(artifacts: Path, version: str) -> Path:
    """Where the manifest of release ``version`` lies among the artifacts."""
    return artifacts / f"release-{version}.json"


# --- publishing (the product's side) -----------------------------------------------------------


def generate_key(directory: Path) -> tuple[Path, Path]:
    """A new Ed25519 key pair: ``release.key`` (private, 0600) and ``release.pub``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = directory / "release.key"
    public = directory / "release.pub"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(private, pem)
    private.chmod(0o600)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    write_atomic(public, base64.b64encode(raw) + b"\n")
    return private, public


def sign_release(key_file: Path, artifact: Path, product: str, version: str) -> Path:
    """Write the release manifest beside ``artifact`` and its signature; returns the manifest."""
    key = load_private_key(key_file)
    manifest = ReleaseManifest(
        product, version, artifact.name, _sha256(artifact), artifact.stat().st_size
    )
    path = manifest_path(artifact.parent, version)
    body = manifest.encode()
    write_atomic(path, body)
    write_atomic(path.with_name(path.name + ".sig"), sign_bytes(key, body))
    return path


def load_private_key(key_file: Path) -> Ed25519PrivateKey:
    """The publisher's signing key from its PEM file (``release keygen`` writes one)."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError(f"{key_file} is not an Ed25519 private key", hint="use release keygen")
    return key


def pack_release(tree: Path, artifact: Path) -> None:
    """A release tree as a zstd tar (plain files and directories)."""
    with (
        artifact.open("wb") as raw,
        zstandard.ZstdCompressor().stream_writer(raw) as packed,
        tarfile.open(fileobj=packed, mode="w|") as tar,
    ):
        for path in sorted(tree.rglob("*")):
            tar.add(path, arcname=path.relative_to(tree).as_posix(), recursive=False)


# --- installing (the site's side) --------------------------------------------------------------


def check_release(
    artifacts: Path, key_file: Path, product: str | None, version: str
) -> ReleaseManifest:
    """The verified manifest of release ``version``; raises ReleaseError before anything else.
    ``product`` None accepts the product the signed manifest names (a site's first release,
    before any catalog of it is at hand)."""
    path = manifest_path(artifacts, version)
    signature = path.with_name(path.name + ".sig")
    for needed in (path, signature):
        if not needed.is_file():
            raise ReleaseError(
                f"{needed} is missing",
                hint=f"copy the release in with `stairway release fetch {version} --from URL|DIR` "
                "(or put release-V.json, its .sig and the artifact in the site's artifacts)",
            )
    body = path.read_bytes()
    verify_signature(key_file, body, signature.read_bytes(), path.name)
    manifest = parse_manifest(body, path.name)
    if (manifest.product, manifest.version) != (product or manifest.product, version):
        raise ReleaseError(
            f"{path.name} is signed for {manifest.product} {manifest.version}, "
            f"not {product} {version}",
            hint="publish the right release manifest",
        )
    _check_artifact(artifacts / manifest.artifact, manifest)
    return manifest


def parse_manifest(body: bytes, name: str) -> ReleaseManifest:
    """A signed manifest's fields; a signature does not make malformed JSON readable."""
    try:
        fields = orjson.loads(body)
        manifest = ReleaseManifest(**fields)
        if not all(isinstance(v, str) for v in (manifest.product, manifest.version)):
            raise TypeError("product and version must be strings")
        if not isinstance(manifest.size, int) or not isinstance(manifest.artifact, str):
            raise TypeError("artifact must be a string and size an integer")
    except (orjson.JSONDecodeError, TypeError) as err:
        raise ReleaseError(
            f"{name} is not a release manifest: {err}",
            hint="ask the publisher for a manifest written by `stairway release sign`",
        ) from None
    return manifest


def verify_signature(key_file: Path, body: bytes, signature: bytes, what: str) -> None:
    """Raises ReleaseError unless ``signature`` (base64) is ``key_file``'s over ``body``."""
    if not signature_holds(load_public_key(key_file), body, signature):
        raise ReleaseError(
            f"the signature of {what} does not verify with {key_file}",
            hint="it was not signed by the key this site trusts: do not install it",
        )


def signature_holds(key: Ed25519PublicKey, body: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (base64, as the publisher writes it) is ``key``'s over ``body``."""
    try:
        key.verify(base64.b64decode(signature.strip(), validate=True), body)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_bytes(key: Ed25519PrivateKey, body: bytes) -> bytes:
    """The detached signature of ``body`` as the publisher writes it: base64 and a newline."""
    return base64.b64encode(key.sign(body)) + b"\n"


def install_release(artifacts: Path, releases_dir: Path, manifest: ReleaseManifest) -> Path:
    """Unpack the checked artifact to ``releases/<version>`` (once); returns that directory."""
    target = releases_dir / manifest.version
    marker = target / MARKER
    if marker.is_file() and orjson.loads(marker.read_bytes()).get("sha256") == manifest.sha256:
        return target
    releases_dir.mkdir(parents=True, exist_ok=True)
    partial = releases_dir / f".{manifest.version}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    _check_artifact(artifacts / manifest.artifact, manifest)  # again: it may have changed since
    unpack(artifacts / manifest.artifact, partial)
    write_atomic(partial / MARKER, manifest.encode())
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
    sync_directory(releases_dir)
    return target


def current_release(releases_dir: Path) -> str | None:
    """The version ``current`` points at, or None when there is no link."""
    link = releases_dir / CURRENT
    return os.readlink(link) if link.is_symlink() else None


def switch_current(releases_dir: Path, version: str) -> str | None:
    """Point ``current`` at ``version`` with one rename; returns what it pointed at before."""
    if not (releases_dir / version).is_dir():
        raise ReleaseError(
            f"release {version} is not installed in {releases_dir}",
            hint=f"install it first: `stairway release fetch {version}`",
        )
    previous = current_release(releases_dir)
    temporary = releases_dir / f".{CURRENT}.new"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(version)
    os.replace(temporary, releases_dir / CURRENT)
    sync_directory(releases_dir)
    return previous


def load_public_key(key_file: Path) -> Ed25519PublicKey:
    """The public release key a site trusts (``[site] release_key``: base64 of the raw key)."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(key_file.read_bytes().strip()))
    except (OSError, ValueError) as err:
        raise ReleaseError(
            f"cannot read the release key {key_file}: {err}",
            hint="set [site] release_key to the product's release.pub",
        ) from None


def _check_artifact(artifact: Path, manifest: ReleaseManifest) -> None:
    if not artifact.is_file():
        raise ReleaseError(f"{artifact} is missing", hint="download the release artifact")
    if artifact.stat().st_size != manifest.size or _sha256(artifact) != manifest.sha256:
        raise ReleaseError(
            f"{artifact.name} does not match its signed SHA-256: it was changed or damaged",
            hint="download it again; nothing was installed",
        )


def unpack(artifact: Path, target: Path, limit: int | None = None) -> None:
    """A release tree (a zstd tar) unpacked into the new directory ``target``: plain files and
    directories only, none leaving the tree; with ``limit``, refused once its files hold more
    than ``limit`` bytes in all (a small artifact may expand without end)."""
    target.mkdir(parents=True)
    total = 0
    with (
        artifact.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for info in tar:
            name = PurePosixPath(info.name)
            if name.is_absolute() or ".." in name.parts or not (info.isfile() or info.isdir()):
                raise ReleaseError(
                    f"{artifact.name}: member {info.name!r} is refused (links, devices and "
                    "names leaving the tree are not unpacked)",
                    hint="rebuild the artifact from plain files",
                )
            total += info.size
            if limit is not None and total > limit:
                raise ReleaseError(
                    f"{artifact.name} unpacks to more than {limit} bytes: refused",
                    hint="a release tree is not that large; ask its publisher",
                )
            tar.extract(info, target, filter="data")


def sha256_of(path: Path) -> str:
    """The SHA-256 of the file at ``path``, read in chunks."""
    return _sha256(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
