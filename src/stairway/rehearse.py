"""``rehearse --to V``: the whole upgrade on a scratch copy of the site, timed, with nothing live
touched.

A fresh backup of the live site is restored into a scratch database (on
PostgreSQL a new database on the same server, or at ``--scratch-url``; on SQLite a file) and a
scratch directory holding the data directory, the config files (at their live paths mirrored
under ``config/``, so path-matched migrations still match), the backups and the releases. The
scratch site has no service: stopping or starting the product would touch the live one. The
upgrade then runs there as ``upgrade`` runs it, every step timed; the findings, the step times
and the end state are reported, and the times kept for ``plan --estimate``. The scratch copy is
removed afterwards unless asked to keep it.

A rehearsal rehearses the upgrade the live site would run, on the site as it is now: by default
it takes a fresh backup first. ``from_backup`` reuses a backup on purpose (saving its time), and
only one that holds the release and schema level the site is at now: a rehearsal never walks a
path the live site would not.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import psycopg
from psycopg import sql
from sqlalchemy import Engine, make_url

from stairway import context, operations, timeline
from stairway.backup import database
from stairway.backup.manifest import BackupManifest
from stairway.backup.reading import open_backup, unpack
from stairway.context import Context, current_version
from stairway.database import dispose_all, engine_for
from stairway.errors import StairwayError, UsageRefused
from stairway.estimate.rates import record_measured
from stairway.journal import Journal
from stairway.operations import Status
from stairway.operations.background_tasks import Ran, run_queued
from stairway.plan import UpgradePlan
from stairway.progress import Progress
from stairway.schema import migrator
from stairway.site import AuditSection
from stairway.steps import Step, StepKind, path_of
from stairway.upgrade import UpgradeReport, upgrade
from stairway.verify import Report, verify


@dataclass
class Rehearsal:
    """What a rehearsal found: the verify findings, the upgrade's report or failure, each step begun
    with its time, and the end state of the scratch copy.
    """

    backup_id: str
    backup_release: str  # the release the backup holds, where the scratch copy starts
    backup_level: int  # and its schema level
    backup_reason: str | None  # why a backup was taken for the rehearsal; None: one was reused
    scratch_dir: Path
    scratch_database: str  # without a password
    findings: Report | None = None
    report: UpgradeReport | None = None
    failure: str | None = None  # the upgrade failed in the rehearsal (and rolled back there)
    end: Status | None = None
    steps: list[tuple[Step, float]] = field(default_factory=list)  # every step begun, timed
    recorded: timeline.Timeline | None = None  # the times the scratch upgrade's journal holds
    kept: bool = False
    plan: UpgradePlan | None = None  # the scratch copy's plan, as its upgrade ran it
    background: list[Ran] = field(default_factory=list)  # the tasks it handed over, run after

    @property
    def backup_taken(self) -> bool:
        """Whether a backup was taken for the rehearsal (none was named to reuse)."""
        return self.backup_reason is not None

    @property
    def path(self) -> list[str]:
        """The releases the rehearsal's steps walked through, or those it planned to walk."""
        walked = path_of(step for step, _ in self.steps)
        if walked and not self.failure:
            return walked
        if self.plan is not None:
            return [str(self.plan.current), *(str(s.release.version) for s in self.plan.steps)]
        return walked or [self.backup_release]


def rehearse(
    ctx: Context,
    to: str | None,
    scratch_url: str | None = None,
    keep: bool = False,
    progress: Progress[Step] | None = None,
    from_backup: str | None = None,
) -> Rehearsal:
    """Rehearse the upgrade to ``to`` (default: latest) on a scratch copy of a fresh backup.

    A failed upgrade is part of what the rehearsal found, not an error; the measured step times
    are kept for later estimates.

    Args:
        ctx: The live site; a backup of it is taken (unless ``from_backup``), nothing else.
        to: The target version.
        scratch_url: Where to make the scratch database on PostgreSQL, instead of the site's
            server.
        keep: Leave the scratch database and directory in place afterwards.
        progress: Told of every step the upgrade begins.
        from_backup: The id of a backup of the live release and schema level to start from
            instead of a fresh one.

    Raises:
        UsageRefused: ``from_backup`` names no backup, or one of another release or level.
    """
    backup_path, manifest, reason = _backup_of_live(ctx, from_backup)
    root = context.backup_dir(ctx) / f"rehearsal-{manifest.id}-{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True)
    try:
        with _scratch_database(ctx.engine, scratch_url, root, keep) as url:
            shown = make_url(url).render_as_string(hide_password=True)
            found = Rehearsal(
                manifest.id, manifest.version, manifest.schema_level, reason, root, shown, kept=keep
            )
            scratch = _restore(ctx, backup_path, manifest, root, url)
            _run(scratch, to, found, progress)
    finally:
        dispose_all()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    done = found.report.done if found.report else ()
    measured = [(step.kind, data) for step, data in done]
    measured += [(StepKind.TASK, ran.data) for ran in found.background if ran.data]
    by = f"rehearsal of {manifest.id}"
    record_measured(context.backup_dir(ctx), ctx.engine.dialect.name, measured, by, False)
    return found


def _run(
    scratch: Context, to: str | None, found: Rehearsal, progress: Progress[Step] | None
) -> None:
    found.findings = verify(scratch, to)
    found.plan = operations.plan(scratch, to)
    clock: list[tuple[Step, float]] = []

    def timed(index: int, total: int | None, step: Step, /) -> None:
        clock.append((step, time.monotonic()))
        if progress:
            progress(index, total, step)

    journal = Journal(context.backup_dir(scratch))
    before = journal.history_files()
    try:
        found.report = upgrade(scratch, to, progress=timed)
        found.background = run_queued(scratch)  # what the site's background runner would do
    except StairwayError as err:
        found.failure = err.message
    failed = [ran.run for ran in found.background if ran.run.retry]
    if failed and found.failure is None:
        found.failure = "; ".join(f"background {run.describe()}" for run in failed)
    ended = time.monotonic()
    found.recorded = timeline.of_run(journal, before)
    # each step's own time as the journal holds it: a failed one's leaves out the rollback
    found.steps = list(found.recorded.steps) if found.recorded else _clocked(clock, ended)
    found.end = operations.status(scratch)


def _clocked(clock: list[tuple[Step, float]], ended: float) -> list[tuple[Step, float]]:
    """Each step begun with its seconds until the next began, or until ``ended``."""
    return [
        (step, (clock[i + 1][1] if i + 1 < len(clock) else ended) - began)
        for i, (step, began) in enumerate(clock)
    ]


def _backup_of_live(
    ctx: Context, from_backup: str | None
) -> tuple[Path, BackupManifest, str | None]:
    """A fresh backup, with why it was taken; or the backup ``from_backup`` names, checked to
    hold the live release and schema level."""
    if from_backup is None:
        taken = operations.backup(ctx)
        reason = "a rehearsal starts from a fresh backup (`--from-backup ID` reuses one)"
        return taken.path, taken.manifest, reason
    named = [b for b in operations.backups(ctx) if b.manifest.id == from_backup]
    if not named:
        raise UsageRefused(
            f"no backup {from_backup}",
            hint="`stairway backups` lists them; or rehearse without --from-backup to take a "
            "fresh one",
        )
    release = str(current_version(ctx))
    level = migrator.read_state(ctx.engine, ctx.catalog).level
    held = named[0].manifest
    if (held.version, held.schema_level) != (release, level):
        raise UsageRefused(
            f"backup {from_backup} holds {held.version} at schema level {held.schema_level}; "
            f"the site runs {release} at schema level {level}",
            hint="a rehearsal starts from the live release: name a backup of it, or rehearse "
            "without --from-backup to take a fresh one",
        )
    return named[0].path, held, None


def _restore(ctx: Context, path: Path, manifest: BackupManifest, root: Path, url: str) -> Context:
    live = ctx.site.site
    opened = open_backup(path)
    manifest = opened.manifest  # as checked now, not as listed before
    unpack(
        opened,
        {
            "database": root / "restore" / "database",
            "config": root / "restore" / "config",
            "data": root / "data",
        },
    )
    dump = root / "restore" / "database" / PurePosixPath(manifest.database).name
    config = [_mirror(root, item.path) for item in manifest.config_files]
    for item, target in zip(manifest.config_files, config, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / "restore" / PurePosixPath(item.member), target)
    engine = engine_for(url)
    _load_database(engine, manifest, dump, root)
    site = ctx.site.model_copy(
        update={
            "site": live.model_copy(
                update={
                    "database": url,
                    "data_dir": root / "data" if live.data_dir else None,
                    "config_files": config,
                    "backup_dir": root / "backups",
                    "releases_dir": _copy_releases(live.releases_dir, root),
                }
            ),
            "service": None,  # the live product's commands: never run by a rehearsal
            # the copy's log is signed with a key of its own: the live witness never hears of it
            "audit": AuditSection(
                key_file=root / "audit" / "audit.key", witness=root / "audit" / "audit.witness"
            ),
        }
    )
    return Context(site, ctx.catalog, engine)


def _mirror(root: Path, live: str) -> Path:
    plain = Path(os.path.normpath(live))  # no `..` left: the mirror stays under root
    return root / "config" / plain.relative_to(plain.anchor)


def _copy_releases(releases: Path | None, root: Path) -> Path | None:
    """The current release and the ``current`` link, so the release step swaps a copy."""
    if releases is None or not releases.is_dir():
        return None
    target = root / "releases"
    target.mkdir()
    current = releases / "current"
    if current.is_symlink():
        name = Path(current.readlink()).name
        shutil.copytree(releases / name, target / name, symlinks=True)
        (target / "current").symlink_to(name)
    return target


def _load_database(engine: Engine, manifest: BackupManifest, dump: Path, root: Path) -> None:
    if manifest.engine != database.engine_kind(engine):
        raise UsageRefused(
            f"backup {manifest.id} holds a {manifest.engine} database and the scratch one is "
            f"{database.engine_kind(engine)}",
            hint="give --scratch-url on the engine the site uses",
        )
    if manifest.engine == "sqlite":
        database.check_sqlite(dump)
        shutil.copyfile(dump, str(engine.url.database))
        return
    database.restore_into(engine, dump)


@contextmanager
def _scratch_database(live: Engine, given: str | None, root: Path, keep: bool) -> Iterator[str]:
    """A new, empty scratch database; dropped afterwards unless the rehearsal is kept."""
    if given and make_url(given) == live.url:
        raise UsageRefused(
            "the scratch database is the live one", hint="give another --scratch-url"
        )
    if live.dialect.name != "postgresql":
        yield given or f"sqlite:///{root / 'scratch.db'}"  # removed with the scratch directory
        return
    suffix = uuid.uuid4().hex[:8]
    url = (
        make_url(given)
        if given
        else live.url.set(database=f"{live.url.database}_rehearsal_{suffix}")
    )
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    name = str(url.database)
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            raise UsageRefused(
                f"the scratch database {name} exists already",
                hint="name one that does not exist: the rehearsal creates it and drops it after",
            )
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        dispose_all()
        if not keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                conn.execute(drop.format(sql.Identifier(name)))
