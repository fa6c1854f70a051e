"""Plug-ins with versions on a site: what is installed, the snapshots an upgrade takes of
them (here, and on the agents' hosts), and rolling one plug-in back on its own.

A plug-in rollback is journaled in ``<backup_dir>/plugins/`` (its own journal, apart from the
upgrade's): the snapshot is staged beside the live directory, the two are swapped by renames,
then the objects naming the plug-in move back in one transaction that also writes the audit
entry. That entry is the commit mark: a run killed before it is undone (the directory swapped
back), one killed after it is finished; either way the plug-in is wholly at one version.
Then each agent keeping a snapshot of the version gone back to is asked, through the control
plane, to put its own directory back (``rollback_on_agents``).
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from stairway import audit, faults, plugin_snapshots
from stairway.catalog.manifest import PluginModel
from stairway.context import Context, backup_dir, checkpointed, current_version
from stairway.database import writing
from stairway.errors import PluginError
from stairway.fleet import plugin_hosts
from stairway.fleet.plugin_hosts import HostRequest, HostSnapshot
from stairway.journal import Journal, JournalState
from stairway.objects.store import ObjectStore
from stairway.operations.objects import object_store
from stairway.plan import UpgradePlan
from stairway.plugin_moves import (
    PluginMove,
    catching_up,
    find_plugin,
    move_objects,
    moves_between,
    shipped,
    versions_named,
    versions_named_in,
)
from stairway.plugin_snapshots import PluginSnapshot
from stairway.sitelock import changes_site

ACTION = "plugin.rollback"  # the audit action, and the commit mark of a rollback
AGENT_WAIT = 30.0  # seconds `plugin rollback` waits for the agents' answers


@dataclass(frozen=True)
class PluginState:
    """One plug-in on the site: its version per the site's release, the versions its objects
    name (with counts) and the snapshots kept of it."""

    name: str
    kind: str
    installed: str | None
    objects: dict[str, int]
    snapshots: tuple[PluginSnapshot, ...]
    on_agents: tuple[HostSnapshot, ...] = ()  # the snapshots agents keep on their hosts

    def as_json(self) -> dict[str, Any]:
        """The state as ``plugin list --json`` prints it."""
        kept = [{"id": s.id, "version": s.version, "taken": s.taken} for s in self.snapshots]
        hosts = [
            {"agent": s.agent_id, "id": s.snapshot, "version": s.version} for s in self.on_agents
        ]
        return {"name": self.name, "kind": self.kind, "installed": self.installed} | {
            "objects": self.objects,
            "snapshots": kept,
            "agent_snapshots": hosts,
        }


@dataclass(frozen=True)
class PluginRollback:
    """What a plug-in rollback did: the move, the snapshot restored and the objects moved."""

    move: PluginMove
    snapshot: str
    moved: int

    def describe(self) -> str:
        """``ldap 1.3.0 -> 1.2.0 from snapshot ...: 3 connector objects moved back``."""
        move = self.move
        return (
            f"plug-in {move.plugin} {move.old} -> {move.new} from snapshot {self.snapshot}: "
            f"{self.moved} {move.kind} objects moved back"
        )


def plugin_list(ctx: Context) -> list[PluginState]:
    """Every plug-in the catalog declares, as the site has it."""
    release, grammar = current_version(ctx), ctx.catalog.versions
    return [_state(ctx, plugin, shipped(plugin, release, grammar)) for plugin in _plugins(ctx)]


def _state(ctx: Context, plugin: PluginModel, installed: str | None) -> PluginState:
    named = _named(ctx, plugin)
    kept = plugin_snapshots.snapshots(backup_dir(ctx), plugin.name) if _has_backups(ctx) else []
    with ctx.engine.connect() as conn:
        hosts = plugin_hosts.snapshots(conn, plugin.name)
    return PluginState(plugin.name, plugin.kind, installed, dict(named), tuple(kept), tuple(hosts))


def _named(ctx: Context, plugin: PluginModel) -> Counter[str]:
    if ctx.catalog.objects is None or not plugin.reference:
        return Counter()
    return versions_named(object_store(ctx), plugin)


def _has_backups(ctx: Context) -> bool:
    return ctx.site.site.backup_dir is not None


def _plugins(ctx: Context) -> list[PluginModel]:
    manifest = ctx.catalog.manifest
    return list(manifest.plugin) if manifest else []


def upgrade_moves(ctx: Context, source: str, target: str) -> list[PluginMove]:
    """The plug-ins an upgrade from ``source`` to ``target`` moves."""
    return moves_between(ctx.catalog.manifest, source, target)


def release_path(plan: UpgradePlan) -> list[str]:
    """The releases ``plan`` walks through, the site's first."""
    return [str(plan.current), *(str(hop.release.version) for hop in plan.steps)]


def path_moves(ctx: Context, path: list[str]) -> list[PluginMove]:
    """The plug-ins the hops of ``path`` move, each once: its first move (from the version the
    site has before the upgrade)."""
    found: dict[str, PluginMove] = {}
    for source, target in itertools.pairwise(path):
        for move in upgrade_moves(ctx, source, target):
            found.setdefault(move.plugin, move)
    return list(found.values())


def snapshot_before(ctx: Context, path: list[str]) -> list[str]:
    """A snapshot of the directory of each plug-in ``path`` moves, at its old version; their
    ids."""
    taken = []
    for move in path_moves(ctx, path):
        plugin = _plugin(ctx, move.plugin)
        found = plugin_snapshots.take(backup_dir(ctx), plugin.name, move.old, _live(ctx, plugin))
        plugin_snapshots.prune(backup_dir(ctx), plugin.name)
        taken.append(found.id)
    return taken


def move_for_upgrade(ctx: Context, store_release: str, source: str) -> list[str]:
    """The objects naming each plug-in that the hop ``source`` -> ``store_release`` moves, moved
    in one transaction; each move described with its count."""
    store = object_store(ctx, store_release)
    with ctx.engine.begin() as conn:
        return _move_hop(ctx, conn, store, source, store_release)


def move_along(ctx: Context, path: list[str]) -> list[str]:
    """The objects naming each plug-in the hops of ``path`` move, moved hop by hop in one
    transaction (a rolling upgrade's, once the old release is gone); as ``move_for_upgrade``."""
    if ctx.catalog.objects is None or len(path) < 2:
        return []
    store = object_store(ctx, path[-1])
    said = []
    with ctx.engine.begin() as conn:
        for source, target in itertools.pairwise(path):
            said += _move_hop(ctx, conn, store, source, target)
    return said


def _move_hop(
    ctx: Context, conn: Connection, store: ObjectStore, source: str, target: str
) -> list[str]:
    said = []
    for shipped_move in upgrade_moves(ctx, source, target):
        plugin = _plugin(ctx, shipped_move.plugin)
        named = versions_named_in(conn, store, plugin)
        for move in catching_up(shipped_move, named, ctx.catalog.versions):
            moved = move_objects(conn, store, plugin, move)
            said.append(move.describe(len(moved)))
    return said


@dataclass(frozen=True)
class HopMove:
    """A plug-in move on the hop to ``release``, with the objects it moves (None when the
    catalog declares no objects table to count them in)."""

    release: str
    move: PluginMove
    objects: int | None

    def describe(self) -> str:
        """``3 connector objects move ldap 1.2.0 -> 1.3.0``, or ``connector ldap ...``."""
        return self.move.describe(self.objects)

    def as_json(self) -> dict[str, Any]:
        """The move as ``plan --json`` prints it under its hop."""
        move = self.move
        return {"plugin": move.plugin, "kind": move.kind, "from": move.old, "to": move.new} | {
            "objects": self.objects
        }


def plan_moves(ctx: Context, plan: UpgradePlan) -> list[HopMove]:
    """Every plug-in move on ``plan``'s path, hop by hop, with the objects each moves (for
    verify, plan and its estimate): the objects the site's plug-ins name now, carried along
    the hops as the objects steps will move them."""
    found: list[HopMove] = []
    named: dict[str, Counter[str] | None] = {}
    for source, target in itertools.pairwise(release_path(plan)):
        for move in upgrade_moves(ctx, source, target):
            if move.plugin not in named:
                named[move.plugin] = _counted(ctx, _plugin(ctx, move.plugin))
            found += _carried(ctx, target, move, named[move.plugin])
    return found


def _carried(
    ctx: Context, release: str, shipped_move: PluginMove, named: Counter[str] | None
) -> list[HopMove]:
    """The hop's moves of one plug-in with their counts; ``named`` left as after the hop."""
    if named is None:  # not counted: the shipped move alone, as far as plan can say
        return [HopMove(release, shipped_move, None)]
    found = []
    for move in catching_up(shipped_move, named, ctx.catalog.versions):
        if move is shipped_move or named[move.old]:
            found.append(HopMove(release, move, named[move.old]))
        named[move.new] += named.pop(move.old, 0)
    return found


def _counted(ctx: Context, plugin: PluginModel) -> Counter[str] | None:
    """The objects naming each version of ``plugin``; None when there are none to read."""
    return None if ctx.catalog.objects is None else _named(ctx, plugin)


@checkpointed
@changes_site
def settle_interrupted(ctx: Context) -> str | None:
    """``settle`` under the site lock: what ``plugin list`` runs first."""
    return settle(ctx)


@checkpointed
@changes_site
def rollback_plugin(ctx: Context, name: str, to: str | None = None) -> PluginRollback:
    """Put plug-in ``name`` back from its snapshot (the newest of another version, or of
    ``to``) and move the objects naming it back, as one journaled all-or-nothing operation;
    one a kill interrupted is settled first."""
    settle(ctx)
    plugin = _plugin(ctx, name)
    _live(ctx, plugin)  # no data_dir: refused before anything else
    current = shipped(plugin, current_version(ctx), ctx.catalog.versions)
    if current is None:
        raise PluginError(
            f"the site's release ships no version of plug-in {name}",
            hint="`stairway plugin list` shows the plug-ins and their versions",
        )
    snapshot = _chosen(ctx, plugin, current, to)
    plugin_snapshots.check(snapshot)
    move = PluginMove(plugin.name, plugin.kind, current, snapshot.version)
    operation = f"plugin-{name}-{current}-to-{snapshot.version}-{_stamp()}"
    journal = _journal(ctx)
    journal.start(operation, {"plugin": name, "from": current, "to": snapshot.version})
    try:
        moved = _run(ctx, journal, plugin, snapshot, move, operation)
    except BaseException:
        settle(ctx)  # undone, unless its transaction committed: then finished
        raise
    return PluginRollback(move, snapshot.id, moved)


def _run(
    ctx: Context,
    journal: Journal,
    plugin: PluginModel,
    snapshot: PluginSnapshot,
    move: PluginMove,
    operation: str,
) -> int:
    live = _live(ctx, plugin)
    staging, previous = _beside(live)
    plugin_snapshots.stage(snapshot, staging)
    plugin_snapshots.swap_in(staging, live, previous)
    journal.record("swapped")
    store = object_store(ctx)
    data = {"operation": operation, "plugin": plugin.name, "from": move.old, "to": move.new}
    with ctx.engine.begin() as conn:
        moved = move_objects(conn, store, plugin, move)
        audit.append(conn, ACTION, data | {"snapshot": snapshot.id, "objects": len(moved)})
        faults.point("before:plugin-commit")
    faults.point("after:plugin-commit")
    _finish(journal, previous, operation)
    return len(moved)


def rollback_on_agents(
    ctx: Context, done: PluginRollback, wait: float = AGENT_WAIT
) -> list[HostRequest]:
    """Ask each agent keeping a snapshot of the version ``done`` went back to to put its own
    directory back, through the control plane (which sends it on the agent's connection, now
    or when it is back); the requests as they stand once all are answered or ``wait`` seconds
    passed. None when no agent keeps one."""
    plugin = _plugin(ctx, done.move.plugin)
    with writing(ctx.engine) as conn:  # the control plane writes to the same database
        made = plugin_hosts.ask(conn, plugin.name, plugin.directory, done.move.new)
    ids, deadline = [r.id for r in made], time.monotonic() + wait
    while made and time.monotonic() < deadline:
        time.sleep(0.2)
        with ctx.engine.connect() as conn:
            made = plugin_hosts.requests(conn, ids)
        if all(r.state in (plugin_hosts.RESTORED, plugin_hosts.FAILED) for r in made):
            break
    return made


def _finish(journal: Journal, previous: Path, operation: str) -> None:
    shutil.rmtree(previous, ignore_errors=True)
    journal.record("finished")
    journal.close(operation)


def _undo(ctx: Context, journal: Journal, plugin: PluginModel, operation: str) -> None:
    live = _live(ctx, plugin)
    staging, previous = _beside(live)
    plugin_snapshots.swap_back(live, previous)
    shutil.rmtree(staging, ignore_errors=True)
    journal.record("undone")
    journal.close(operation)


def settle(ctx: Context) -> str | None:
    """Finish or undo a plug-in rollback a kill interrupted: finished when its transaction
    committed (its audit entry is there), else undone; says which."""
    if not _has_backups(ctx):
        return None
    journal = _journal(ctx)
    state = journal.active()
    if state is None:
        return None
    plugin = _plugin(ctx, str(state.plan["plugin"]))
    if _committed(ctx, state):
        _finish(journal, _beside(_live(ctx, plugin))[1], state.upgrade_id)
        return f"the interrupted rollback {state.upgrade_id} was finished"
    _undo(ctx, journal, plugin, state.upgrade_id)
    return f"the interrupted rollback {state.upgrade_id} was undone"


def _committed(ctx: Context, state: JournalState) -> bool:
    entries = audit.read(ctx.engine)
    return any(e.action == ACTION and e.data.get("operation") == state.upgrade_id for e in entries)


def _journal(ctx: Context) -> Journal:
    return Journal(backup_dir(ctx) / "plugins")


def _plugin(ctx: Context, name: str) -> PluginModel:
    found = find_plugin(ctx.catalog.manifest, name)
    if found is None:
        known = ", ".join(p.name for p in _plugins(ctx)) or "none"
        raise PluginError(
            f"the {ctx.catalog.product} catalog declares no plug-in {name!r} (it declares: "
            f"{known})",
            hint="`stairway plugin list` shows the plug-ins; nothing was changed",
        )
    return found


def _live(ctx: Context, plugin: PluginModel) -> Path:
    data_dir = ctx.site.site.data_dir
    if data_dir is None:
        raise PluginError(
            f"plug-in {plugin.name} lives in the data directory, but site.toml names no data_dir",
            hint="set data_dir in the [site] table; nothing was changed",
        )
    return data_dir / plugin.directory


def _beside(live: Path) -> tuple[Path, Path]:
    """Where the snapshot is staged, and where the live directory is set aside."""
    return live.with_name(f".{live.name}.stairway-staged"), live.with_name(
        f".{live.name}.stairway-previous"
    )


def _chosen(ctx: Context, plugin: PluginModel, current: str, to: str | None) -> PluginSnapshot:
    kept = plugin_snapshots.snapshots(backup_dir(ctx), plugin.name)
    fitting = [s for s in kept if (s.version == to if to else s.version != current)]
    if not fitting:
        versions = ", ".join(sorted({s.version for s in kept})) or "none"
        raise PluginError(
            f"no snapshot of plug-in {plugin.name} "
            + (f"at version {to}" if to else f"at a version other than {current}")
            + f" is kept (snapshots of versions: {versions})",
            hint="an upgrade that moves the plug-in takes one; `stairway plugin list` shows "
            "them; nothing was changed",
        )
    return fitting[-1]


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
