"""Putting a site back: the product shown down, the release link, the backup, the old release
shown serving what the database holds.

Every path that swaps a site's state back goes through here: the automatic rollback of a failed
upgrade, ``stairway rollback`` (of an interrupted or a finished upgrade) and ``stairway restore``.
Each is safe to run again after a kill at any point: it reads what the site holds now (which
release ``current`` names, whether the product is up) rather than trusting where a journal
stopped, and every part of it is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson
from sqlalchemy.exc import DBAPIError

from stairway import (
    audit,
    context,
    disk,
    faults,
    maintenance,
    operations,
    releases,
    service,
    task_runs,
)
from stairway.backup import BackupManifest
from stairway.configfiles.files import backup_name
from stairway.context import Context
from stairway.database import sqlite_path
from stairway.errors import (
    BackupError,
    ExitCode,
    ManualStepNeeded,
    ServiceStillUp,
    StairwayError,
    UpgradeError,
)
from stairway.files import write_atomic
from stairway.holders import sqlite_files
from stairway.journal import Journal, JournalState
from stairway.schema import migrator
from stairway.sitelock import changes_site

log = logging.getLogger(__name__)
SWAP = "release-swap"


def home(ctx: Context) -> Path:
    """The directory of the site file, where Stairway's own runner keeps its files."""
    return ctx.site.path.resolve().parent


def held(ctx: Context) -> service.Held:
    """What the product must not hold open while the site is swapped under it."""
    database = sqlite_path(ctx.engine)
    files = tuple(sqlite_files(database.resolve())) if database else ()
    data_dir = ctx.site.site.data_dir
    directories = (data_dir.resolve(),) if data_dir else ()
    return service.Held(files, directories, home(ctx))


def expected(ctx: Context, release: str) -> service.Expected:
    """What the product's health must say once it serves this site at ``release``."""
    return service.Expected(release, migrator.read_state(ctx.engine, ctx.catalog).level)


def start_and_check(ctx: Context, release: str) -> bool:
    """Start the product and wait until its health says ``release`` on this database."""
    service.start(ctx.site.service, home(ctx))
    return service.wait_healthy(ctx.site.service, expected(ctx, release), home(ctx))


def stop(ctx: Context) -> bool:
    """Stop the product and show it down (ServiceStillUp, exit 3, when it cannot be)."""
    return service.stop(ctx.site.service, held(ctx))


# --- the release link ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Swap:
    """One swap of ``current``, as its intent record said before it was made."""

    previous: str | None
    to: str


def swaps(state: JournalState) -> list[Swap]:
    """The release swaps this upgrade meant to make, oldest first (made or not)."""
    found = [
        Swap(r.data.get("previous"), str(r.data.get("to")))
        for r in state.records
        if r.event == "intent" and r.data.get("action") == SWAP
    ]
    # journals written before intent records: the swap is known from its done record
    found += [
        Swap(r.data.get("previous"), "")
        for r in state.records
        if r.event == "done" and r.data.get("swapped") and not found
    ]
    return found


def release_back(ctx: Context, state: JournalState) -> None:
    """Point ``current`` at what it named before the upgrade's first swap, whatever it names
    now (the swap may or may not have happened before a kill)."""
    where = ctx.site.site.releases_dir
    made = swaps(state)
    if where is None or not made:
        return
    previous = made[0].previous
    if releases.current_release(where) == previous:
        return
    before, after = faults.around("release-back")
    faults.point(before)
    if previous:
        releases.switch_current(where, previous)
    else:
        (where / releases.CURRENT).unlink(missing_ok=True)
    faults.point(after)


def current_to(ctx: Context, version: str) -> None:
    """After a restore: the release the restored database holds, when it is installed."""
    where = ctx.site.site.releases_dir
    if where is None or releases.current_release(where) == version:
        return
    if (where / version).is_dir():
        releases.switch_current(where, version)


# --- putting back ---------------------------------------------------------------------------------


RESTORING = "restore.intent"  # in backup_dir while a restore swaps: the site is half swapped


@changes_site  # stopped, swapped, started: nothing else may change the site in between
def restore_site(ctx: Context, backup_id: str) -> BackupManifest:
    """``stairway restore``: checked, the product stopped and shown down only once the archive
    has proved whole, staged, the intent recorded, swapped, the release it holds made current,
    started and shown serving. A failure before the first live change starts the product again
    (exit 2, nothing changed); one after it names the restore to run again (exit 3)."""
    intent = context.backup_dir(ctx) / RESTORING
    progress = _Progress()

    def before_swap() -> None:
        progress.stopping = True
        stop(ctx)

    def before_live() -> None:
        write_atomic(intent, orjson.dumps({"backup": backup_id}))
        progress.live = True

    attempt = _Attempt(f"restoring backup {backup_id}", f"restore {backup_id} --yes")
    try:
        manifest = operations.restore(ctx, backup_id, before_swap, before_live)
        current_to(ctx, manifest.version)
        start_and_check(ctx, manifest.version)
    except Exception as error:
        if not progress.live:
            _nothing_changed(ctx, attempt, progress.stopping, error)
        raise _half_done(ctx, attempt, error) from error
    intent.unlink(missing_ok=True)
    return manifest


@dataclass
class _Progress:
    """How far a restore got: the product being stopped; the first live change begun."""

    stopping: bool = False
    live: bool = False


@dataclass(frozen=True)
class _Attempt:
    """What is being done, in words, and the command that does it again."""

    what: str
    command: str

    def again(self, ctx: Context) -> str:
        """The command that does it again, for this site."""
        return f"`stairway {self.command} --site {ctx.site.path}`"


def _nothing_changed(ctx: Context, attempt: _Attempt, stopped: bool, error: Exception) -> NoReturn:
    """A restore that failed before its first live change: the site is wholly as it was, so the
    product is started again and the restore refused (exit 2), the error's own words kept."""
    if stopped and not isinstance(error, ServiceStillUp):
        try:  # the release ``current`` names and the database holds: both untouched
            start_and_check(ctx, str(context.current_version(ctx)))
        except Exception as failure:
            raise _half_done(ctx, attempt, failure) from error
    if isinstance(error, StairwayError) and error.exit_code != ExitCode.REFUSED:
        raise error
    raise BackupError(
        f"{attempt.what} failed before its first live change: {in_words(error)}. Nothing was "
        "changed" + ("; the product serves as before" if stopped else ""),
        hint=f"{_first(ctx, error)}, then {attempt.again(ctx)}",
    ) from error


def _first(ctx: Context, error: BaseException) -> str:
    """What to do before running it again: free the disk that filled (a staging failure knows
    which), else what the error itself advises."""
    found = disk.trouble(error)
    if found is not None:
        return found.advice(context.backup_dir(ctx))
    return error.hint if isinstance(error, StairwayError) and error.hint else "fix the cause"


def _half_done(ctx: Context, attempt: _Attempt, error: BaseException) -> StairwayError:
    """A restore that failed once it had begun to swap: only running it again makes the site
    whole (the intent record makes upgrade and rollback refuse until then)."""
    return ManualStepNeeded(
        f"{attempt.what} stopped part way ({in_words(error)}): the site may be part old, part "
        f"restored and the product may be down; {maintenance_said(ctx)}",
        hint=f"{_first(ctx, error)}, then {attempt.again(ctx)}",
    )


def in_words(error: BaseException) -> str:
    """A failure in words for an operator's message."""
    if isinstance(error, StairwayError):
        return error.message
    if isinstance(error, DBAPIError):  # the driver's words, without the statement and its values
        return f"{type(error.orig).__name__}: {error.orig}"
    return str(error) or type(error).__name__


def maintenance_said(ctx: Context) -> str:
    """Whether users are still held off, said when a command stops part way."""
    try:
        with ctx.engine.connect() as conn:
            on = maintenance.read(conn) is not None
    except Exception:  # the database itself may be what failed
        return "maintenance state unknown (the database does not answer)"
    return "maintenance is still on" if on else "maintenance is off"


def refuse_half_restored(ctx: Context) -> None:
    """A restore killed while it swapped leaves a site part old, part restored: only running
    that restore again makes it whole."""
    intent = context.backup_dir(ctx) / RESTORING
    if not intent.exists():
        return
    try:
        backup_id = str(orjson.loads(intent.read_bytes())["backup"])
    except (OSError, ValueError, KeyError, TypeError):
        backup_id = "ID"
    raise UpgradeError(
        f"a restore of backup {backup_id} was interrupted while it swapped the site",
        hint=f"run `stairway restore {backup_id} --yes --site {ctx.site.path}` again to finish it",
    )


def put_back(
    ctx: Context,
    state: JournalState,
    changed: bool,
    whole: bool = False,
    started: Callable[[], object] = lambda: None,
) -> None:
    """Undo the upgrade ``state`` records: with ``changed``, the backup restored (the product
    stopped and shown down once it has proved whole, ``current`` pointed back just before the
    first live change); then the old release started (``started`` told, before its health is
    waited for) and checked. With ``whole`` (a finished upgrade, served since), a restore that
    fails before its first live change starts the product again and refuses (exit 2): nothing
    was changed."""
    origin = str(state.plan["from"])
    backup_id = state.value("backup")
    handed = _handed_over(ctx, state)
    if changed:
        _restore_back(ctx, state, backup_id, whole)
    else:
        maintenance.switch_off(ctx.engine)
    cancelled = _cancel_tasks(ctx, state, handed)
    with ctx.engine.begin() as conn:
        said = {"backup": backup_id, "releases": hops(state)}
        audit.append(conn, "site.rollback", said | ({"cancelled": cancelled} if cancelled else {}))
    for path in ctx.site.site.config_files:
        for release in hops(state):  # the restored file is the original: a stale copy misleads
            backup_name(path, ctx.catalog.version(release)).unlink(missing_ok=True)
    service.start(ctx.site.service, home(ctx))
    started()  # the product is started again: the report's downtime ends here, as at a start
    service.wait_healthy(ctx.site.service, expected(ctx, origin), home(ctx))


def _handed_over(ctx: Context, state: JournalState) -> list[str]:
    """The tasks of the releases rolled back that the upgrade handed to the background and
    that have not run to their end; read before the restore, which takes their record away.
    Advisory: a database that cannot be read here does not stop the rollback."""
    releases_back = set(hops(state))
    try:
        found = task_runs.unfinished(ctx.engine)
    except DBAPIError:
        return []
    return [f"{r.name} ({r.release})" for r in found if r.release in releases_back]


def _cancel_tasks(ctx: Context, state: JournalState, handed: list[str]) -> list[str]:
    """The background tasks of the releases rolled back cancelled, so that no runner takes
    them up on the old release (a restore has removed their record already)."""
    left = task_runs.cancel(ctx.engine, hops(state))
    cancelled = sorted({*handed, *(f"{r.name} ({r.release})" for r in left)})
    if cancelled:
        log.warning("background task(s) cancelled by the rollback: %s", ", ".join(cancelled))
    return cancelled


def _restore_back(ctx: Context, state: JournalState, backup_id: str | None, whole: bool) -> None:
    if backup_id is None:
        stop(ctx)
        release_back(ctx, state)
        raise BackupError(
            "the upgrade changed the site but recorded no backup to restore",
            hint="restore a backup by hand: `stairway backups`, then `stairway restore ID`",
        )
    progress = _Progress()

    def before_swap() -> None:
        progress.stopping = True
        stop(ctx)

    def before_live() -> None:
        release_back(ctx, state)
        progress.live = True

    try:
        operations.restore(ctx, backup_id, before_swap, before_live)
    except Exception as error:
        if whole and not progress.live:
            attempt = _Attempt(f"rolling back to backup {backup_id}", "rollback --yes")
            _nothing_changed(ctx, attempt, progress.stopping, error)
        raise


def hops(state: JournalState) -> list[str]:
    """The releases the journal's plan steps through, sorted."""
    return sorted({s["release"] for s in state.plan["steps"] if s.get("release")})


# --- the failure path's journal records and hints ----------------------------------------------


def note(
    journal: Journal, event: str, step: int | None = None, **data: Any
) -> BaseException | None:
    """A journal record on the failure path: a full disk must not stop the rollback itself.
    Returns what stopped the record, if anything."""
    try:
        journal.record(event, step, **data)
    except (OSError, StairwayError) as err:
        return err
    return None


def closed(journal: Journal, upgrade_id: str) -> BaseException | None:
    """Move the journal into the history; returns the OSError that stopped it, if any."""
    try:
        journal.close(upgrade_id)
    except OSError as err:
        return err
    return None


def then(ctx: Context, cause: BaseException, where: Path, command: str) -> str:
    """The hint of an error that leaves the site to an operator: what to fix first (the disk,
    when a write failed for its sake), then the one command that carries on."""
    found = disk.trouble(cause)
    first = found.advice(where) if found else f"fix the cause ({in_words(cause)})"
    return f"{first}, then `stairway {command} --site {ctx.site.path}`"
