"""Plug-in versions between releases, and the stored objects that name them.

A ``[[plugin]]`` of the catalog says which version of it each release ships and where objects
name that version (``[[plugin.reference]]``). Moving a plug-in from one version to another
rewrites exactly the objects that name it at the old version; ``repoint`` is that rewrite on
one document (pure), ``move_objects`` runs it over the objects table in the caller's
transaction. An upgrade also catches up the objects a ``plugin rollback`` left at a version
older still (``catching_up``): after it, no object names a version older than the new one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.version import InvalidVersion
from sqlalchemy import Connection

from stairway.catalog.manifest import Manifest, PluginModel, PluginReferenceModel
from stairway.objects import paths
from stairway.objects.migration import Document
from stairway.objects.store import ObjectStore
from stairway.version_grammars import GrammarName
from stairway.versions import Version


@dataclass(frozen=True)
class PluginMove:
    """A plug-in going from one version to another: ``connector ldap 1.2.0 -> 1.3.0``."""

    plugin: str
    kind: str
    old: str
    new: str

    def describe(self, count: int | None = None) -> str:
        """The move as plans and reports show it, with the objects it moves when counted."""
        move = f" {self.plugin} {self.old} -> {self.new}"
        if count is None:
            return self.kind + move
        return (
            f"1 {self.kind} object moves{move}"
            if count == 1
            else f"{count} {self.kind} objects move{move}"
        )


def shipped(plugin: PluginModel, release: Version | str, grammar: GrammarName) -> str | None:
    """The version of ``plugin`` that ``release`` ships: the one listed for the newest release
    up to it (a release not listed keeps its predecessor's); none before the first listed.
    Releases are read in the catalog's version ``grammar``."""
    wanted = Version(str(release), grammar)
    listed = sorted(
        (Version(r, grammar), v)
        for r, v in plugin.versions.items()
        if Version(r, grammar) <= wanted
    )
    return listed[-1][1] if listed else None


def moves_between(manifest: Manifest | None, source: str, target: str) -> list[PluginMove]:
    """Every plug-in whose version differs between releases ``source`` and ``target``, both
    shipping one."""
    found = []
    for plugin in manifest.plugin if manifest else ():
        grammar = manifest.product.versions if manifest else "pep440"
        old, new = shipped(plugin, source, grammar), shipped(plugin, target, grammar)
        if old is not None and new is not None and old != new:
            found.append(PluginMove(plugin.name, plugin.kind, old, new))
    return found


def catching_up(move: PluginMove, named: Iterable[str], grammar: GrammarName) -> list[PluginMove]:
    """``move``, then a move to its new version from each other version that objects name
    (``named``) and that is older than the new one, oldest first: a plug-in rollback leaves
    objects at such a version, and the upgrade must not leave them behind. A version that is
    not one in the catalog's ``grammar`` is left alone: it cannot be ordered."""
    new = Version(move.new, grammar)
    older = sorted(
        (found, version)
        for version in set(named) - {move.old}
        if (found := _version(version, grammar)) is not None and found < new
    )
    return [move, *(PluginMove(move.plugin, move.kind, v, move.new) for _, v in older)]


def _version(text: str, grammar: GrammarName) -> Version | None:
    try:
        return Version(text, grammar)
    except InvalidVersion:
        return None


def find_plugin(manifest: Manifest | None, name: str) -> PluginModel | None:
    """The catalog's plug-in ``name``, if it declares one."""
    return next((p for p in manifest.plugin if p.name == name), None) if manifest else None


def named_version(document: Document, reference: PluginReferenceModel, plugin: str) -> str | None:
    """The version of ``plugin`` the document names where ``reference`` says, if it names it."""
    if _value(document, reference.name) != plugin:
        return None
    version = _value(document, reference.version)
    return version if isinstance(version, str) else None


def repoint(document: Document, reference: PluginReferenceModel, move: PluginMove) -> bool:
    """Set the document's version of the moved plug-in to the new one, if it names the old."""
    if named_version(document, reference, move.plugin) != move.old:
        return False
    return paths.put(document, paths.parse_path(reference.version), move.new)


def _value(document: Document, path: str) -> object:
    keys = paths.parse_path(path)
    holder = paths.parent(document, keys)
    return None if holder is None else holder.get(keys[-1])


def move_objects(
    conn: Connection, store: ObjectStore, plugin: PluginModel, move: PluginMove
) -> list[object]:
    """Rewrite, in ``conn``'s transaction, every object naming ``move``'s plug-in at its old
    version to name the new one; returns their ids."""
    moved = []
    for reference in plugin.reference:
        found = store.find(conn, reference.type)
        changed = [o for o in found if repoint(o.document, reference, move)]
        store.write(conn, changed)
        moved += [o.id for o in changed]
    return moved


def versions_named(store: ObjectStore, plugin: PluginModel) -> Counter[str]:
    """How many objects name each version of ``plugin``."""
    with store.engine.connect() as conn:
        return versions_named_in(conn, store, plugin)


def versions_named_in(conn: Connection, store: ObjectStore, plugin: PluginModel) -> Counter[str]:
    """``versions_named`` in ``conn``'s transaction (seeing what it wrote)."""
    counted: Counter[str] = Counter()
    for reference in plugin.reference:
        for found in store.find(conn, reference.type):
            version = named_version(found.document, reference, plugin.name)
            if version is not None:
                counted[version] += 1
    return counted
