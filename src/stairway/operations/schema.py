"""What a site's schema is and where it goes: status, plan, init, migrate, downgrade, baseline,
repair and the SQL a dry run shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stairway.context import (
    Context,
    current_version,
)
from stairway.errors import (
    PlanError,
    SchemaError,
)
from stairway.plan import UpgradePlan, make_plan
from stairway.progress import Progress
from stairway.schema import migrator, recorder
from stairway.schema.adoption import adoption_hint
from stairway.schema.change import Change, ChangeKind, Phase
from stairway.schema.executor import Applied
from stairway.schema.histories.repeatable_runs import DueRepeatable
from stairway.schema.phases import PhaseFinding
from stairway.schema.sql_of import opaque_sql, sql_of
from stairway.schema.state import SchemaState
from stairway.serving import old_ones
from stairway.sitelock import changes_site
from stairway.targets import named_release, target_version
from stairway.versions import Release, check_hop


@dataclass(frozen=True)
class Status:
    """Where a site's schema stands: its release, the changes applied and those pending."""

    product: str
    release: str | None
    state: SchemaState
    pending: tuple[Change, ...]
    latest: str
    warnings: dict[int, list[PhaseFinding]]
    adopt: str | None = None  # a database with tables but no Stairway records: how to adopt it
    # Flyway repeatables the next migrate applies; None when the catalog has none at all
    repeatables: tuple[DueRepeatable, ...] | None = None

    @property
    def troubles(self) -> list[str]:
        """What `status --strict` fails on: drift, changes and repeatables pending for the
        site's release, changes the catalog does not ship."""
        state = self.state
        found = [f"drifted: {d.describe()}" for d in state.drifted]
        found += [f"pending for {self.release}: {c.label}" for c in self.pending]
        if self.release:
            due = self.repeatables or ()
            found += [f"pending for {self.release}: {r.describe()}" for r in due]
        return found + [f"not in this catalog: {a.label}" for a in state.unknown]


def status(ctx: Context) -> Status:
    """The site's release, schema state, pending changes and phase warnings."""
    state = migrator.read_state(ctx.engine, ctx.catalog)
    release = migrator.site_release(ctx.engine) or migrator.adopted_release(ctx.catalog, state)
    at = ctx.catalog.release(release) if release else None
    pending = tuple(state.pending(ctx.catalog.changes, at.schema, at.patches) if at else ())
    return Status(
        ctx.catalog.product,
        release,
        state,
        pending,
        str(ctx.catalog.latest.version),
        ctx.catalog.warnings,
        _adopting(state.recognised)
        or (adoption_hint(ctx.engine, ctx.catalog) if not (release or state.applied) else None),
        _repeatables(ctx),
    )


def _repeatables(ctx: Context) -> tuple[DueRepeatable, ...] | None:
    if not ctx.catalog.repeatables:
        return None
    return tuple(migrator.pending_repeatables(ctx.engine, ctx.catalog))


def _adopting(recognised: str) -> str | None:
    if not recognised:
        return None
    return f"{recognised}: read as applied up to there; recorded when Stairway next migrates"


def recognised(ctx: Context) -> str:
    """What an adopted tool's table says of a database Stairway has not recorded yet (the next
    migrating command records it); empty otherwise."""
    return migrator.read_state(ctx.engine, ctx.catalog).recognised


def plan(ctx: Context, to: str | None) -> UpgradePlan:
    """The plan from the site's release to ``to`` (the latest when None).

    Raises PlanError when ``to`` names no release or none it can reach, and SchemaError when
    the database holds a patch change this catalog does not ship.
    """
    target = target_version(ctx.catalog, to)
    state = migrator.read_state(ctx.engine, ctx.catalog)
    state.refuse_unknown_patch()
    due = migrator.pending_repeatables(ctx.engine, ctx.catalog)
    return make_plan(ctx.catalog, current_version(ctx), state.level, target, state.patches, due)


@dataclass(frozen=True)
class MigrateRequest:
    """What ``migrate`` is asked for: a release, one phase only, how long to wait for locks."""

    to: str | None = None
    only: Phase | None = None
    lock_timeout: float = 30.0


def migrate_target(ctx: Context, request: MigrateRequest) -> tuple[int, str | None]:
    """The schema level to reach, and the release the site is at once it is reached."""
    if request.to is None:
        release = migrator.site_release(ctx.engine)
        return (ctx.catalog.release(release).schema if release else 0), None
    migrator.read_state(ctx.engine, ctx.catalog).refuse_unknown_patch()
    target = named_release(ctx.catalog, request.to)
    check_hop(ctx.catalog.releases, current_version(ctx), target.version)
    return target.schema, str(target.version)


def pending_changes(ctx: Context, request: MigrateRequest) -> list[Change]:
    """The changes ``migrate`` would run for ``request``, in order, applying none."""
    level, version = migrate_target(ctx, request)
    state = migrator.read_state(ctx.engine, ctx.catalog)
    state.refuse_unsafe()
    release = _target_release(ctx, version)
    if release is not None:
        migrator.refuse_uncarried(state, ctx.catalog, release)
    return migrator.pending(state, ctx.catalog, level, request.only, release)


def pending_repeatables(ctx: Context, request: MigrateRequest) -> list[DueRepeatable]:
    """The Flyway repeatables ``migrate`` would apply after its changes, applying none."""
    return migrator.pending_repeatables(ctx.engine, ctx.catalog, request.only)


def _target_release(ctx: Context, version: str | None) -> Release | None:
    """The release a migration moves to: the one named, or the site's own."""
    named = version or migrator.site_release(ctx.engine)
    return ctx.catalog.release(named) if named else None


@changes_site
def migrate(
    ctx: Context, request: MigrateRequest, progress: Progress[Change] | None = None
) -> list[Applied]:
    """Apply the pending changes up to the requested release, and record the site at it.

    Contract changes alone (``only=contract``) are refused while an instance or agent of an older
    release still serves, since they remove what it uses.
    """
    level, version = migrate_target(ctx, request)
    if request.only == Phase.CONTRACT:
        _refuse_old_ones(ctx, pending_changes(ctx, request))
    done = migrator.migrate(
        ctx.engine,
        ctx.catalog,
        level,
        only=request.only,
        lock_timeout=request.lock_timeout,
        progress=progress,
        release=_target_release(ctx, version),
    )
    if version and migrator.read_state(ctx.engine, ctx.catalog).level >= level:
        migrator.set_site_release(ctx.engine, ctx.catalog, version)
    return done


def _refuse_old_ones(ctx: Context, changes: list[Change]) -> None:
    """Contract changes remove what older releases use: none of them may still be serving."""
    for change in changes:
        release = ctx.catalog.release_of(change.number)
        remaining = old_ones(ctx, str(release.version)) if release else []
        if remaining:
            raise SchemaError(
                f"contract change {change.label} of {release.version if release else '?'} "
                f"waits for: {'; '.join(remaining)}",
                hint="upgrade or stop them first; contract changes remove what they still use",
            )


@changes_site
def downgrade(
    ctx: Context, to: int, allow_data_loss: bool, progress: Progress[Change] | None = None
) -> list[Applied]:
    """Revert the applied changes above level ``to``, newest first.

    Raises PlanError when the site's release needs a change it would revert, and SchemaError
    for a change that loses data unless ``allow_data_loss``.
    """
    release = migrator.site_release(ctx.engine)
    if release and to < ctx.catalog.release(release).schema:
        raise PlanError(
            f"release {release} needs schema {ctx.catalog.release(release).schema}; "
            f"going down to {to} would leave it without its changes",
            hint="roll the release back together with the schema; a schema-only rollback "
            "breaks the running binary",
            current=release,
        )
    return migrator.downgrade(
        ctx.engine, ctx.catalog, to, allow_data_loss=allow_data_loss, progress=progress
    )


@changes_site
def baseline(ctx: Context, at: int, version: str | None, force: bool = False) -> int:
    """Record changes 1..``at`` as present in a database Stairway never migrated; returns ``at``.

    The site is recorded at ``version``, or at the release whose schema level is ``at``.
    """
    done = migrator.baseline(ctx.engine, ctx.catalog, at, force=force)
    release = named_release(ctx.catalog, version, "--version") if version else None
    release = release or ctx.catalog.release_of(at)
    if release is not None and release.schema == at:
        migrator.set_site_release(ctx.engine, ctx.catalog, str(release.version))
    return done


@changes_site
def repair(ctx: Context) -> list[str]:
    """Record the current text of drifted changes as applied; returns their labels."""
    return migrator.repair(ctx.engine, ctx.catalog)


def render_sql(changes: list[Change], repeatables: Sequence[DueRepeatable] = ()) -> str:
    """The SQL a migration would send, for --dry-run: its changes, then the Flyway repeatables
    it applies after them."""
    parts: list[str] = []
    for change in changes:
        parts.append(f"-- {change.describe()}")
        statements = sql_of(change)
        if change.kind == ChangeKind.ALEMBIC:
            parts.append(f"-- Alembic revision: runs upgrade() of {change.path.name}")
        elif not statements:
            parts.append(f"-- Python change: runs upgrade(conn) from {change.path.name}")
        if opaque_sql(change) and change.kind == ChangeKind.ALEMBIC:
            parts.append(f"-- its SQL cannot be shown: {opaque_sql(change)}")
        parts.extend(f"{s.text};" for s in statements)
        table = recorder.table_of(change).name
        parts.append(f"-- then record change {change.code} in {table}\n")
    for due in repeatables:
        parts.append(f"-- {due.describe()}")
        parts.extend(f"{s.text};" for s in due.repeatable.statements)
        parts.append(f"-- then record it in {due.repeatable.table}\n")
    return "\n".join(parts)
