"""``verify --to V``: read-only checks on the old version, before anything is touched, so that
what would stop an upgrade halfway is found while the site still runs the release it trusts.

Each check returns findings; nothing here writes. A finding that blocks makes the command exit 2
so that the upgrade never starts on a site that needs a hand first.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, inspect, select, text

from stairway import licence
from stairway.catalog.manifest import CheckModel, JobModel
from stairway.configfiles import ConfigRun, plan_config_files
from stairway.context import Context, current_version
from stairway.database import sqlite_path
from stairway.errors import ConfigFileError
from stairway.handwork import HandItem, config_item, delta_item
from stairway.objects import delta_run, paths
from stairway.objects.migrate import Attention
from stairway.objects.migration import ObjectMigration, Severity, Transition
from stairway.objects.store import ObjectStore, StoredObject
from stairway.operations import lifecycle_path, object_store
from stairway.plan import UpgradePlan, make_plan
from stairway.schema import migrator
from stairway.schema.state import SchemaState
from stairway.targets import target_version
from stairway.versions import Version

EXAMPLES = 5
BACKUP_MARGIN = 1.2  # a backup compresses, but the restore copy needs room too


@dataclass(frozen=True)
class Finding:
    topic: str  # path | schema | objects | plug-ins | checks | jobs | disk | database | config
    severity: str  # critical | warning | suggestion | info
    message: str
    blocking: bool = False
    count: int | None = None
    examples: tuple[str, ...] = ()
    hint: str = ""
    needs_hand: bool = False  # the upgrade will leave it for an operator (and exit 3)

    def describe(self) -> str:
        shown = f" (first: {', '.join(self.examples)})" if self.examples else ""
        return f"[{self.severity}] {self.topic}: {self.message}{shown}"


@dataclass(frozen=True)
class Report:
    current: Version
    target: Version
    findings: tuple[Finding, ...]

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.blocking)

    @property
    def by_hand(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.needs_hand)


def verify(ctx: Context, to: str | None) -> Report:
    """Every finding for an upgrade of the site to ``to`` (default: the latest release)."""
    current = current_version(ctx)
    target = target_version(ctx.catalog, to)
    state = migrator.read_state(ctx.engine, ctx.catalog)
    findings = _database(ctx, state, current)
    if not findings:  # a database ahead of the catalog: the plan would be meaningless
        plan = make_plan(ctx.catalog, current, state.level, target, state.patches)
        findings += _path(plan) + _schema(plan, state)
        findings += _objects(ctx, plan) + _checks(ctx, current, target) + _jobs(ctx)
        findings += _config(ctx, current, target) + _deltas(ctx, target)
        findings += _disk(ctx) + licence_findings(ctx, target)
        findings += _background(ctx)
    return Report(current, target, tuple(findings))


def _background(ctx: Context) -> list[Finding]:
    """GitLab's rule: a background migration queued by an earlier upgrade must be finished
    before the next one starts, since the releases after it count on its data."""
    from stairway.schema import background

    return [
        Finding(
            "background",
            "critical",
            f"background migration {job.describe()}",
            blocking=True,
            hint="let it finish (`stairway background run`, `stairway background status`), "
            "then upgrade",
        )
        for job in background.unfinished(ctx.engine)
    ]


def licence_findings(ctx: Context, version: Version) -> list[Finding]:
    """The licence checked for running ``version``: a critical problem (unsigned, expired, or not
    covering that version) blocks, so that no site upgrades into a release it may not run."""
    declared = ctx.catalog.manifest.licence if ctx.catalog.manifest else None
    if declared is None:
        return []
    where = ctx.site.licence.file
    if where is None:
        return [
            Finding(
                "licence",
                "critical",
                f"{ctx.catalog.product} needs a licence and site.toml names no licence file",
                blocking=True,
                hint='set [licence] file = "PATH" to the licence from the vendor',
            )
        ]
    key = ctx.catalog.root / declared.key
    terms, problems = licence.check(
        where, key, ctx.catalog.product, version, warn_days=declared.warn_days
    )
    found = [
        Finding("licence", p.severity, p.message, blocking=p.severity == "critical", hint=p.hint)
        for p in problems
    ]
    if terms is not None and not problems:
        found.append(
            Finding(
                "licence",
                "info",
                f"licence {terms.id} for {terms.customer} covers {version} until {terms.expires}",
            )
        )
    return found


# --- the database and the plan ------------------------------------------------------------------


def _database(ctx: Context, state: SchemaState, current: Version) -> list[Finding]:
    found = []
    if state.unknown or current > ctx.catalog.latest.version:
        found.append(
            Finding(
                "database",
                "critical",
                f"the database is newer than this catalog (site {current}, schema level "
                f"{state.level}; the catalog ends at {ctx.catalog.latest.version})",
                blocking=True,
                hint="use the catalog of the release the site runs or a newer one",
            )
        )
    found += [
        Finding(
            "schema",
            "critical",
            d.describe(),
            blocking=True,
            hint="restore the file as applied, or `stairway repair` after checking the database",
        )
        for d in state.drifted
    ]
    return found


def _path(plan: UpgradePlan) -> list[Finding]:
    if not plan.steps:
        return [Finding("path", "info", f"already at {plan.target}: nothing to upgrade")]
    stops = [str(s.release.version) for s in plan.steps[:-1]]
    via = f" through the required stop(s) {', '.join(stops)}" if stops else ""
    return [Finding("path", "info", f"{plan.describe()}{via}")]


def _schema(plan: UpgradePlan, state: SchemaState) -> list[Finding]:
    done = {a.key for a in state.applied}
    pending = [c for c in plan.changes if c.key not in done]
    downtime = [c for c in pending if not c.phase.online]
    found = (
        [
            Finding(
                "schema",
                "info",
                f"{len(pending)} pending change(s): " + ", ".join(c.describe() for c in pending),
                count=len(pending),
            )
        ]
        if pending
        else []
    )
    if downtime:
        found.append(
            Finding(
                "schema",
                "warning",
                f"{len(downtime)} change(s) need the product stopped: "
                + ", ".join(c.label for c in downtime),
                count=len(downtime),
                hint="plan a maintenance window, or choose a rolling-safe target",
            )
        )
    return found


# --- stored objects and the plug-ins they name --------------------------------------------------


@dataclass
class _Tally:
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, oid: object) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(str(oid))


@dataclass
class _ObjectScan:
    migrated: dict[ObjectMigration, _Tally] = field(default_factory=dict)
    attention: dict[tuple[ObjectMigration, str], _Tally] = field(default_factory=dict)
    missing_plugins: dict[tuple[str, str], _Tally] = field(default_factory=dict)
    unreadable: _Tally = field(default_factory=_Tally)


def _objects(ctx: Context, plan: UpgradePlan) -> list[Finding]:
    if ctx.catalog.objects is None:
        return []
    if not inspect(ctx.engine).has_table(ctx.catalog.objects.table):
        return [Finding("objects", "info", "no objects table yet: nothing to check")]
    store = object_store(ctx, str(plan.target))
    scan = _ObjectScan()
    provides = _provides(ctx, plan.target)
    for oid, found in _read_all(store):
        if found is None:
            scan.unreadable.add(oid)
            continue
        _tally_object(ctx, scan, found, provides)
    return _object_findings(scan) + _plugin_findings(scan)


def _read_all(
    store: ObjectStore, batch: int = 5000
) -> Iterator[tuple[object, StoredObject | None]]:
    """Every object in id order; one that does not parse comes back as None, not as a crash.

    One query streamed through a server-side cursor: the read-only scan needs no keyset
    restarts, and a million objects cost one statement instead of a thousand.
    """
    query = select(*store.selection()).order_by(store.id_column)
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
        for rows in result.partitions():
            for row in rows:
                yield row[0], _materialise(store, tuple(row))


def _materialise(store: ObjectStore, row: tuple[object, ...]) -> StoredObject | None:
    try:
        return store.materialise(row)
    except Exception:
        return None


def _tally_object(
    ctx: Context, scan: _ObjectScan, found: StoredObject, provides: dict[str, set[str]]
) -> None:
    for migration in found.outcome.applied:
        tally = scan.migrated.get(migration)
        if tally is None:
            tally = scan.migrated[migration] = _Tally()
        tally.add(found.id)
    for item in found.outcome.attention:
        scan.attention.setdefault((item.migration, _kind(item)), _Tally()).add(found.id)
    manifest = ctx.catalog.manifest
    for reference in manifest.reference if manifest else ():
        if reference.type != found.type or reference.kind not in provides:
            continue
        holder = paths.parent(found.document, paths.parse_path(reference.path))
        name = None if holder is None else holder.get(reference.path.rsplit(".", 1)[-1])
        if isinstance(name, str) and name not in provides[reference.kind]:
            scan.missing_plugins.setdefault((reference.kind, name), _Tally()).add(found.id)


def _kind(item: Attention) -> str:
    if item.blocked:
        return "conflict"
    return "review" if item.migration.transition == Transition.SEMI_AUTOMATIC else "hand"


def _provides(ctx: Context, target: Version) -> dict[str, set[str]]:
    manifest = ctx.catalog.manifest
    release = (
        next((r for r in manifest.release if Version(r.version) == target), None)
        if manifest
        else None
    )
    return {kind: set(names) for kind, names in release.provides.items()} if release else {}


def _object_findings(scan: _ObjectScan) -> list[Finding]:
    found = [_migrated(m, t) for m, t in scan.migrated.items()]
    found += [_attention(m, kind, t) for (m, kind), t in scan.attention.items()]
    if scan.unreadable.count:
        found.append(
            Finding(
                "objects",
                "critical",
                f"{scan.unreadable.count} object(s) are not readable JSON documents",
                blocking=True,
                count=scan.unreadable.count,
                examples=tuple(scan.unreadable.examples),
                hint="fix or restore them: no release can read them",
            )
        )
    return found


def _migrated(migration: ObjectMigration, tally: _Tally) -> Finding:
    deprecation = migration.severity in (Severity.WARNING, Severity.SUGGESTION)
    return Finding(
        "objects",
        str(migration.severity) if deprecation else "info",
        f"{tally.count} object(s) will be migrated automatically: {migration.describe()}"
        + (f" — {migration.note}" if migration.note else ""),
        count=tally.count,
        examples=tuple(tally.examples),
    )


def _attention(migration: ObjectMigration, kind: str, tally: _Tally) -> Finding:
    what = {
        "hand": f"need a hand ({migration.transition})",
        "review": "are migrated and should be reviewed",
        "conflict": "cannot be migrated: the new key is already set",
    }[kind]
    blocking = kind == "conflict" or (kind == "hand" and migration.severity == Severity.CRITICAL)
    severity = "critical" if blocking else str(migration.severity)
    return Finding(
        "objects",
        severity,
        f"{tally.count} object(s) {what}: {migration.describe()}",
        blocking=blocking,
        count=tally.count,
        examples=tuple(tally.examples),
        hint=migration.note or "change the objects listed before upgrading",
    )


def _plugin_findings(scan: _ObjectScan) -> list[Finding]:
    return [
        Finding(
            "plug-ins",
            "critical",
            f"{tally.count} object(s) use the {kind} type {name!r}, which the target no longer "
            "provides",
            blocking=True,
            count=tally.count,
            examples=tuple(tally.examples),
            hint=f"move them to a {kind} type the target ships before upgrading",
        )
        for (kind, name), tally in scan.missing_plugins.items()
    ]


# --- declared data conditions, running jobs, disk space -----------------------------------------


def _checks(ctx: Context, current: Version, target: Version) -> list[Finding]:
    manifest = ctx.catalog.manifest
    due = [
        c
        for c in (manifest.check if manifest else ())
        if c.before is None or current < Version(c.before) <= target
    ]
    with _read_only(ctx) as conn:
        return [f for check in due if (f := _check(conn, check)) is not None]


def _check(conn: Connection, check: CheckModel) -> Finding | None:
    try:
        row = conn.execute(text(check.query)).first()
    except Exception as err:
        conn.rollback()
        return Finding(
            "checks",
            "critical",
            f"{check.name}: the query failed: {str(err).splitlines()[0]}",
            blocking=True,
            hint="the catalog's check does not fit this database; report it to the product team",
        )
    value = None if row is None else row[0]
    if _same(value, check.expect):
        return None
    return Finding(
        "checks",
        check.severity,
        f"{check.name}: found {value!r}, the upgrade needs {check.expect!r}",
        blocking=check.severity == "critical",
        hint=check.hint,
    )


def _same(value: object, expect: object) -> bool:
    if isinstance(expect, bool) or isinstance(value, bool):
        return str(value).lower() in (str(expect).lower(), "1" if expect else "0")
    return str(value) == str(expect)


def _jobs(ctx: Context) -> list[Finding]:
    manifest = ctx.catalog.manifest
    with _read_only(ctx) as conn:
        return [f for job in (manifest.job if manifest else ()) if (f := _job(conn, job))]


def _job(conn: Connection, job: JobModel) -> Finding | None:
    try:
        rows = conn.execute(text(job.query)).all()
    except Exception as err:
        conn.rollback()
        return Finding("jobs", "warning", f"{job.name}: cannot list them: {err}")
    if not rows:
        return None
    return Finding(
        "jobs",
        "warning",
        f"{len(rows)} {job.name} running: the upgrade will mark them interrupted",
        count=len(rows),
        examples=tuple(str(r[0]) for r in rows[:EXAMPLES]),
        hint="let them finish first, or accept that the product reconciles them on start",
    )


class _read_only:
    """A connection whose transaction is always rolled back (and read-only on PostgreSQL)."""

    def __init__(self, ctx: Context) -> None:
        self.conn = ctx.engine.connect()

    def __enter__(self) -> Connection:
        self.conn.begin()
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text("SET TRANSACTION READ ONLY"))
        return self.conn

    def __exit__(self, *_exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


# --- config files --------------------------------------------------------------------------------


def _config(ctx: Context, current: Version, target: Version) -> list[Finding]:
    files = ctx.site.site.config_files
    try:
        run = plan_config_files(files, ctx.catalog.config_migrations, current, target)
    except ConfigFileError as err:
        return [Finding("config", "critical", err.message, blocking=True, hint=err.hint)]
    items = [config_item(str(o.path), a.describe()) for o in run.outcomes for a in o.attention]
    return _config_changes(run) + [_by_hand("config", item) for item in items]


def _deltas(ctx: Context, target: Version) -> list[Finding]:
    """The deltas up to ``target`` that, judged on the objects as they are now, would be
    reported rather than applied (read-only: a dry run)."""
    due = [d for d in ctx.catalog.deltas if d.release <= target]
    if not due:
        return []
    store = object_store(ctx, str(target))
    judged = delta_run.apply_deltas(store, due, lifecycle_path(ctx), dry_run=True)
    return [_by_hand("deltas", delta_item(r.delta.id, r.reason)) for r in judged.reported]


def _by_hand(topic: str, item: HandItem) -> Finding:
    said = f"{item.what} will need an operator: {item.reason}"
    return Finding(topic, "warning", said, hint=item.command, needs_hand=True)


def _config_changes(run: ConfigRun) -> list[Finding]:
    return [
        Finding(
            "config",
            "info",
            f"{outcome.path}: {len(outcome.applied)} change(s) will be made automatically, "
            f"the original kept beside it",
            count=len(outcome.applied),
            hint=f"see the diff with `stairway config migrate --to {run.target} --dry-run`",
        )
        for outcome in run.changed
    ]


def _disk(ctx: Context) -> list[Finding]:
    where = ctx.site.site.backup_dir
    if where is None:
        return [
            Finding(
                "disk",
                "warning",
                "no backup_dir in site.toml: no backup can be taken",
                hint="set backup_dir in the [site] table",
            )
        ]
    needed = int(_backup_size(ctx) * BACKUP_MARGIN)
    free = shutil.disk_usage(_existing(where)).free
    if free >= needed:
        return [Finding("disk", "info", f"{_mb(free)} free for a backup of about {_mb(needed)}")]
    return [
        Finding(
            "disk",
            "critical",
            f"{_mb(free)} free at {where}, a backup needs about {_mb(needed)}",
            blocking=True,
            hint="free space there or point backup_dir at a larger disk",
        )
    ]


def _backup_size(ctx: Context) -> int:
    files = [*ctx.site.site.config_files]
    database = sqlite_path(ctx.engine)
    size = _tree_size(ctx.site.site.data_dir) + sum(_tree_size(f) for f in files)
    if database is not None:
        return size + _tree_size(database)
    with ctx.engine.connect() as conn:
        return size + int(
            conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0
        )


def _tree_size(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mb(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"


def group(findings: Sequence[Finding]) -> dict[str, list[Finding]]:
    """Findings by severity, most severe first."""
    order = ("critical", "warning", "suggestion", "info")
    return {
        s: [f for f in findings if f.severity == s]
        for s in order
        if any(f.severity == s for f in findings)
    }
