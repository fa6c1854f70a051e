"""Plug-in versions between releases, and the stored objects that name them.

A ``[[plugin]]`` of the catalog says which version of it each release ships and where objects
name that version (``[[plugin.reference]]``). Moving a plug-in from one version to another
rewrites exactly the objects that name it at the old version; ``repoint`` is that rewrite on
one document (pure), ``move_objects`` runs it over the objects table in the caller's
transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

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
        return f"{count} {self.kind} objects move{move}" if count is not None else self.kind + move


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
    counted: Counter[str] = Counter()
    with store.engine.connect() as conn:
        for reference in plugin.reference:
            for found in store.find(conn, reference.type):
                version = named_version(found.document, reference, plugin.name)
                if version is not None:
                    counted[version] += 1
    return counted
