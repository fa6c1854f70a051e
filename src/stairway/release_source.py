"""Where a release comes from, and the catalog it ships.

A site that keeps its releases (``releases_dir``) reads the catalog of the release it runs
through the ``current`` link (``catalog = "/opt/app/releases/current/upgrades"``). The release
an operator upgrades *to* carries its own catalog, the one that knows every older release: it is
read from ``releases/<V>/upgrades`` once that release is installed, and installing it is
:func:`fetch`: the signed manifest is checked against the site's key, then the artifact's size
and SHA-256, and only then is the tree unpacked. A release comes from the site's ``artifacts``
directory, or from a URL or directory the operator names, copied into ``artifacts`` first.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO, cast

from stairway import journal, releases
from stairway.catalog import load_catalog
from stairway.errors import ReleaseError, SiteError, UpgradeError
from stairway.files import write_atomic
from stairway.releases import ReleaseManifest
from stairway.site import SiteSection
from stairway.version_grammars import GrammarName

MANIFEST_LIMIT = 64 << 10  # a release manifest or signature larger than this is not one
TIMEOUT = 60.0


def fetch(site: SiteSection, version: str, source: str | None = None) -> Path:
    """Release ``version`` verified and unpacked into ``releases_dir``; returns its directory.

    ``source`` (a URL or a directory holding ``release-V.json``, its ``.sig`` and the artifact)
    is copied into ``artifacts`` first; without it the release must already be there.
    """
    releases_dir, artifacts, key = _where(site)
    if source is not None:
        _download(source, artifacts, key, version)
    manifest = releases.check_release(artifacts, key, catalog_product(site.catalog), version)
    return releases.install_release(artifacts, releases_dir, manifest)


def catalog_product(root: Path | None) -> str | None:
    """The product a catalog names; None when there is no catalog to read yet (a site's first
    release is checked against its signature alone: the key is the product's)."""
    if root is None or not (root / "stairway.toml").is_file():
        return None
    return load_catalog(root).product


def catalog_grammar(root: Path | None) -> GrammarName | None:
    """How the product of a catalog writes its versions; None when there is no catalog to read
    yet (the index's own grammar is taken then)."""
    if root is None or not (root / "stairway.toml").is_file():
        return None
    return load_catalog(root).versions


def install_first(site: SiteSection, version: str) -> Path | None:
    """A new site's first release installed and made ``current``, when the site keeps its
    releases; returns its directory (None without ``releases_dir``, or when it is current)."""
    if site.releases_dir is None:
        return None
    if releases.current_release(site.releases_dir) == version:
        return None
    installed = fetch(site, version)
    releases.switch_current(site.releases_dir, version)
    return installed


def catalog_of(site: SiteSection, version: str) -> Path | None:
    """The catalog release ``version`` ships, installing the release when it is not yet;
    None when the site does not read its catalog from its releases."""
    relative = _catalog_in_release(site)
    if relative is None:
        return None
    assert site.releases_dir is not None  # a relative path was found under it
    installed = site.releases_dir / version
    if not (installed / releases.MARKER).is_file():
        if site.artifacts is None or site.release_key is None:
            return None
        if not releases.manifest_path(site.artifacts, version).is_file():
            return None  # not published here: the current catalog answers (and may refuse)
        installed = fetch(site, version)
    return installed / relative


def interrupted_target(site: SiteSection) -> str | None:
    """The release an interrupted upgrade was going to (its journal's plan), if one is."""
    if site.backup_dir is None:
        return None
    try:
        target = journal.read(site.backup_dir / journal.ACTIVE).plan.get("to")
    except (OSError, UpgradeError):
        return None  # the upgrade's own command says what is wrong with its journal
    return target if isinstance(target, str) else None


def _catalog_in_release(site: SiteSection) -> Path | None:
    """Where the site's catalog lies inside a release, when it is read through ``current``."""
    if site.releases_dir is None or site.catalog is None:
        return None
    try:
        return site.catalog.relative_to(site.releases_dir / releases.CURRENT)
    except ValueError:
        return None


def _where(site: SiteSection) -> tuple[Path, Path, Path]:
    if site.releases_dir is None or site.artifacts is None or site.release_key is None:
        raise SiteError(
            "site.toml names no releases_dir, artifacts and release_key",
            hint="set all three in the [site] table (docs/site.md) to install signed releases",
        )
    return site.releases_dir, site.artifacts, site.release_key


# --- copying a release in ------------------------------------------------------------------------


def _download(source: str, artifacts: Path, key: Path, version: str) -> None:
    """Copy the release's manifest, signature and artifact from ``source`` into ``artifacts``:
    the signature is checked before the artifact is read, and the artifact is read no further
    than the size the signed manifest states."""
    name = releases.manifest_path(artifacts, version).name
    body = _read(source, name, MANIFEST_LIMIT)
    signature = _read(source, name + ".sig", MANIFEST_LIMIT)
    releases.verify_signature(key, body, signature, name)
    manifest = releases.parse_manifest(body, name)
    if manifest.version != version:
        raise ReleaseError(
            f"{name} from {source} is signed for release {manifest.version}, not {version}",
            hint="name the source that publishes this release",
        )
    artifacts.mkdir(parents=True, exist_ok=True)
    copy_artifact(source, manifest, artifacts)
    write_atomic(artifacts / (name + ".sig"), signature)
    write_atomic(artifacts / name, body)


def copy_artifact(source: str, manifest: ReleaseManifest, artifacts: Path) -> None:
    """The artifact into ``artifacts`` only when its size and SHA-256 are the signed ones (a
    release manifest's, or the release index's); read no further than one byte past the size."""
    if Path(manifest.artifact).name != manifest.artifact or manifest.artifact.startswith("."):
        raise ReleaseError(
            f"the signed manifest names the artifact {manifest.artifact!r}, not a plain file name",
            hint="do not install this release; ask its publisher",
        )
    partial = artifacts / f".{manifest.artifact}.partial"
    try:
        with _open(source, manifest.artifact) as stream, partial.open("wb") as out:
            copied, digest = _copy_limited(stream, out, manifest.size)
            out.flush()
            os.fsync(out.fileno())
        if copied != manifest.size:
            raise ReleaseError(
                f"{manifest.artifact} from {source} has "
                f"{'more than' if copied > manifest.size else 'only'} the {manifest.size} bytes "
                "it is signed for",
                hint="download it again from a good source; nothing was installed",
            )
        if digest != manifest.sha256:
            raise ReleaseError(
                f"{manifest.artifact} from {source} does not match its signed SHA-256: "
                "it was changed or damaged",
                hint="download it again from a good source; nothing was installed",
            )
        os.replace(partial, artifacts / manifest.artifact)
    finally:
        partial.unlink(missing_ok=True)


def _copy_limited(stream: BinaryIO, out: BinaryIO, size: int) -> tuple[int, str]:
    """Bytes copied (one more than ``size`` at most) and their SHA-256."""
    copied, digest = 0, hashlib.sha256()
    while chunk := stream.read(min(1 << 20, size + 1 - copied)):
        copied += len(chunk)
        if copied > size:
            break  # more than signed for: refused by the caller
        digest.update(chunk)
        out.write(chunk)
    return copied, digest.hexdigest()


def read_capped(source: str, name: str, limit: int) -> bytes:
    """``name`` under ``source`` (http(s) URL or directory), read no further than one byte
    past ``limit``: a longer answer is cut there, for the caller to refuse as too large."""
    with _open(source, name) as stream:
        body: bytes = stream.read(limit + 1)
    return body


def _read(source: str, name: str, limit: int) -> bytes:
    body = read_capped(source, name, limit)
    if len(body) > limit:
        raise ReleaseError(
            f"{name} from {source} is larger than {limit} bytes: it is not a release manifest",
            hint="name the source that publishes this release",
        )
    return body


def _open(source: str, name: str) -> BinaryIO:
    """A readable stream of ``name`` under ``source`` (http(s) URL or directory)."""
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme in ("http", "https"):
        url = source.rstrip("/") + "/" + urllib.parse.quote(name)
        try:
            return cast(BinaryIO, urllib.request.urlopen(url, timeout=TIMEOUT))
        except (urllib.error.URLError, OSError, ValueError) as err:
            if isinstance(err, urllib.error.HTTPError):
                err.close()  # an error answer holds its connection open until closed
            raise ReleaseError(
                f"cannot download {url}: {getattr(err, 'reason', err)}",
                hint="check the URL and that the release is published there",
            ) from None
    if scheme and len(scheme) > 1:
        raise ReleaseError(
            f"{source}: only http://, https:// or a directory can be fetched from",
            hint="name the release's URL or the directory holding its files",
        )
    path = Path(source) / name
    try:
        return path.open("rb")
    except OSError as err:
        raise ReleaseError(
            f"cannot read {path}: {err.strerror or err}",
            hint="name the directory holding the published files (release-V.json, its .sig "
            "and the artifact; or release-index.json and its .sig)",
        ) from None
