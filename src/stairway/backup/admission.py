"""What a restore accepts: a backup's manifest checked against the archive's rules and against
the site as site.toml describes it now. Pure: no file is read or written here.

The manifest names where things go, and it comes from a file anyone may have altered, so
nothing it says is taken on trust. Its members must have plain names under the known folders;
its database must be the one member its engine writes; its data-directory links must stay in the
tree and no member or link may lie behind another link; its config files are written only where
site.toml lists a config file, at the site's path, never the manifest's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stairway.backup import archive
from stairway.backup.database import POSTGRES_MEMBER, SQLITE_MEMBER
from stairway.backup.manifest import BackupManifest
from stairway.errors import BackupError

DATABASE_MEMBER = {"sqlite": SQLITE_MEMBER, "postgresql": POSTGRES_MEMBER}
ELSEWHERE = "nothing was restored; use another backup (`stairway backups`)"


@dataclass(frozen=True)
class SiteShape:
    """What a restore may write: the site's own parts, as its site.toml lists them now."""

    product: str
    engine: str  # "sqlite" or "postgresql"
    has_data_dir: bool
    config_files: tuple[Path, ...]


@dataclass(frozen=True)
class Admitted:
    """A manifest a restore may follow, and where each of its config members goes."""

    manifest: BackupManifest
    config: tuple[tuple[str, Path], ...]  # archive member -> the site's own config file


def check_archive(manifest: BackupManifest, compressed: int) -> None:
    """The rules every Stairway archive keeps, whatever site it is restored to."""
    _check_ratio(manifest, compressed)
    files = {name: _member_path(manifest, name) for name in manifest.members}
    _check_database(manifest)
    _check_nesting(manifest, files)
    _check_links(manifest, files)
    for item in manifest.config_files:
        _check_config_entry(manifest, item.member, item.path)


def admit(manifest: BackupManifest, site: SiteShape) -> Admitted:
    """A manifest that passed ``check_archive``, checked for this site; refused with what is
    wrong and what to do."""
    _check_fits(manifest, site)
    return Admitted(manifest, _map_config(manifest, site.config_files))


def _refuse(manifest: BackupManifest, what: str, hint: str = ELSEWHERE) -> BackupError:
    return BackupError(f"backup {manifest.id}: {what}: refused", hint=hint)


def _check_ratio(manifest: BackupManifest, compressed: int) -> None:
    if manifest.size > archive.ceiling(compressed):
        ratio = manifest.size // max(compressed, 1)
        raise _refuse(
            manifest,
            f"it declares {manifest.size} bytes in an archive of {compressed} bytes "
            f"({ratio}:1, above the ceiling of {archive.MAX_RATIO}:1), a decompression bomb",
        )


def _member_path(manifest: BackupManifest, name: str) -> PurePosixPath:
    """A listed member's name, checked: one spelling, no way out, under a known folder."""
    if archive.checked_name(name) != name:
        raise _refuse(manifest, f"the member {name!r} is not written in its plain form")
    archive.split_name(name)
    return PurePosixPath(name)


def _check_database(manifest: BackupManifest) -> None:
    expected = DATABASE_MEMBER[manifest.engine]
    if manifest.database != expected or expected not in manifest.members:
        raise _refuse(
            manifest,
            f"its database is {manifest.database!r}; a {manifest.engine} backup holds it in "
            f"{expected!r}",
        )
    others = sorted(n for n in manifest.members if n.startswith("database/") and n != expected)
    if others:
        raise _refuse(manifest, f"it holds more than one database ({', '.join(others[:3])})")


def _check_nesting(manifest: BackupManifest, files: dict[str, PurePosixPath]) -> None:
    """A file cannot also be a directory holding other members."""
    for name, path in files.items():
        clash = next((str(p) for p in path.parents if str(p) in files), None)
        if clash:
            raise _refuse(manifest, f"{clash!r} is a file and also holds {name!r}")


def _check_links(manifest: BackupManifest, files: dict[str, PurePosixPath]) -> None:
    """Links stay in the data directory, and nothing lies behind one (the tree could move)."""
    data = {str(p.relative_to("data")) for p in files.values() if p.parts[0] == "data"}
    for name, pointee in manifest.links.items():
        _check_link(manifest, name, pointee)
        if name in data:
            raise _refuse(manifest, f"the link data/{name} has the name of a file in the archive")
    for inside in [*data, *manifest.links]:
        behind = _behind_link(inside, manifest.links)
        if behind:
            raise _refuse(
                manifest,
                f"data/{inside} lies behind the link data/{behind}, where it would be written "
                "wherever the link points",
            )


def _check_link(manifest: BackupManifest, name: str, pointee: str) -> None:
    try:
        plain = archive.checked_name(name) == name
    except BackupError:
        plain = False
    if not plain:
        raise _refuse(manifest, f"the link name {name!r} is not a plain relative path")
    leaves = os.path.normpath(os.path.join(os.path.dirname(name), pointee))
    if not pointee or "\x00" in pointee or os.path.isabs(pointee) or leaves.split("/")[0] == "..":
        raise _refuse(
            manifest,
            f"the link data/{name} points out of the data directory ({pointee!r})",
            hint="restore refuses links that leave the tree; use another backup",
        )


def _behind_link(name: str, links: dict[str, str]) -> str | None:
    """The first link among ``name``'s parent directories, if any."""
    parents = reversed(PurePosixPath(name).parents[:-1])  # outermost first, without "."
    return next((str(p) for p in parents if str(p) in links), None)


def _check_config_entry(manifest: BackupManifest, member: str, path: str) -> None:
    if member not in manifest.members or not member.startswith("config/"):
        raise _refuse(
            manifest,
            f"its config entry names the member {member!r}, which is not a config/ member of "
            "the archive",
        )
    if not os.path.isabs(path) or "\x00" in path:
        raise _refuse(manifest, f"its config entry {member!r} goes to {path!r}, not a full path")


def _check_fits(manifest: BackupManifest, site: SiteShape) -> None:
    if manifest.product != site.product:
        raise BackupError(
            f"backup {manifest.id} is of {manifest.product}, this site runs {site.product}",
            hint="restore it on a site of the same product",
        )
    if manifest.engine != site.engine:
        raise BackupError(
            f"backup {manifest.id} holds a {manifest.engine} database, this site uses "
            f"{site.engine}",
            hint="move data between engines with `stairway export` and `stairway import`",
        )
    if manifest.data_dir and not site.has_data_dir:
        raise BackupError(
            f"backup {manifest.id} holds a data directory but site.toml names none",
            hint="set data_dir in the [site] table",
        )


def _map_config(manifest: BackupManifest, owned: tuple[Path, ...]) -> tuple[tuple[str, Path], ...]:
    """Each config member onto the site's own file of the same path; any other path refused."""
    by_path = {os.path.normpath(path): path for path in owned}
    mapped: dict[Path, str] = {}
    for item in manifest.config_files:
        live = by_path.get(os.path.normpath(item.path)) if os.path.isabs(item.path) else None
        if live is None:
            raise _refuse(
                manifest,
                f"it would write the config file {item.path!r}, which is not one of this "
                "site's config_files",
                hint=_config_hint(owned),
            )
        if live in mapped:
            raise _refuse(manifest, f"it holds the config file {live} twice")
        mapped[live] = item.member
    return tuple((member, live) for live, member in mapped.items())


def _config_hint(owned: tuple[Path, ...]) -> str:
    listed = ", ".join(str(p) for p in owned) or "none"
    return (
        f"a restore writes only the config files site.toml lists now ({listed}); if the file "
        "has moved since the backup, add its path to config_files or copy it out of the "
        "archive by hand. Nothing was restored"
    )
