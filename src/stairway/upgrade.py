"""``stairway upgrade``: the whole upgrade as one journaled run, rolled back when a step fails.

The plan is a list of step values computed before anything runs (and written as the journal's
first record): back up, maintenance on, stop, interrupt jobs, then for each release on the path
its schema changes, object rewrite, deltas and config files, then start, health, maintenance off.
The steps are values (``stairway.steps``); what runs each kind is one table
(``stairway.runners``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from stairway import (
    agents_back,
    background_stop,
    disk,
    faults,
    handwork,
    open_sessions,
    recovery,
    releases,
    runners,
    task_runs,
)
from stairway import rolling as roll
from stairway.backup import Backup
from stairway.context import Context, backup_dir, checkpointed
from stairway.errors import (
    ManualStepNeeded,
    ReleaseError,
    RollbackFailed,
    StagingFailed,
    StairwayError,
    UpgradeError,
    UpgradeFailed,
    VerifyBlocked,
)
from stairway.estimate.rates import record_measured
from stairway.handwork import HandItem
from stairway.instances import instances_of
from stairway.journal import Journal, JournalState
from stairway.losses import LossReport, losses_since
from stairway.open_sessions import LEAVE, SessionOutcome, SessionPolicy, SessionSource
from stairway.operations import plugins as site_plugins
from stairway.operations import schema as site_schema
from stairway.plan import UpgradePlan
from stairway.progress import Progress
from stairway.recovery import closed, in_words, maintenance_said, note, then
from stairway.sitelock import changes_site
from stairway.steps import Step, StepKind, changed_site, plan_steps
from stairway.targets import named_release
from stairway.verify import verify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpgradeReport:
    """What an upgrade did: its id, the versions, and each step done with what it recorded."""

    upgrade_id: str | None  # None: nothing to do
    current: str
    target: str
    done: tuple[tuple[Step, dict[str, Any]], ...]
    resumed: bool = False
    sessions: SessionOutcome | None = None  # what was done about open user sessions

    @property
    def attention(self) -> list[HandItem]:
        """What the run left for a person: reported deltas, config items needing a hand."""
        return handwork.recorded(data for _, data in self.done)

    @property
    def background(self) -> list[str]:
        """The tasks handed to the background, as ``name (release)``: they run after the
        upgrade has returned (``stairway background run``)."""
        return [
            f"{step.task} ({step.release})" for step, data in self.done if data.get("background")
        ]

    def background_said(self) -> str | None:
        """What the operator is told of the tasks handed to the background, if there are any."""
        if not self.background:
            return None
        return (
            f"handed to the background: task {', '.join(self.background)}; "
            f"`{task_runs.WORKER}` runs them (safe to stop and run again), "
            "`stairway status` follows them"
        )


@checkpointed  # once the lock is let go, as at the end of any command
@changes_site  # held for the whole run: resume, rollback or restore beside it are refused
def upgrade(
    ctx: Context,
    to: str | None,
    resume: bool = False,
    progress: Progress[Step] | None = None,
    rolling: bool = False,
    sessions: SessionPolicy = LEAVE,
) -> UpgradeReport:
    """Upgrade the site to ``to`` (default: latest), or finish an interrupted upgrade;
    ``rolling``: instance by instance, without downtime (``stairway.rolling``); ``sessions``:
    wait for the open user sessions, or end them with notice, before the backup
    (``stairway.open_sessions``)."""
    if to:
        named_release(ctx.catalog, to)  # an unknown target is refused before anything else
    journal = Journal(backup_dir(ctx))
    recovery.refuse_half_restored(ctx)
    active = journal.active()
    if active is not None and not resume:
        raise UpgradeError(
            f"upgrade {active.upgrade_id} was interrupted (at {_where(active)})",
            hint="`stairway upgrade --resume` finishes it, `stairway rollback` undoes it",
        )
    if active is None and resume:
        raise UpgradeError("there is no interrupted upgrade to resume", hint="`stairway status`")
    if sessions.asked and (resume or rolling):
        raise UpgradeError(
            "--drain-sessions and --end-sessions are for an offline upgrade that starts now: "
            + ("a rolling one keeps every session" if rolling else "this one is resumed"),
            hint="run it again without them; nothing was changed",
        )
    if active is not None:
        return _resume(ctx, journal, active, progress)
    plan = site_schema.plan(ctx, to)
    if not plan.steps:
        return UpgradeReport(None, str(plan.current), str(plan.target), ())
    if rolling:
        roll.check(ctx, plan)
    source, notice = _sessions_of(ctx, rolling)
    drained = open_sessions.wait_before_upgrade(source, sessions, notice, str(plan.target))
    early = _early_backup(ctx)
    try:
        _verify(ctx, plan)
        releases = _prepare_release(ctx, str(plan.target))
        ended = open_sessions.end_before_upgrade(source, sessions, notice, drained)
    except BaseException:
        _discard(early)
        _withdraw(source)
        raise
    agents = agents_back.connected_before(ctx)
    moves = bool(site_plugins.path_moves(ctx, site_plugins.release_path(plan)))
    if rolling:
        instances = instances_of(ctx.site.service)
        steps = roll.rolling_steps(plan, instances, releases, agents=bool(agents), plugins=moves)
    else:
        steps = plan_steps(plan, releases, agents=bool(agents), plugins=moves)
    upgrade_id = f"{ctx.catalog.product}-{plan.current}-to-{plan.target}-{_stamp()}"
    record = {
        "from": str(plan.current),
        "to": str(plan.target),
        "steps": [s.as_json() for s in steps],
        "rolling": rolling,
        "agents": agents,  # connected to the control plane now: checked back after the start
    }
    if ended is not None:
        record["sessions"] = ended.as_json()
        log.info("%s", ended.describe())
    try:
        journal.start(upgrade_id, record)
    except OSError as err:  # nothing has changed yet: a refusal, not a failure
        _discard(early)
        raise UpgradeError(
            f"cannot write the upgrade journal in {journal.directory}: {err.strerror or err}",
            hint="free space (or fix permissions) there, then run the upgrade again; "
            "nothing was changed",
            current=str(plan.current),
            target=str(plan.target),
        ) from None
    active = journal.active()
    assert active is not None  # just started
    return _run(ctx, journal, active, progress, runners.with_early_backup(early))


@dataclass(frozen=True)
class Interrupted:
    """An upgrade that stopped part way: its id, the step it got to and what settles it."""

    upgrade_id: str
    where: str  # "step 7 of 15: schema 1.0.4 -> 2.0.0"
    settle: str  # the commands that settle it, in words
    command: str = "stairway upgrade --resume"  # the one to run first

    def describe(self) -> str:
        """The interrupted upgrade in one line, with what to run."""
        return f"upgrade {self.upgrade_id} was interrupted at {self.where}; {self.settle}"


def interrupted(ctx: Context) -> Interrupted | None:
    """The site's interrupted upgrade, if its journal holds one (for ``stairway status``); none
    on a site without a backup directory, where no upgrade can run."""
    if ctx.site.site.backup_dir is None:
        return None
    active = Journal(backup_dir(ctx)).active()
    if active is None:
        return None
    if any(r.event.startswith("rollback") for r in active.records):
        settle = "its rollback was under way: `stairway rollback` finishes it"
    elif active.damaged:
        settle = "its journal is damaged: `stairway rollback` puts the site back"
    else:
        settle = "`stairway upgrade --resume` finishes it, `stairway rollback` undoes it"
        return Interrupted(active.upgrade_id, _where(active), settle)
    return Interrupted(active.upgrade_id, _where(active), settle, "stairway rollback")


def _sessions_of(ctx: Context, rolling: bool) -> tuple[SessionSource | None, str]:
    """Where the open sessions are, and the notice for their users; none for a rolling upgrade,
    which keeps them."""
    section = ctx.site.sessions
    if section is None or rolling:
        return None, ""
    return open_sessions.source_for(section, ctx.catalog.product), section.notice


def _withdraw(source: SessionSource | None) -> None:
    """The upgrade did not start: the notice announcing it is taken back."""
    if source is not None:
        with contextlib.suppress(StairwayError):
            source.withdraw()


def _early_backup(ctx: Context) -> Future[tuple[Backup, float]]:
    """A backup taken while verify reads (both only read: overlapping them saves its time)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stairway-backup")
    future = pool.submit(runners.timed_backup, ctx)
    pool.shutdown(wait=False)
    return future


def _discard(early: Future[tuple[Backup, float]]) -> None:
    """Verify refused: the backup taken meanwhile is not wanted."""
    with contextlib.suppress(Exception):
        early.result()[0].path.unlink(missing_ok=True)


def _resume(
    ctx: Context, journal: Journal, active: JournalState, progress: Progress[Step] | None
) -> UpgradeReport:
    if any(r.event.startswith("rollback") for r in active.records):
        raise UpgradeError(
            f"a rollback of upgrade {active.upgrade_id} was under way",
            hint="`stairway rollback` finishes it",
        )
    if active.damaged:
        raise UpgradeError(
            f"{_damage(journal, active)}: it can no longer say which steps ran, so the "
            "upgrade is not resumed; nothing was changed",
            hint="`stairway rollback` puts the site back from the backup taken before it, "
            "whatever ran; then run the upgrade again",
        )
    report = _run(ctx, journal, active, progress)
    return UpgradeReport(
        report.upgrade_id, report.current, report.target, report.done, True, report.sessions
    )


def _run(
    ctx: Context,
    journal: Journal,
    state: JournalState,
    progress: Progress[Step] | None,
    table: Mapping[StepKind, runners.Runner] = runners.RUNNERS,
) -> UpgradeReport:
    steps = [Step.from_json(s) for s in state.plan["steps"]]
    done: list[tuple[Step, dict[str, Any]]] = []
    for index, step in enumerate(steps):
        if index in state.done:
            continue
        if progress:
            progress(index, len(steps), step)
        log.info("step %d/%d begun: %s", index + 1, len(steps), step.describe())
        try:
            journal.begin(index)
            started = time.monotonic()
            data = table[step.kind](ctx, step, journal.active() or state)
            faults.point(f"after:{step.kind}")  # done, not yet journaled: the riskiest instant
            data["seconds"] = round(time.monotonic() - started, 3)
            journal.done(index, **data)
        except (Exception, KeyboardInterrupt) as err:
            # INFO like the rest: the command reports the failure itself; its trace is for -v
            log.info("step %d/%d failed: %s", index + 1, len(steps), step.describe(), exc_info=err)
            _failed(ctx, journal, state, step, index, err)
        log.info(
            "step %d/%d done in %.3f s: %s", index + 1, len(steps), data["seconds"], step.describe()
        )
        done.append((step, data))
    try:
        journal.record("finished")
        journal.close(state.upgrade_id)
    except (OSError, StairwayError) as err:
        raise ManualStepNeeded(
            f"the upgrade to {state.plan['to']} is done and the product serves it, but its "
            f"journal could not be closed ({in_words(err)}); {maintenance_said(ctx)}",
            hint=then(ctx, err, journal.directory, "upgrade --resume") + " records it",
        ) from None
    _keep_rates(ctx, done, f"upgrade {state.upgrade_id}")
    said = state.plan.get("sessions")
    return UpgradeReport(
        state.upgrade_id,
        state.plan["from"],
        state.plan["to"],
        tuple(done),
        sessions=SessionOutcome.from_json(said) if said else None,
    )


def _failed(
    ctx: Context,
    journal: Journal,
    state: JournalState,
    step: Step,
    index: int,
    error: BaseException,
) -> NoReturn:
    """A step failed: put the site back (a rolling upgrade its own way). Always raises."""
    note(journal, "failed", index, error=str(error))
    current = _reread(journal, state)
    if current.plan.get("rolling"):
        roll.failed(ctx, journal, current, step, error)
    _roll_back(ctx, journal, current, step, error)


def _reread(journal: Journal, fallback: JournalState) -> JournalState:
    try:
        return journal.active() or fallback
    except (OSError, StairwayError):
        return fallback


def _keep_rates(ctx: Context, done: list[tuple[Step, dict[str, Any]]], by: str) -> None:
    """What this run measured, for the next estimate; never a reason to fail a finished run."""
    measured = [(step.kind, data) for step, data in done]
    with contextlib.suppress(OSError):
        record_measured(backup_dir(ctx), ctx.engine.dialect.name, measured, by)


def _roll_back(
    ctx: Context, journal: Journal, state: JournalState, step: Step, error: BaseException
) -> NoReturn:
    """Put the site back as the backup holds it and start the old release; always raises."""
    origin = state.plan["from"]
    backup_id = state.value("backup")
    changed = changed_site(state)
    note(journal, "rollback-begin", backup=backup_id)
    log.info("rollback to %s begun (backup %s)", origin, backup_id, exc_info=error)
    try:
        recovery.put_back(ctx, state, changed, started=lambda: note(journal, "rollback-started"))
    except Exception as failure:
        log.info("rollback to %s failed", origin, exc_info=failure)
        note(journal, "rollback-failed", error=str(failure))
        raise RollbackFailed(
            f"{step.describe()} failed ({in_words(error)}) and so did the rollback "
            f"({in_words(failure)}); {maintenance_said(ctx)}",
            hint=_manual_rollback(ctx, backup_id, failure),
        ) from failure
    log.info("rollback to %s finished: the site serves it again", origin)
    kept = f"from backup {backup_id}" if changed else "before anything was changed"
    unrecorded = note(journal, "rolled-back") or closed(journal, state.upgrade_id)
    if unrecorded is not None:
        raise ManualStepNeeded(
            f"{step.describe()} failed: {in_words(error)}. Rolled back: the site is at {origin} "
            f"as it was, {kept}, and serves it; {maintenance_said(ctx)}; but the journal "
            f"could not record that ({in_words(unrecorded)})",
            hint=then(ctx, unrecorded, journal.directory, "rollback")
            + " records it (the site is found already back)",
        ) from error
    raise UpgradeFailed(
        f"{step.describe()} failed: {in_words(error)}. Rolled back: the site is at {origin} as it "
        f"was, {kept}; nothing was lost",
        hint=f"{_cause(error, journal.directory)}, then run `stairway upgrade` again",
    ) from error


def _cause(error: BaseException, where: Path) -> str:
    """What to fix before trying again: the disk, when a write failed for its sake."""
    found = disk.trouble(error)
    return found.advice(where) if found else "fix the cause"


def _prepare_release(ctx: Context, target: str) -> bool:
    """Check and unpack the target release before anything is stopped; False without releases."""
    where = ctx.site.site
    if where.releases_dir is None:
        return False
    if where.artifacts is None or where.release_key is None:
        raise ReleaseError(
            "site.toml names releases_dir but not artifacts and release_key",
            hint="set both in [site]: where signed releases are, and the key they are signed with",
        )
    manifest = releases.check_release(
        where.artifacts, where.release_key, ctx.catalog.product, target
    )
    try:
        releases.install_release(where.artifacts, where.releases_dir, manifest)
    except OSError as err:  # before anything is stopped: a refusal
        found = disk.trouble(err)
        raise ReleaseError(
            f"cannot unpack release {target} into {where.releases_dir}: {err.strerror or err}",
            hint=f"{found.advice(where.releases_dir) if found else 'fix that'}, then run the "
            "upgrade again; nothing was changed",
        ) from err
    return True


def _manual_rollback(ctx: Context, backup_id: str | None, failure: BaseException) -> str:
    """The next command (it retries the restore and starts the old release), or by hand."""
    retry = then(ctx, failure, backup_dir(ctx), "rollback")
    if disk.trouble(failure) is not None:  # room is all the restore lacked
        return f"{retry}: it retries the restore and starts the old release"
    start = ctx.site.service.start if ctx.site.service and ctx.site.service.start else None
    lines = [
        f"1. stairway restore {backup_id} --yes --site {ctx.site.path}" if backup_id else "",
        f"2. start the product: {start}" if start else "",
        "3. `stairway rollback` records it once done (it retries the restore)",
    ]
    by_hand = "  ".join(line for line in lines if line)
    return f"{retry}: it retries the restore; or by hand: {by_hand}"


@checkpointed
def rollback(
    ctx: Context,
    confirm: Callable[[LossReport], bool] | None = None,
    wait: float = background_stop.WAIT,
) -> str:
    """Undo the interrupted upgrade, or the last finished one; returns the version restored.

    A finished one was served since: with ``confirm``, what its rollback would lose is shown to
    it first, and nothing is done unless it answers True. A background runner holding the site
    is asked to stop first, and waited for up to ``wait`` seconds.
    """
    with background_stop.site_lock_stopping_runner(ctx, wait):
        return _rollback_locked(ctx, confirm)


def _rollback_locked(ctx: Context, confirm: Callable[[LossReport], bool] | None) -> str:
    try:
        return _rollback(ctx, confirm)
    except Exception as failure:
        if not _stopped_part_way(failure):
            raise
        raise RollbackFailed(
            f"the rollback could not finish ({in_words(failure)}); {maintenance_said(ctx)}",
            # --yes: a finished upgrade's rollback asks first, and has shown its losses once
            hint=then(ctx, failure, backup_dir(ctx), "rollback --yes")
            + ": it carries on where this one stopped",
        ) from failure


def _rolled_back_unrecorded(ctx: Context, active: JournalState) -> bool:
    """A rolling upgrade put back on the old release whose journal could not say so."""
    if not active.plan.get("rolling"):
        return False
    return roll.already_back(ctx, active)


def _stopped_part_way(failure: Exception) -> bool:
    """A write failed for the disk's sake, where no layer below said what it left: a restore
    that failed while staging says nothing was changed, which is not so for the rollback."""
    if isinstance(failure, StagingFailed):
        return True
    return not isinstance(failure, StairwayError) and disk.trouble(failure) is not None


def _rollback(ctx: Context, confirm: Callable[[LossReport], bool] | None) -> str:
    journal = Journal(backup_dir(ctx))
    recovery.refuse_half_restored(ctx)
    active = journal.active()
    if active is not None and _rolled_back_unrecorded(ctx, active):
        note(journal, "rolled-back")
        journal.close(active.upgrade_id)
        return str(active.plan["from"])
    if active is not None:
        _backup_known(journal, active)
        journal.record("rollback-begin", backup=active.value("backup"))
        # a damaged line may hide a step that began: everything is put back then
        recovery.put_back(ctx, active, bool(active.damaged) or changed_site(active))
        journal.record("rolled-back")
        journal.close(active.upgrade_id)
        return str(active.plan["from"])
    finished = [h for h in journal.history() if h.ended == "finished"]
    if not finished:
        raise UpgradeError("no upgrade to roll back", hint="`stairway backups` lists backups")
    last = finished[-1]
    if confirm is not None and not confirm(losses_since(ctx, last.value("backup"))):
        raise UpgradeError(
            f"the rollback of upgrade {last.upgrade_id} was not confirmed: nothing was changed",
            hint="run it again and answer yes, or pass --yes",
        )
    recovery.put_back(ctx, last, True, whole=True)
    journal.mark_history(last.upgrade_id, "rolled-back")
    return str(last.plan["from"])


def _backup_known(journal: Journal, active: JournalState) -> None:
    """A damaged journal may have lost the record naming its backup: then an operator picks it."""
    if not active.damaged or active.value("backup") is not None:
        return
    raise RollbackFailed(
        f"{_damage(journal, active)} and no longer names the backup taken before the "
        "upgrade; nothing was changed",
        hint="`stairway backups` lists them: `stairway restore ID --yes` with the last one taken "
        f"before {active.plan.get('from')} was left, then move {journal.path} away",
    )


def _damage(journal: Journal, active: JournalState) -> str:
    lines = ", ".join(map(str, active.damaged))
    return (
        f"the journal {journal.path} of upgrade {active.upgrade_id} is damaged at line(s) {lines}"
    )


def _verify(ctx: Context, plan: UpgradePlan) -> None:
    report = verify(ctx, str(plan.target))
    if report.blocking:
        raise VerifyBlocked(
            f"{len(report.blocking)} finding(s) block the upgrade to {plan.target}: "
            + "; ".join(f.message for f in report.blocking),
            hint="`stairway verify` shows them with what to do; nothing was changed",
        )


def _where(state: JournalState) -> str:
    steps = state.plan["steps"]
    begun = [r.step for r in state.records if r.event == "begin" and r.step is not None]
    if not begun:
        return "its start"
    return f"step {begun[-1] + 1} of {len(steps)}: {Step.from_json(steps[begun[-1]]).describe()}"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
