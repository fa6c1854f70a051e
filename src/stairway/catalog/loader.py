"""Loading a catalog directory and checking it whole, before anything runs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from pathlib import Path

from stairway.catalog.config_migrations import load_config_migrations
from stairway.catalog.deltas import load_deltas
from stairway.catalog.history import (
    adopted_changes,
    adopted_repeatables,
    identifiers,
    points,
    schema_level,
)
from stairway.catalog.manifest import Manifest, ReleaseModel, load_manifest
from stairway.catalog.object_migrations import load_object_migrations
from stairway.catalog.snapshots import Snapshot, newest_at_or_below, read_snapshots
from stairway.configfiles.migration import ConfigMigration, show_key, unsettled_pairs
from stairway.errors import CatalogError
from stairway.objects.delta import Delta
from stairway.objects.migration import ObjectMigration, reused_paths
from stairway.objects.spec import ObjectsModel
from stairway.schema.change import Change, ChangeKind, Phase
from stairway.schema.dataloss import loses_data
from stairway.schema.earlier import Earlier
from stairway.schema.histories.repeatables import Repeatable
from stairway.schema.phases import PhaseFinding, check_phase
from stairway.schema.reader import ChangeFile, parse_file_name, read_change
from stairway.schema.sql_of import sql_of
from stairway.version_grammars import GrammarName
from stairway.versions import AgentWindow, Release, Version, find_release

MANIFEST = "stairway.toml"


@dataclass(frozen=True)
class Catalog:
    """A product's catalog as loaded and checked: releases, schema changes, migrations, deltas."""

    root: Path
    product: str
    releases: tuple[Release, ...]
    changes: tuple[Change, ...]
    objects: ObjectsModel | None = None
    object_migrations: tuple[ObjectMigration, ...] = ()
    config_migrations: tuple[ConfigMigration, ...] = ()
    deltas: tuple[Delta, ...] = ()
    manifest: Manifest | None = field(default=None, compare=False, repr=False)
    snapshots: tuple[Snapshot, ...] = ()
    repeatables: tuple[Repeatable, ...] = ()  # Flyway's R__ files, run after every migrate

    def snapshot_for(self, level: int, dialect: str) -> Snapshot | None:
        """The newest snapshot of ``dialect`` standing for at most changes 1..``level``."""
        return newest_at_or_below(self.snapshots, level, dialect)

    @property
    def latest(self) -> Release:
        """The newest release, listed last."""
        return self.releases[-1]

    @property
    def versions(self) -> GrammarName:
        """How the product writes its versions (``[product] versions``)."""
        return self.manifest.product.versions if self.manifest else "pep440"

    def version(self, text: str) -> Version:
        """``text`` read in the catalog's version grammar: operator input and stored state go
        through here. Raises PlanError naming the grammar when it is no such version."""
        return Version.parse(text, self.versions)

    def release(self, version: Version | str) -> Release:
        """The release of ``version``; raises PlanError when the catalog has none."""
        wanted = version if isinstance(version, Version) else self.version(version)
        return find_release(self.releases, wanted)

    def changes_between(self, low: int, high: int) -> list[Change]:
        """Mainline changes numbered low+1 .. high (no patch changes)."""
        return [c for c in self.changes if low < c.number <= high and not c.patch]

    def needs(self, release: Release) -> list[Change]:
        """Every change ``release`` needs: 1..schema and the patches it carries, in order."""
        return [c for c in self.changes if release.carries(c.number, c.patch)]

    def carriers(self, key: tuple[int, int]) -> list[Release]:
        """The releases that carry patch change ``key``, oldest first."""
        return [r for r in self.releases if key in r.patches]

    def release_of(self, number: int) -> Release | None:
        """The first release that ships change ``number``."""
        return next((r for r in self.releases if r.schema >= number), None)

    @cached_property
    def warnings(self) -> dict[int, list[PhaseFinding]]:
        """Non-blocking phase findings of each mainline change, by change number."""
        # keyed by mainline number; a patch change's findings are reported by `stairway check`
        found, earlier = {}, Earlier()
        for change in self.changes:
            if not change.patch:
                found[change.number] = warning_findings(change, earlier)
            earlier.add(change)
        return {n: fs for n, fs in found.items() if fs}


def load_catalog(root: Path | str, dialect: str = "postgresql") -> Catalog:
    """Load the catalog in ``root`` and check it whole, for a site whose database is
    ``dialect``: an adopted Alembic history's expand labels are proven on the SQL Alembic renders
    for it (``postgresql`` when no site is known).

    Raises:
        CatalogError: The first problem found: no directory, a file that does not read, or a
            rule broken between files (release order, schema levels, patches, migrations,
            deltas). ``stairway check`` lists them all.
    """
    root = Path(root)
    if not root.is_dir():
        raise CatalogError(
            "no catalog directory here",
            path=str(root),
            hint="pass --catalog DIR (the directory holding stairway.toml) or set it in site.toml",
        )
    manifest = load_manifest(root / MANIFEST)
    adopted = adopted_changes(root, manifest, root / MANIFEST, dialect)
    changes = _changes(root / "schema") if adopted is None else adopted
    earlier = Earlier()
    for change in adopted or ():
        raise_first(change_problems(change, earlier))
        earlier.add(change)
    repeatables = adopted_repeatables(root, manifest, root / MANIFEST, changes)
    releases = releases_of(manifest, identifiers(changes), root / MANIFEST)
    raise_first(release_problems(releases, root / MANIFEST))
    shipped = sum(1 for c in changes if not c.patch)
    raise_first(schema_level_problems(releases, shipped, root / MANIFEST))
    raise_first(patch_problems(releases, [c.key for c in changes], root / MANIFEST))
    grammar = manifest.product.versions
    migrations = load_object_migrations(root, grammar)
    raise_first(object_migration_problems(manifest, releases, migrations, root))
    config = load_config_migrations(root, grammar)
    raise_first(config_migration_problems(releases, config))
    deltas = load_deltas(root, grammar)
    raise_first(delta_problems(manifest, releases, deltas, root))
    snapshots, problems = read_snapshots(root, manifest, releases, points(changes))
    raise_first(problems)
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
        snapshots,
        repeatables,
    )


def raise_first(problems: Iterable[CatalogError]) -> None:
    """Loading stops at the first problem; ``stairway check`` collects them all."""
    for problem in problems:
        raise problem


def releases_of(manifest: Manifest, idents: Mapping[str, int], path: Path) -> tuple[Release, ...]:
    """The manifest's releases as ``Release`` values, in the order listed; a ``schema`` given
    as an adopted history's identifier is its change number (``idents``)."""
    grammar = manifest.product.versions
    return tuple(
        _release(model, schema_level(model, idents, path), grammar) for model in manifest.release
    )


def release_problems(releases: Sequence[Release], path: Path) -> Iterator[CatalogError]:
    """Releases out of order or listed twice, and ``requires`` naming no older release."""
    for before, after in pairwise(releases):
        if after.version <= before.version:
            word = "duplicated" if after.version == before.version else "out of order"
            yield CatalogError(
                f"release {after.version} is {word} (it follows {before.version})",
                path=str(path),
                hint="list each release once, oldest first",
            )
    for release in releases:
        yield from _requires_problems(releases, release, path)


def _release(model: ReleaseModel, schema: int, grammar: GrammarName) -> Release:
    return Release(
        version=Version(model.version, grammar),
        schema=schema,
        lts=model.lts,
        rolling=model.rolling,
        requires=Version(model.requires, grammar) if model.requires else None,
        agent_protocol=model.agent_protocol,
        agents=_window(model),
        patches=model.patch_keys,
        clear=tuple(model.clear),
        tasks=tuple(task.task(str(Version(model.version, grammar))) for task in model.task),
    )


def _window(model: ReleaseModel) -> AgentWindow | None:
    said = model.agents
    if said is None:
        return None
    return AgentWindow(said.minors_behind, said.ahead, hold=said.outside == "hold")


def _requires_problems(
    releases: Sequence[Release], release: Release, path: Path
) -> Iterator[CatalogError]:
    if release.requires is None:
        return
    known = {r.version for r in releases}
    if release.requires not in known:
        yield CatalogError(
            f"release {release.version} requires {release.requires}, which is no release",
            path=str(path),
            hint="name a release listed in this catalog",
        )
    elif release.requires >= release.version:
        yield CatalogError(
            f"requires cycle: release {release.version} requires {release.requires}, "
            "which is not older",
            path=str(path),
            hint="a required stop must be an older release",
        )


def _changes(directory: Path) -> tuple[Change, ...]:
    if not directory.is_dir():
        return ()
    files = [f for p in sorted(directory.iterdir()) if (f := parse_file_name(p))]
    raise_first(numbering_problems(files))
    changes = tuple(read_change(f) for f in sorted(files, key=lambda f: f.key))
    earlier = Earlier()
    for change in changes:
        raise_first(change_problems(change, earlier))
        earlier.add(change)
    return changes


def numbering_problems(files: Sequence[ChangeFile]) -> Iterator[CatalogError]:
    """Every number used twice and every number missing from 1, 2, 3 ... (and, after a
    change N, from its patches N.1, N.2 ...)."""
    seen: dict[tuple[int, int], ChangeFile] = {}
    for file in files:
        if file.key in seen:
            yield CatalogError(
                f"change number {_code(file)} is used twice (also {seen[file.key].path.name})",
                path=str(file.path),
                hint="give every change its own number",
            )
            continue
        seen[file.key] = file
    yield from _gaps(sorted(n for n, k in seen if not k), seen)
    for number, patch in sorted(k for k in seen if k[1]):
        yield from _patch_gaps(number, patch, seen)


def _code(file: ChangeFile) -> str:
    return f"{file.number}.{file.patch}" if file.patch else str(file.number)


def _gaps(numbers: list[int], seen: dict[tuple[int, int], ChangeFile]) -> Iterator[CatalogError]:
    missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers)) if numbers else []
    for gap in missing:
        after = next(n for n in numbers if n > gap)
        yield CatalogError(
            f"change numbers must run 1, 2, 3 ... without gaps: {gap} is missing",
            path=str(seen[(after, 0)].path),
            hint=f"add change {gap}, or renumber the changes from {after} on to close the gap",
        )


def _patch_gaps(
    number: int, patch: int, seen: dict[tuple[int, int], ChangeFile]
) -> Iterator[CatalogError]:
    file = seen[(number, patch)]
    if (number, 0) not in seen:
        yield CatalogError(
            f"patch change {number}.{patch} follows change {number}, which is not shipped",
            path=str(file.path),
            hint=f"a patch N.K is numbered after the last change N its LTS line has; ship "
            f"change {number} too, or renumber the patch",
        )
    elif patch > 1 and (number, patch - 1) not in seen:
        yield CatalogError(
            f"patch numbers after change {number} must run {number}.1, {number}.2 ... "
            f"without gaps: {number}.{patch - 1} is missing",
            path=str(file.path),
            hint=f"add patch {number}.{patch - 1}, or renumber this one",
        )


def patch_problems(
    releases: Sequence[Release], shipped: Sequence[tuple[int, int]], path: Path
) -> Iterator[CatalogError]:
    """Each patch a release carries is shipped and follows a change the release needs; each
    shipped patch is carried by a release; a later release of the same series keeps it."""
    patches = {key for key in shipped if key[1]}
    for release in releases:
        for number, patch in release.patches:
            yield from _carried_problems(release, number, patch, patches, path)
    for number, patch in sorted(patches):
        if all((number, patch) not in r.patches for r in releases):
            yield CatalogError(
                f"patch change {number}.{patch} is shipped but no release carries it",
                path=str(path),
                hint=f'add patches = ["{number}.{patch}"] to the release that ships it',
            )
    for before, after in pairwise(releases):
        dropped = set(before.patches) - set(after.patches)
        if before.version.series == after.version.series and dropped:
            number, patch = min(dropped)
            yield CatalogError(
                f"release {after.version} drops patch {number}.{patch}, which the older "
                f"{before.version} of its series carries",
                path=str(path),
                hint=f'add "{number}.{patch}" to the patches of {after.version}',
            )


def _carried_problems(
    release: Release, number: int, patch: int, patches: set[tuple[int, int]], path: Path
) -> Iterator[CatalogError]:
    if (number, patch) not in patches:
        yield CatalogError(
            f"release {release.version} carries patch {number}.{patch}, but no change file "
            f"{number:04d}.{patch}_name is shipped",
            path=str(path),
            hint="add the patch's file to schema/ or remove it from the release's patches",
        )
    elif number > release.schema:
        yield CatalogError(
            f"release {release.version} carries patch {number}.{patch} but has schema "
            f"{release.schema}: the patch follows change {number}, which it does not need",
            path=str(path),
            hint="a patch follows the last change of the line that carries it",
        )


def change_problems(change: Change, earlier: Earlier | None = None) -> Iterator[CatalogError]:
    """Every rule one change breaks: transaction mode, its expand label, its ``loses``;
    ``earlier`` holds the changes that run before it."""
    if change.patch and change.batches is not None:
        yield CatalogError(
            f"patch change {change.code} is a background change: a patch of an LTS line runs "
            "at once, in its own transaction",
            path=str(change.path),
            hint="write the fix as a SQL or Python change with phase expand, contract or offline",
        )
    # an Alembic revision's parts each run in a transaction of their own; only the block does not
    if not change.transactional and not change.in_parts and len(change.statements) > 1:
        yield CatalogError(
            f"`transaction: none` with {len(change.statements)} statements: a failure between "
            "them could not be rolled back",
            path=str(change.path),
            line=change.statements[1].line,
            hint="give each statement that must run outside a transaction its own change",
        )
    expand = change.phase == Phase.EXPAND  # only an expand label is checked, not trusted
    blocking = [f for f in phase_findings(change, earlier) if f.blocking] if expand else []
    for finding in blocking:
        line, where = located(change, finding.line)
        yield CatalogError(
            f"labelled expand, but {finding.message}{where}",
            path=str(change.path),
            line=line,
            hint="label it `-- phase: contract` (or offline), or rewrite it as an expand change",
        )
    if change.phase == Phase.EXPAND and change.opaque:
        yield CatalogError(
            f"labelled expand, but it cannot be proven expand: {change.opaque}",
            path=str(change.path),
            hint="declare it offline (or contract); only what renders as SQL can be checked",
        )
    losing = loses_data(change.down) if change.down and not change.loses else None
    if losing is not None:
        yield CatalogError(
            f"the down direction loses data ({losing.describe()}) but does not say what is lost",
            path=str(change.path),
            line=losing.line,
            hint="add a header line `-- loses: <what is lost>`",
        )


def warning_findings(change: Change, earlier: Earlier) -> list[PhaseFinding]:
    """The non-blocking findings on the SQL ``change`` amounts to (rendered if need be)."""
    found = check_phase(
        sql_of(change),
        change.phase,
        change.dialect,
        transactional=change.transactional,
        earlier=earlier.shape,
    )
    return [f for f in found if not f.blocking]


def phase_findings(change: Change, earlier: Earlier | None = None) -> list[PhaseFinding]:
    """The phase rules' findings on ``change``, after the changes in ``earlier``."""
    return check_phase(
        change.statements,
        change.phase,
        change.dialect,
        transactional=change.transactional,
        earlier=earlier.shape if earlier else None,
    )


def located(change: Change, line: int | None) -> tuple[int | None, str]:
    """Where a finding on a change's SQL is in its file: the line, or, for SQL rendered from an
    Alembic revision, no file line and a note of the rendered line."""
    if change.kind != ChangeKind.ALEMBIC or line is None:
        return line, ""
    return None, f" (line {line} of the SQL Alembic renders for it)"


def schema_level_problems(
    releases: Sequence[Release], shipped: int, path: Path
) -> Iterator[CatalogError]:
    """A release whose schema level is below an older one's, or above the ``shipped`` changes."""
    for before, after in pairwise(releases):
        if after.schema < before.schema:
            yield CatalogError(
                f"release {after.version} has schema {after.schema}, below {before.schema} "
                f"of the older {before.version}",
                path=str(path),
                hint="a newer release keeps every change of the older ones",
            )
    for release in releases:
        if release.schema > shipped:
            yield CatalogError(
                f"release {release.version} needs schema {release.schema}, but only "
                f"{shipped} changes are shipped",
                path=str(path),
                hint=f"add the missing change files to schema/ or lower schema to {shipped}",
            )


def object_migration_problems(
    manifest: Manifest,
    releases: Sequence[Release],
    migrations: Sequence[ObjectMigration],
    root: Path,
) -> Iterator[CatalogError]:
    """Object migrations without ``[objects]``, since no release, or reusing a path taken away."""
    if migrations:
        yield from _require_objects(manifest, root, "object migrations are declared")
    for earlier, later in reused_paths(migrations):
        yield CatalogError(
            f"object migration {later.label} writes {'.'.join(later.target)}, which "
            f"{earlier.label} takes away: an object read again would lose the new value",
            path=later.source,
            hint="give the new key a name that no earlier migration removes, renames or moves",
        )
    for migration in migrations:
        yield from _require_release(
            releases,
            migration.since,
            f"object migration {migration.label} is since {migration.since}, which is no release",
            migration.source,
            "`since` names the release whose code reads the new shape",
        )


def config_migration_problems(
    releases: Sequence[Release], migrations: Sequence[ConfigMigration]
) -> Iterator[CatalogError]:
    """Config-file migrations that undo each other, or are since no release."""
    for earlier, later in unsettled_pairs(migrations):
        yield CatalogError(
            f"config-file migration {later.label} ({later.describe()}) undoes "
            f"{earlier.label} ({earlier.describe()}): the next run would undo it again",
            path=later.source,
            hint=f"give {show_key(later.writes or later.takes)} a name no other migration of "
            "the file takes away or sets",
        )
    for migration in migrations:
        yield from _require_release(
            releases,
            migration.since,
            f"config-file migration {migration.label} is since {migration.since}, which is "
            "no release",
            migration.source,
            "`since` names the release whose code reads the new shape of the file",
        )


def delta_problems(
    manifest: Manifest, releases: Sequence[Release], deltas: Sequence[Delta], root: Path
) -> Iterator[CatalogError]:
    """Deltas without ``[objects]``, or in a directory named after no release."""
    if deltas:
        yield from _require_objects(manifest, root, "configuration deltas are shipped")
    for delta in deltas:
        yield from _require_release(
            releases,
            delta.release,
            f"deltas/{delta.release}/ is no release of this catalog",
            delta.source,
            "name the directory after the release that ships the delta",
        )


def _require_objects(manifest: Manifest, root: Path, what: str) -> Iterator[CatalogError]:
    if manifest.objects is None:
        yield CatalogError(
            f"{what} but stairway.toml has no [objects] table",
            path=str(root / MANIFEST),
            hint="add [objects] naming the table, id, type and body columns (docs/objects.md)",
        )


def _require_release(
    releases: Sequence[Release], version: Version, message: str, source: str, hint: str
) -> Iterator[CatalogError]:
    if all(r.version != version for r in releases):
        yield CatalogError(message, path=source, hint=hint)
