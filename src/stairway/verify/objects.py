"""Findings on the stored objects: which migrations will rewrite them, which need a hand, which
cannot be read, and which name a plug-in type the target no longer provides. Read-only: one
streamed scan of the objects table."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import inspect, select

from stairway.context import Context
from stairway.objects import paths
from stairway.objects.migrate import Attention
from stairway.objects.migration import ObjectMigration, Severity, Transition
from stairway.objects.store import ObjectStore, StoredObject
from stairway.operations import object_store
from stairway.plan import UpgradePlan
from stairway.verify.findings import EXAMPLES, Finding, FindingSeverity, Topic
from stairway.versions import Version


class AttentionKind(StrEnum):
    """Why an object migration leaves an object to an operator."""

    HAND = "hand"  # the migration cannot rewrite it
    REVIEW = "review"  # rewritten, but someone should look
    CONFLICT = "conflict"  # the key it would write is already set


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
    attention: dict[tuple[ObjectMigration, AttentionKind], _Tally] = field(default_factory=dict)
    missing_plugins: dict[tuple[str, str], _Tally] = field(default_factory=dict)
    unreadable: _Tally = field(default_factory=_Tally)


def object_findings(ctx: Context, plan: UpgradePlan) -> list[Finding]:
    """Every object the upgrade to ``plan.target`` would migrate, leave to a hand, or break."""
    if ctx.catalog.objects is None:
        return []
    if not inspect(ctx.engine).has_table(ctx.catalog.objects.table):
        return [
            Finding(Topic.OBJECTS, FindingSeverity.INFO, "no objects table yet: nothing to check")
        ]
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


def _kind(item: Attention) -> AttentionKind:
    if item.blocked:
        return AttentionKind.CONFLICT
    if item.migration.transition == Transition.SEMI_AUTOMATIC:
        return AttentionKind.REVIEW
    return AttentionKind.HAND


def _provides(ctx: Context, target: Version) -> dict[str, set[str]]:
    manifest = ctx.catalog.manifest
    release = (
        next((r for r in manifest.release if ctx.catalog.version(r.version) == target), None)
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
                Topic.OBJECTS,
                FindingSeverity.CRITICAL,
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
        Topic.OBJECTS,
        FindingSeverity(migration.severity) if deprecation else FindingSeverity.INFO,
        f"{tally.count} object(s) will be migrated automatically: {migration.describe()}"
        + (f" — {migration.note}" if migration.note else ""),
        count=tally.count,
        examples=tuple(tally.examples),
    )


_ATTENTION = {
    AttentionKind.HAND: "need a hand ({transition})",
    AttentionKind.REVIEW: "are migrated and should be reviewed",
    AttentionKind.CONFLICT: "cannot be migrated: the new key is already set",
}


def _attention(migration: ObjectMigration, kind: AttentionKind, tally: _Tally) -> Finding:
    what = _ATTENTION[kind].format(transition=migration.transition)
    blocking = kind is AttentionKind.CONFLICT or (
        kind is AttentionKind.HAND and migration.severity == Severity.CRITICAL
    )
    return Finding(
        Topic.OBJECTS,
        FindingSeverity.CRITICAL if blocking else FindingSeverity(migration.severity),
        f"{tally.count} object(s) {what}: {migration.describe()}",
        blocking=blocking,
        count=tally.count,
        examples=tuple(tally.examples),
        hint=migration.note or "change the objects listed before upgrading",
    )


def _plugin_findings(scan: _ObjectScan) -> list[Finding]:
    return [
        Finding(
            Topic.PLUGINS,
            FindingSeverity.CRITICAL,
            f"{tally.count} object(s) use the {kind} type {name!r}, which the target no longer "
            "provides",
            blocking=True,
            count=tally.count,
            examples=tuple(tally.examples),
            hint=f"move them to a {kind} type the target ships before upgrading",
        )
        for (kind, name), tally in scan.missing_plugins.items()
    ]
