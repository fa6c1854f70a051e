"""Release notes in Markdown, written from the catalog's own descriptions (pure: no I/O).

Everything a release changes is already described where it is declared: a schema change's
header prose, an object migration's note, a delta's description, a config-file migration's note.
The notes gather them per release between two versions, and put what needs a hand first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from stairway.catalog import Catalog
from stairway.configfiles.migration import ConfigMigration, ConfigTransition
from stairway.objects.delta import Delta
from stairway.objects.migration import ObjectMigration
from stairway.schema.change import Change
from stairway.versions import Release, Version, upgrade_path


def release_notes(catalog: Catalog, since: Version, until: Version) -> str:
    """Markdown notes for every release above ``since`` up to ``until``."""
    path = upgrade_path(catalog.releases, since, until)
    releases = [r for r in catalog.releases if since < r.version <= until]
    lines = [f"# {catalog.product} {since} → {until}", ""]
    lines += _path(since, path)
    hands = list(_needs_a_hand(catalog, releases))
    if hands:
        lines += ["## Before you upgrade", "", *hands, ""]
    previous = _schema_before(catalog, since)
    seen = set(next((r.patches for r in catalog.releases if r.version == since), ()))
    for release in releases:
        patches = [c for c in catalog.needs(release) if c.patch and c.key not in seen]
        lines += _release(catalog, release, previous, patches)
        previous, seen = release.schema, seen | set(release.patches)
    return "\n".join(lines).rstrip() + "\n"


def _schema_changes(
    catalog: Catalog, release: Release, previous: int, patches: Sequence[Change]
) -> list[Change]:
    changes = [*catalog.changes_between(previous, release.schema), *patches]
    return sorted(changes, key=lambda c: c.key)


def _path(since: Version, path: Sequence[Release]) -> list[str]:
    if not path:
        return ["Nothing to upgrade: the site is already there.", ""]
    steps = " → ".join([str(since), *(str(r.version) for r in path)])
    stops = [str(r.version) for r in path[:-1]]
    via = f" (required stop{'s' if len(stops) > 1 else ''}: {', '.join(stops)})" if stops else ""
    return [f"Upgrade path: {steps}{via}.", ""]


def _schema_before(catalog: Catalog, since: Version) -> int:
    return next((r.schema for r in catalog.releases if r.version == since), 0)


def _needs_a_hand(catalog: Catalog, releases: Sequence[Release]) -> Iterator[str]:
    versions = {r.version for r in releases}
    for migration in catalog.object_migrations:
        if migration.since in versions and not migration.transition.applied:
            yield f"- {migration.since}: {_object_line(migration)}"
    for item in catalog.config_migrations:
        if item.since in versions and item.transition == ConfigTransition.MANUAL:
            yield f"- {item.since}: {_config_line(item)}"
    for check in catalog.manifest.check if catalog.manifest else []:
        if check.before is not None and catalog.version(check.before) in versions:
            hint = f" — {check.hint}" if check.hint else ""
            yield f"- {check.before}: {check.name} {check.requirement()}{hint}"


def _release(
    catalog: Catalog, release: Release, previous: int, patches: Sequence[Change] = ()
) -> list[str]:
    """``patches``: the patch changes of an LTS line this release is the first here to carry."""
    flags = [w for w, on in (("LTS", release.lts), ("rolling", release.rolling)) if on]
    flags += [f"needs {release.requires} first"] if release.requires else []
    shown = f" ({', '.join(flags)})" if flags else ""
    lines = [f"## {release.version}{shown}", ""]
    sections = [
        ("Schema", [_change_line(c) for c in _schema_changes(catalog, release, previous, patches)]),
        ("Stored objects", _object_lines(catalog.object_migrations, release.version)),
        ("Configuration", _delta_lines(catalog.deltas, release.version)),
        ("Config files", _config_lines(catalog.config_migrations, release.version)),
    ]
    for title, items in sections:
        if items:
            lines += [f"### {title}", "", *items, ""]
    if len(lines) == 2:
        lines += ["No changes to data or configuration.", ""]
    return lines


def _change_line(change: Change) -> str:
    about = f": {change.description}" if change.description else ""
    return f"- `{change.label}` ({change.phase}){about}"


def _object_lines(migrations: Sequence[ObjectMigration], version: Version) -> list[str]:
    return [f"- {_object_line(m)}" for m in migrations if m.since == version]


def _object_line(migration: ObjectMigration) -> str:
    subtype = f" ({migration.subtype})" if migration.subtype else ""
    note = migration.note or migration.describe()
    manual = "" if migration.transition.applied else " **Needs a hand.**"
    return (
        f"{migration.type}{subtype}: {note} [{migration.transition}, {migration.severity}].{manual}"
    )


def _delta_lines(deltas: Sequence[Delta], version: Version) -> list[str]:
    return [f"- {d.description} (`{d.id}`, {d.op})" for d in deltas if d.release == version]


def _config_lines(migrations: Sequence[ConfigMigration], version: Version) -> list[str]:
    return [f"- {_config_line(m)}" for m in migrations if m.since == version]


def _config_line(migration: ConfigMigration) -> str:
    what = migration.action()
    note = f" — {migration.note}" if migration.note else ""
    manual = ". **Needs a hand.**" if migration.transition == ConfigTransition.MANUAL else ""
    return f"`{migration.file}`: {what}{note}{manual}"
