"""A new site: its release's schema changes applied and recorded, then its initial objects."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from stairway.catalog.snapshots import Snapshot
from stairway.context import Context
from stairway.errors import SchemaError
from stairway.operations.objects import apply_deltas
from stairway.progress import Progress
from stairway.schema import migrator
from stairway.schema.change import Change
from stairway.schema.ddl_replay import replay_ddl, replay_rows
from stairway.schema.executor import Applied
from stairway.schema.histories import ledger
from stairway.schema.histories.fresh import fresh_install
from stairway.schema.recorder import RecordKind
from stairway.sitelock import changes_site
from stairway.targets import named_release
from stairway.versions import Release


@dataclass(frozen=True)
class Created:
    """What ``init`` did: the changes it applied, and the snapshot it built the schema from
    (None when it replayed them, or the product's fresh install built it)."""

    applied: list[Applied]
    snapshot: Snapshot | None


@changes_site
def init(
    ctx: Context, version: str, progress: Progress[Change] | None = None, replay: bool = False
) -> Created:
    """Create a new site at release ``version``, then apply the changes after what built it
    and record the site. An empty database is built by the product's fresh install when it
    stamps a revision at or below the release, else from the newest schema snapshot at or
    below its level; ``replay`` (or neither) replays every change."""
    release = named_release(ctx.catalog, version, "--version")
    snapshot = None
    if not migrator.read_state(ctx.engine, ctx.catalog).applied:
        if not replay and not _fresh(ctx, release.schema):
            snapshot = _from_snapshot(ctx, release)
    elif migrator.site_release(ctx.engine) is not None:
        raise SchemaError(
            f"{ctx.site.database} already holds a Stairway site",
            hint="use `stairway status` to see it, `stairway migrate --to V` to move it",
        )
    # else an init that stopped part-way (a change run outside a transaction failed or was
    # killed after others committed): its recorded changes stand, and the rest run now
    done = migrator.migrate(
        ctx.engine, ctx.catalog, release.schema, progress=progress, release=release
    )
    migrator.set_site_release(ctx.engine, ctx.catalog, str(release.version))
    if ctx.catalog.deltas:  # the initial objects of every release up to this one
        apply_deltas(ctx)
    return Created(done, snapshot)


def snapshot_for(ctx: Context, release: Release) -> Snapshot | None:
    """The snapshot ``init`` builds a new site at ``release`` from, unless the product's fresh
    install does: the newest of the site's dialect at or below the release's level; None when
    there is none."""
    return ctx.catalog.snapshot_for(release.schema, ctx.engine.dialect.name)


def _from_snapshot(ctx: Context, release: Release) -> Snapshot | None:
    """Build the empty database from its snapshot (its DDL, the rows its changes insert, and
    the adopted tool's table stamped at its level) in one transaction, recording changes
    1..level as a baseline; None when there is no snapshot to build from."""
    snapshot = snapshot_for(ctx, release)
    if snapshot is None:
        return None
    ddl, rows = snapshot.ddl(), snapshot.rows()
    stamped = ctx.catalog.changes_between(0, snapshot.level)

    def build(conn: Connection) -> None:  # one transaction: schema, seed rows, tool's table
        replay_ddl(conn, ddl, snapshot.ddl_path)
        if snapshot.rows_path is not None:
            replay_rows(conn, rows, snapshot.rows_path)
        ledger.stamp(conn, stamped)

    migrator.build_fresh(ctx.engine, ctx.catalog, build, release.schema, level=snapshot.level)
    return snapshot


def _fresh(ctx: Context, target: int) -> bool:
    """The product's own fresh install, when the catalog names one and it is not beyond the
    release asked for; the history's changes after the revision it stamps then run as usual.
    Whether it built the database."""
    history = ctx.catalog.manifest.history if ctx.catalog.manifest else None
    if history is None or history.fresh is None:
        return False
    build = fresh_install(ctx.catalog.root, history.fresh)
    return migrator.build_fresh(ctx.engine, ctx.catalog, build, target) is not None


def built_fresh(ctx: Context) -> int:
    """How many changes the product's fresh install or a schema snapshot stands for (recorded
    as a baseline by ``init``); 0 when the site's changes all ran."""
    applied = migrator.read_state(ctx.engine, ctx.catalog).applied
    return sum(1 for a in applied if a.kind == RecordKind.BASELINE)
