"""Loading a catalog directory and checking it whole, before anything runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from pathlib import Path

from stairway.catalog.config_migrations import load_config_migrations
from stairway.catalog.deltas import load_deltas
from stairway.catalog.manifest import Manifest, ObjectsModel, ReleaseModel, load_manifest
from stairway.catalog.object_migrations import load_object_migrations
from stairway.configfiles.migration import ConfigMigration, show_key, unsettled_pairs
from stairway.errors import CatalogError
from stairway.objects.delta import Delta
from stairway.objects.migration import ObjectMigration, reused_paths
from stairway.schema.change import Change, Phase
from stairway.schema.phases import PhaseFinding, check_phase
from stairway.schema.reader import ChangeFile, parse_file_name, read_change
from stairway.schema.sqltext import Statement
from stairway.versions import Release, Version, find_release

MANIFEST = "stairway.toml"
DATA_LOSS_RULES = {"drop", "truncate", "delete", "type-change"}


@dataclass(frozen=True)
class Catalog:
    root: Path
    product: str
    releases: tuple[Release, ...]
    changes: tuple[Change, ...]
    objects: ObjectsModel | None = None
    object_migrations: tuple[ObjectMigration, ...] = ()
    config_migrations: tuple[ConfigMigration, ...] = ()
    deltas: tuple[Delta, ...] = ()
    manifest: Manifest | None = field(default=None, compare=False, repr=False)

    @property
    def latest(self) -> Release:
        return self.releases[-1]

    def release(self, version: Version | str) -> Release:
        wanted = version if isinstance(version, Version) else Version.parse(version)
        return find_release(self.releases, wanted)

    def changes_between(self, low: int, high: int) -> list[Change]:
        """Changes numbered low+1 .. high."""
        return [c for c in self.changes if low < c.number <= high]

    def release_of(self, number: int) -> Release | None:
        """The first release that ships change ``number``."""
        return next((r for r in self.releases if r.schema >= number), None)

    @cached_property
    def warnings(self) -> dict[int, list[PhaseFinding]]:
        found = {c.number: check_phase(c.statements, c.phase) for c in self.changes}
        return {n: [f for f in fs if not f.blocking] for n, fs in found.items() if fs}


def load_catalog(root: Path | str) -> Catalog:
    root = Path(root)
    if not root.is_dir():
        raise CatalogError(
            "no catalog directory here",
            path=str(root),
            hint="pass --catalog DIR (the directory holding stairway.toml) or set it in site.toml",
        )
    manifest = load_manifest(root / MANIFEST)
    releases = _releases(manifest, root / MANIFEST)
    changes = _changes(root / "schema")
    _check_schema_levels(releases, changes, root / MANIFEST)
    migrations = load_object_migrations(root)
    _check_object_migrations(manifest, releases, migrations, root)
    config = load_config_migrations(root)
    _check_config_migrations(releases, config)
    deltas = load_deltas(root)
    _check_deltas(manifest, releases, deltas, root)
    return Catalog(
        root,
        manifest.product.name,
        releases,
        changes,
        manifest.objects,
        migrations,
        config,
        deltas,
        manifest,
    )


def _releases(manifest: Manifest, path: Path) -> tuple[Release, ...]:
    releases = tuple(_release(model) for model in manifest.release)
    for before, after in pairwise(releases):
        if after.version <= before.version:
            word = "duplicated" if after.version == before.version else "out of order"
            raise CatalogError(
                f"release {after.version} is {word} (it follows {before.version})",
                path=str(path),
                hint="list each release once, oldest first",
            )
    for release in releases:
        _check_requires(releases, release, path)
    return releases


def _release(model: ReleaseModel) -> Release:
    return Release(
        version=Version(model.version),
        schema=model.schema_,
        lts=model.lts,
        rolling=model.rolling,
        requires=Version(model.requires) if model.requires else None,
        agent_protocol=model.agent_protocol,
    )


def _check_requires(releases: Sequence[Release], release: Release, path: Path) -> None:
    if release.requires is None:
        return
    known = {r.version for r in releases}
    if release.requires not in known:
        raise CatalogError(
            f"release {release.version} requires {release.requires}, which is no release",
            path=str(path),
            hint="name a release listed in this catalog",
        )
    if release.requires >= release.version:
        raise CatalogError(
            f"requires cycle: release {release.version} requires {release.requires}, "
            "which is not older",
            path=str(path),
            hint="a required stop must be an older release",
        )


def _changes(directory: Path) -> tuple[Change, ...]:
    if not directory.is_dir():
        return ()
    files = [f for p in sorted(directory.iterdir()) if (f := parse_file_name(p))]
    _check_numbering(files)
    changes = tuple(read_change(f) for f in sorted(files, key=lambda f: f.number))
    for change in changes:
        _check_change(change)
    return changes


def _check_numbering(files: Sequence[ChangeFile]) -> None:
    seen: dict[int, ChangeFile] = {}
    for file in files:
        if file.number in seen:
            raise CatalogError(
                f"change number {file.number} is used twice (also {seen[file.number].path.name})",
                path=str(file.path),
                hint="give every change its own number",
            )
        seen[file.number] = file
    for expected, number in enumerate(sorted(seen), start=1):
        if number != expected:
            raise CatalogError(
                f"change numbers must run 1, 2, 3 ... without gaps: {expected} is missing",
                path=str(seen[number].path),
                hint=f"renumber so that {number} becomes {expected}",
            )


def _check_change(change: Change) -> None:
    if not change.transactional and len(change.statements) > 1:
        raise CatalogError(
            f"`transaction: none` with {len(change.statements)} statements: a failure between "
            "them could not be rolled back",
            path=str(change.path),
            line=change.statements[1].line,
            hint="give each statement that must run outside a transaction its own change",
        )
    blocking = [f for f in check_phase(change.statements, change.phase) if f.blocking]
    if blocking and change.phase == Phase.EXPAND:
        first = blocking[0]
        raise CatalogError(
            f"labelled expand, but {first.message}",
            path=str(change.path),
            line=first.line,
            hint="label it `-- phase: contract` (or offline), or rewrite it as an expand change",
        )
    if change.down and not change.loses and _drops_data(change.down):
        raise CatalogError(
            "the down direction drops data but does not say what is lost",
            path=str(change.path),
            line=change.down[0].line,
            hint="add a header line `-- loses: <what is lost>`",
        )


def _drops_data(statements: Sequence[Statement]) -> bool:
    findings = check_phase(statements, Phase.EXPAND)
    return any(f.rule in DATA_LOSS_RULES for f in findings)


def _check_schema_levels(
    releases: Sequence[Release], changes: Sequence[Change], path: Path
) -> None:
    shipped = len(changes)
    for before, after in pairwise(releases):
        if after.schema < before.schema:
            raise CatalogError(
                f"release {after.version} has schema {after.schema}, below {before.schema} "
                f"of the older {before.version}",
                path=str(path),
                hint="a newer release keeps every change of the older ones",
            )
    for release in releases:
        if release.schema > shipped:
            raise CatalogError(
                f"release {release.version} needs schema {release.schema}, but only "
                f"{shipped} changes are shipped",
                path=str(path),
                hint=f"add the missing change files to schema/ or lower schema to {shipped}",
            )


def _check_object_migrations(
    manifest: Manifest,
    releases: Sequence[Release],
    migrations: Sequence[ObjectMigration],
    root: Path,
) -> None:
    if migrations:
        _require_objects(manifest, root, "object migrations are declared")
    for earlier, later in reused_paths(migrations):
        raise CatalogError(
            f"object migration {later.label} writes {'.'.join(later.target)}, which "
            f"{earlier.label} takes away: an object read again would lose the new value",
            path=later.source,
            hint="give the new key a name that no earlier migration removes, renames or moves",
        )
    for migration in migrations:
        _require_release(
            releases,
            migration.since,
            f"object migration {migration.label} is since {migration.since}, which is no release",
            migration.source,
            "`since` names the release whose code reads the new shape",
        )


def _check_config_migrations(
    releases: Sequence[Release], migrations: Sequence[ConfigMigration]
) -> None:
    for earlier, later in unsettled_pairs(migrations):
        raise CatalogError(
            f"config-file migration {later.label} ({later.describe()}) undoes "
            f"{earlier.label} ({earlier.describe()}): the next run would undo it again",
            path=later.source,
            hint=f"give {show_key(later.writes or later.takes)} a name no other migration of "
            "the file takes away or sets",
        )
    for migration in migrations:
        _require_release(
            releases,
            migration.since,
            f"config-file migration {migration.label} is since {migration.since}, which is "
            "no release",
            migration.source,
            "`since` names the release whose code reads the new shape of the file",
        )


def _check_deltas(
    manifest: Manifest, releases: Sequence[Release], deltas: Sequence[Delta], root: Path
) -> None:
    if deltas:
        _require_objects(manifest, root, "configuration deltas are shipped")
    for delta in deltas:
        _require_release(
            releases,
            delta.release,
            f"deltas/{delta.release}/ is no release of this catalog",
            delta.source,
            "name the directory after the release that ships the delta",
        )


def _require_objects(manifest: Manifest, root: Path, what: str) -> None:
    if manifest.objects is None:
        raise CatalogError(
            f"{what} but stairway.toml has no [objects] table",
            path=str(root / MANIFEST),
            hint="add [objects] naming the table, id, type and body columns (docs/objects.md)",
        )


def _require_release(
    releases: Sequence[Release], version: Version, message: str, source: str, hint: str
) -> None:
    if all(r.version != version for r in releases):
        raise CatalogError(message, path=source, hint=hint)
