"""A release taken from the signed release index: ``upgrade --to V --from-index URL|DIR``.

The index is read and verified as ``release check`` verifies it (signature, expiry, product,
no replay of an older index). The release it lists for V names its artifact, a zstd tar of the
release tree (``*.tar.zst``), with its SHA-256 and size; the artifact is downloaded from beside
the index, read no further than its signed size, and kept only when its SHA-256 is the signed
one. It is then unpacked (plain files and directories, nothing leaving the tree, at most
``UNPACK_LIMIT`` bytes) under ``.stairway/indexed/`` beside the site file, and the catalog it
ships is the upgrade's. Nothing is written before the artifact is verified: it is downloaded
into a temporary directory, and the tree unpacked under a temporary name and renamed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from stairway import release_feed, releases
from stairway.errors import ReleaseError
from stairway.files import write_atomic
from stairway.release_index import Artifact, IndexedRelease, ReleaseIndex
from stairway.release_source import catalog_grammar, catalog_product, copy_artifact
from stairway.releases import ReleaseManifest
from stairway.site import Site
from stairway.versions import Version

TREE = ".tar.zst"  # the artifact that is a release tree, as `releases.pack_release` makes it
UNPACK_LIMIT = 1 << 30  # bytes a release tree may hold once unpacked


def catalog_from_index(site: Site, version: str, source: str) -> Path:
    """The catalog release ``version`` ships, from its artifact the index at ``source`` (a URL
    or directory) lists, verified and unpacked; raises ReleaseError naming what is wrong."""
    catalog = site.site.catalog
    grammar = catalog_grammar(catalog)
    verified = release_feed.fetch_index(site, catalog_product(catalog), source, grammar)
    entry = _release(verified.index, version)
    name, signed = _tree_artifact(entry)
    manifest = ReleaseManifest(
        verified.index.product, entry.version, name, signed.sha256, signed.size
    )
    tree = release_feed.state_file(site).parent / "indexed" / f"{manifest.product}-{entry.version}"
    if not _unpacked_from(tree, manifest):
        _unpack(source, manifest, tree)
    return _catalog_in(tree, site)


def _release(index: ReleaseIndex, version: str) -> IndexedRelease:
    wanted = Version.parse(version, index.grammar)
    for entry in index.releases:
        if entry.at == wanted:
            return entry
    listed = ", ".join(entry.version for entry in index.releases) or "none"
    raise ReleaseError(
        f"the release index (index version {index.index_version}) lists no release {version}; "
        f"it lists: {listed}",
        hint="name a release the index lists with --to, or ask the publisher to publish it",
    )


def _tree_artifact(entry: IndexedRelease) -> tuple[str, Artifact]:
    trees = [(name, artifact) for name, artifact in entry.artifacts.items() if name.endswith(TREE)]
    if len(trees) == 1:
        return trees[0]
    said = ", ".join(entry.artifacts) or "no artifact"
    raise ReleaseError(
        f"release {entry.version} in the release index has {len(trees)} release trees "
        f"(*{TREE}) among its artifacts ({said}); one is needed",
        hint="ask the publisher to list the release's tree as its one *.tar.zst artifact",
    )


def _unpacked_from(tree: Path, manifest: ReleaseManifest) -> bool:
    """Whether ``tree`` already holds this very artifact, unpacked (a second run, a resume)."""
    marker = tree / releases.MARKER
    return marker.is_file() and marker.read_bytes() == manifest.encode()


def _unpack(source: str, manifest: ReleaseManifest, tree: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="stairway-index-") as download:
        copy_artifact(source, manifest, Path(download))
        tree.parent.mkdir(parents=True, exist_ok=True)
        partial = tree.with_name(f".{tree.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            releases.unpack(Path(download) / manifest.artifact, partial, UNPACK_LIMIT)
            write_atomic(partial / releases.MARKER, manifest.encode())
            shutil.rmtree(tree, ignore_errors=True)
            os.replace(partial, tree)
        finally:
            shutil.rmtree(partial, ignore_errors=True)


def _catalog_in(tree: Path, site: Site) -> Path:
    """The directory of ``tree`` holding ``stairway.toml``: where the site reads its catalog
    inside a release, else the tree's root, else the one directory under it that holds one."""
    inside = _inside_release(site)
    for first in (tree / inside if inside else None, tree):
        if first is not None and (first / "stairway.toml").is_file():
            return first
    found = sorted(p.parent for p in tree.glob("*/stairway.toml"))
    if len(found) == 1:
        return found[0]
    raise ReleaseError(
        f"the release tree unpacked in {tree} holds "
        + ("no catalog (no stairway.toml)" if not found else "more than one catalog"),
        hint="ask the publisher for a release tree with its catalog at its root or in one "
        "directory under it; nothing was changed on the site",
    )


def _inside_release(site: Site) -> Path | None:
    where, catalog = site.site.releases_dir, site.site.catalog
    if where is None or catalog is None:
        return None
    try:
        return catalog.relative_to(where / releases.CURRENT)
    except ValueError:
        return None
