"""``stairway.guard()``: the one call a product makes at start.

It refuses to start a release against a database holding a contract or offline change the release
does not know (the database is newer than the binary), and against a database that lacks changes
the release needs. A database ahead only by expand changes is accepted: that is what lets the
previous release keep serving during a rolling upgrade.

It is called on every start, so it reads only ``stairway.toml`` (cached by modification time)
and runs one query on a cached engine.

A single-binary product migrates at start: ``auto_migrate=True, backup_first=True`` backs the
database up, applies every change the release needs, and on failure restores the backup and
raises ``MigrateOnStartFailed``, so that the process exits on the database it found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from stairway import maintenance
from stairway.backup import Backup, RestoreTarget, SiteParts, restore_backup, take_backup
from stairway.catalog import Catalog, load_catalog
from stairway.catalog.manifest import Manifest, load_manifest
from stairway.database import engine_for, sqlite_path
from stairway.errors import GuardRefused, MigrateOnStartFailed
from stairway.maintenance import Maintenance
from stairway.schema import migrator, recorder
from stairway.schema.change import Phase
from stairway.versions import Version

_MANIFESTS: dict[Path, _CachedManifest] = {}


@dataclass(frozen=True)
class GuardResult:
    """What ``guard`` found: the release may start, and against what.

    Attributes:
        version: The release that was checked.
        level: The database's schema level: the highest mainline change applied.
        ahead_by_expand: Expand changes the database holds beyond the release's schema, which
            a newer release applied during a rolling upgrade; the release serves with them.
        applied_now: The changes ``guard`` applied itself (``auto_migrate=True``).
        maintenance: The site's maintenance flag when it is on: the product admits
            administrators only; None when it is off.
        backup: The backup taken before migrating (``backup_first=True``), kept in the backup
            directory; None when none was taken.
    """

    version: str
    level: int
    ahead_by_expand: tuple[int, ...] = ()
    applied_now: tuple[int, ...] = ()
    maintenance: Maintenance | None = None  # on: admit administrators only
    backup: str | None = None

    @property
    def in_maintenance(self) -> bool:
        """Whether the site is in maintenance: the product should admit administrators only."""
        return self.maintenance is not None


Row = tuple[int, int, str]  # number, patch (0 for a mainline change), phase


def guard(
    database_url: str,
    catalog: Catalog | Path | str,
    version: str,
    *,
    auto_migrate: bool = False,
    backup_first: bool = False,
    backup_dir: Path | str | None = None,
) -> GuardResult:
    """Check that release ``version`` may start against ``database_url``.

    It refuses a database holding a contract or offline change the release does not know (the
    database is newer than the release) and a database lacking changes the release needs; a
    database ahead only by expand or background changes is accepted, and so is one that lacks
    only the release's own contract changes during a rolling upgrade. Called on every start: it
    reads only the catalog's ``stairway.toml`` (cached by modification time) and runs one query
    on an engine cached per URL.

    Args:
        database_url: The SQLAlchemy URL of the product's database.
        catalog: The release's catalog: its directory, or a loaded ``Catalog``.
        version: The release starting, as the catalog names it (``"2.0.0"``).
        auto_migrate: Apply the release's pending changes first when every one of them is an
            expand change (a change of any other phase still refuses the start).
        backup_first: With ``auto_migrate``: back the database up, then apply every pending
            change of the release, whatever its phase (the process starting is the only one
            using the database: a single-binary product), and record the release as the
            site's; on failure restore the backup and raise ``MigrateOnStartFailed``.
        backup_dir: Where that backup goes; beside a SQLite file (``FILE.backups``) unless
            given, required for any other database.

    Returns:
        The schema level, the expand changes the database is ahead by, those applied now, the
            maintenance flag, and the backup taken.

    Raises:
        GuardRefused: The release must not start against this database; the message says why
            and the hint which command settles it.
        MigrateOnStartFailed: Migrating at start failed; the database was restored from the
            backup (the message says so, or that the restore failed too).
        ValueError: ``backup_first`` without ``auto_migrate``.
    """
    if backup_first and not auto_migrate:
        raise ValueError("backup_first=True backs up before migrating: pass auto_migrate=True")
    needed, carried = _schema_of(catalog, version)
    rows, flag = _applied_rows(database_url)
    level = max((n for n, k, _ in rows if not k), default=0)
    _refuse_newer(rows, needed, carried, version)
    ahead = tuple(n for n, k, _ in rows if n > needed and not k)
    missing = sorted(set(carried) - {(n, k) for n, k, _ in rows})
    if level >= needed and not missing:
        return GuardResult(version, level, ahead, maintenance=flag)
    if not missing and _awaits_only_its_contract(
        catalog, version, {n for n, k, _ in rows if not k}, needed
    ):
        return GuardResult(version, level, ahead, maintenance=flag)
    if not auto_migrate:
        lacks = f"patch change {missing[0][0]}.{missing[0][1]}" if missing else ""
        raise GuardRefused(
            f"release {version} needs schema {needed}"
            + (f" and {lacks}" if lacks else "")
            + f", the database is at {level}"
            + (f" without {lacks}" if lacks else ""),
            hint="run `stairway migrate --to " + version + "` before starting this release",
        )
    if backup_first:
        where = _backups_of(database_url, backup_dir)
        return _migrate_on_start(database_url, catalog, version, needed, where)
    return _auto_migrate(database_url, catalog, version, needed)


def maintenance_flag(database_url: str) -> Maintenance | None:
    """The site's maintenance flag now (None when it is off): ``guard()``'s answer kept fresh
    while the product serves. One indexed read on an engine cached per URL, cheap enough for
    every request; while it is on, the product answers 503 with its ``reason`` to everyone but
    administrators (``stairway maintenance on --message TEXT`` sets it, as does an upgrade).
    """
    with engine_for(database_url).connect() as conn:
        return maintenance.read(conn)


def _applied_rows(database_url: str) -> tuple[list[Row], Maintenance | None]:
    """Applied changes (mainline and patches) and the maintenance flag, in one round trip."""
    try:
        return _query_rows(database_url, with_patches=True)
    except (OperationalError, ProgrammingError) as err:
        if not _lacks(err, "stairway_patches"):
            raise
    # a database whose bookkeeping predates patch changes has none
    return _query_rows(database_url, with_patches=False)


def _query_rows(database_url: str, with_patches: bool) -> tuple[list[Row], Maintenance | None]:
    try:
        with _one_statement(engine_for(database_url)) as conn:
            rows = recorder.guard_rows(conn, maintenance.KEY, with_patches)
            found = [value for number, _, value in rows if number == -1]
            return [r for r in rows if r[0] != -1], maintenance.parse(found[0]) if found else None
    except (OperationalError, ProgrammingError) as err:
        if not _lacks(err, "stairway_changes", "stairway_meta"):
            raise
        raise GuardRefused(
            "this database has never been set up by Stairway",
            hint="create it with `stairway init --version V` or adopt it with `stairway baseline`",
        ) from None


def _one_statement(engine: Engine) -> Connection:
    """A pooled connection for guard's single read. On PostgreSQL it runs in autocommit: one
    statement sees one snapshot anyway, and the BEGIN and ROLLBACK around it would be two more
    round trips, each costing as much as the read. SQLite keeps its own transaction handling
    (``database._sqlite``), which an isolation level set here would undo."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


def _lacks(err: OperationalError | ProgrammingError, *tables: str) -> bool:
    """Whether the database's own message names one of ``tables`` (the statement names all)."""
    return any(table in str(err.orig or err) for table in tables)


def _refuse_newer(
    rows: list[Row], needed: int, carried: tuple[tuple[int, int], ...], version: str
) -> None:
    for number, patch, phase in rows:
        unknown = (number, patch) not in carried if patch else number > needed
        if unknown and Phase(phase) not in (Phase.EXPAND, Phase.BACKGROUND):
            shown = f"{number}.{patch}" if patch else str(number)
            raise GuardRefused(
                f"the database holds {phase} change {shown}, which release {version} "
                f"(schema {needed}) does not know: the database is newer than this release",
                hint="start the release that applied it, or restore a backup taken before it",
            )


def _awaits_only_its_contract(
    catalog: Catalog | Path | str, version: str, applied: set[int], needed: int
) -> bool:
    """During a rolling upgrade the new release starts before its own contract changes, which
    run once no older instance is left; it starts then without them."""
    full = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    release = full.release(version)
    earlier = [r.schema for r in full.releases if r.version < release.version]
    own_from = max(earlier, default=0)
    missing = [c for c in full.changes if c.number <= needed and c.number not in applied]
    return release.rolling and all(
        c.phase == Phase.CONTRACT and c.number > own_from for c in missing
    )


def _auto_migrate(
    url: str, catalog: Catalog | Path | str, version: str, needed: int
) -> GuardResult:
    engine = engine_for(url)
    full = catalog if isinstance(catalog, Catalog) else load_catalog(catalog, engine.dialect.name)
    state = migrator.read_state(engine, full)
    release = full.release(version)
    todo = state.pending(full.changes, needed, release.patches)
    blocking = [c for c in todo if c.phase != Phase.EXPAND]
    if blocking:
        raise GuardRefused(
            f"release {version} needs {blocking[0].describe()}, which cannot run while serving",
            hint="migrate with the product stopped (`stairway migrate --to " + version + "`)",
        )
    done = migrator.migrate(engine, full, needed, only=Phase.EXPAND, release=release)
    return GuardResult(version, needed, (), tuple(a.change.number for a in done))


def _migrate_on_start(
    url: str, catalog: Catalog | Path | str, version: str, needed: int, where: Path
) -> GuardResult:
    """Back up, apply every change the release needs, record it; on failure put back."""
    engine = engine_for(url)
    full = catalog if isinstance(catalog, Catalog) else load_catalog(catalog, engine.dialect.name)
    release = full.release(version)
    level = migrator.read_state(engine, full).level
    found = migrator.site_release(engine) or f"schema-{level}"
    parts = SiteParts(full.product, found, level, engine, None, (), where, exact=True)
    taken = take_backup(parts)
    try:
        done = migrator.migrate(engine, full, needed, release=release)
        migrator.set_site_release(engine, full, version)
    except Exception as error:
        _put_back(RestoreTarget(full.product, engine, None, where), taken, version, error)
    applied = tuple(a.change.number for a in done)
    return GuardResult(version, needed, (), applied, backup=taken.id)


def _put_back(target: RestoreTarget, taken: Backup, version: str, error: Exception) -> NoReturn:
    """The migration failed: the database as the backup holds it, then an error to exit on."""
    backup, archive = taken.id, taken.path
    said = getattr(error, "message", None) or str(error).splitlines()[0]
    try:
        restore_backup(target, archive)
    except Exception as failure:
        raise MigrateOnStartFailed(
            f"release {version} could not migrate the database at start ({said}), and "
            f"restoring backup {backup} failed too ({failure}): the database may be half "
            "migrated",
            hint=f"restore it by hand (`stairway restore {backup} --yes`, archive {archive}), "
            "then start the release the database was at",
            backup=backup,
        ) from failure
    raise MigrateOnStartFailed(
        f"release {version} could not migrate the database at start: {said}; the database "
        f"was restored from backup {backup} as it was before",
        hint="fix the cause and start again, or start the release the database is at; "
        f"the backup stays in {target.backup_dir}",
        backup=backup,
    ) from error


def _backups_of(url: str, given: Path | str | None) -> Path:
    """The directory for the backup taken before migrating at start."""
    if given is not None:
        return Path(given)
    live = sqlite_path(engine_for(url))
    if live is None:
        raise GuardRefused(
            "backup_first=True needs backup_dir: the database is not a SQLite file",
            hint="pass backup_dir, e.g. the site's backup_dir, to guard()",
        )
    return live.with_name(live.name + ".backups")


def _schema_of(
    catalog: Catalog | Path | str, version: str
) -> tuple[int, tuple[tuple[int, int], ...]]:
    """The release's schema level and the patch changes it carries."""
    if isinstance(catalog, Catalog):
        release = catalog.release(version)
        return release.schema, release.patches
    cached = _manifest(Path(catalog))
    found = cached.schemas.get(version)
    if found is None:
        found = _release_schema(cached, catalog, version)
    return found


def _release_schema(
    cached: _CachedManifest, catalog: Path | str, version: str
) -> tuple[int, tuple[tuple[int, int], ...]]:
    grammar = cached.manifest.product.versions
    wanted = Version.parse(version, grammar)
    for model in cached.manifest.release:
        if Version(model.version, grammar) == wanted and isinstance(model.schema_, int):
            cached.schemas[version] = (model.schema_, model.patch_keys)
            return model.schema_, model.patch_keys
        if Version(model.version, grammar) == wanted:  # an adopted history's identifier
            release = load_catalog(catalog).release(version)
            return release.schema, release.patches
    raise GuardRefused(
        f"release {version} is not in the catalog at {catalog}",
        hint="start the product with the catalog of the release it runs, or a newer one",
    )


@dataclass
class _CachedManifest:
    """``stairway.toml`` as read at ``mtime``, and the schema of each release asked about
    (numbered ones only: an adopted history's identifier is read from the whole catalog):
    guard() runs on every start, and parsing every release's version each time cost it a
    sizeable share of its one round trip."""

    mtime: int
    manifest: Manifest
    schemas: dict[str, tuple[int, tuple[tuple[int, int], ...]]] = field(default_factory=dict)


def _manifest(root: Path) -> _CachedManifest:
    path = root / "stairway.toml"
    mtime = os.stat(path).st_mtime_ns
    cached = _MANIFESTS.get(path)
    if cached is None or cached.mtime != mtime:
        cached = _CachedManifest(mtime, load_manifest(path))
        _MANIFESTS[path] = cached
    return cached
