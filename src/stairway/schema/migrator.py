"""The schema engine's entry points: read the state, migrate up, baseline, go down, repair.

Each entry point takes the migration lock, reads what is applied, refuses drift and databases
ahead of the catalog, and only then changes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from stairway import faults
from stairway.errors import SchemaError
from stairway.progress import Progress
from stairway.schema import adoption, recorder
from stairway.schema import state as state_rules
from stairway.schema.change import Change, Phase
from stairway.schema.executor import Applied, apply, apply_together, refuse_data_loss, revert
from stairway.schema.histories import alembic_runtime, recognition, repeatable_runs
from stairway.schema.histories.repeatables import Repeatable
from stairway.schema.lock import migration_lock, working
from stairway.schema.source import ChangeSource
from stairway.schema.state import SchemaState, compare
from stairway.versions import Release

log = logging.getLogger(__name__)


def read_state(engine: Engine, catalog: ChangeSource) -> SchemaState:
    """What the database records as applied, compared with the catalog's changes.

    A database Stairway has not recorded, whose adopted tool's table (``alembic_version`` ...)
    names a point of the catalog's history, reads as holding the changes up to there; the next
    command that migrates records them (``locked_state``)."""
    with engine.connect() as conn:
        return _state_on(conn, catalog, recorder.applied(conn))


def _state_on(
    conn: Connection, catalog: ChangeSource, applied: list[recorder.AppliedChange]
) -> SchemaState:
    found = None if applied else recognition.recognise(conn, catalog.changes)
    if found is None or not found.level:
        return compare(applied, catalog.changes)
    kind = recorder.RecordKind.BASELINE
    changes = catalog.changes_between(0, found.level)
    rows = [recorder.as_applied(c, _release_label(catalog, c), kind) for c in changes]
    return compare(rows, catalog.changes, found.describe())


def adopted_release(catalog: ChangeSource, state: SchemaState) -> str | None:
    """The release a recognised database runs: the newest whose changes it holds all of."""
    if not state.recognised:
        return None
    held = [r for r in catalog.releases if r.schema <= state.level]
    return str(held[-1].version) if held else None


def site_release(engine: Engine) -> str | None:
    """The release the site was last moved to; None before Stairway recorded one."""
    with engine.connect() as conn:
        return recorder.get_meta(conn, "release")


def set_site_release(engine: Engine, catalog: ChangeSource, version: str) -> None:
    """Record that the site runs ``version`` of the catalog's product."""
    with engine.begin() as conn:
        recorder.set_meta(conn, "product", catalog.product)
        recorder.set_meta(conn, "release", version)


def pending(
    state: SchemaState,
    catalog: ChangeSource,
    target: int,
    only: Phase | None,
    release: Release | None = None,
) -> list[Change]:
    """Changes to apply, with the patch changes ``release`` carries; with ``only``, the leading
    run of that phase (order is never skipped)."""
    todo = state.pending(catalog.changes, target, release.patches if release else ())
    if only is None:
        return todo
    run: list[Change] = []
    for change in todo:
        if change.phase != only:
            break
        run.append(change)
    return run


@contextmanager
def locked_state(engine: Engine, catalog: ChangeSource, timeout: float) -> Iterator[SchemaState]:
    """The state under the migration lock, with bookkeeping tables present and no drift."""
    with _locked(engine, catalog, timeout) as (state, held, missing):
        if missing:
            _create_bookkeeping(engine, held)
        yield state


@contextmanager
def _locked(
    engine: Engine, catalog: ChangeSource, timeout: float
) -> Iterator[tuple[SchemaState, Connection | None, bool]]:
    """The state under the migration lock, refused when unsafe; the connection holding the lock
    where it has one; and whether the bookkeeping tables are still to be created (left to the
    caller, so a first run can create them in its own transaction). The lock is not kept in
    those tables: it guards a database that has none yet."""
    with migration_lock(engine, timeout) as held:
        with _reading(engine, held) as conn:
            present = recorder.current_tables(conn)
            state = _state_on(conn, catalog, recorder.applied(conn) if present else [])
            if state.recognised and not present:  # its baseline is recorded at once
                recorder.create_tables(conn)
                present = True
        if state.recognised:
            _take_over(engine, catalog, state)
        state.refuse_unsafe()
        yield state, held, not present


@contextmanager
def _reading(engine: Engine, held: Connection | None) -> Iterator[Connection]:
    """Where the state is read under the lock: on the lock's own connection as it is, in
    autocommit (two round trips fewer than a transaction of its own: each read sees what is
    committed, as under read committed, and no other migrator writes while the lock is held);
    without one, in a transaction on a new connection."""
    if held is None:
        with engine.begin() as conn:
            yield conn
        return
    yield held


def ensure_bookkeeping(engine: Engine, lock_timeout: float = 30.0) -> None:
    """Stairway's bookkeeping tables, created under the migration lock when there are none yet,
    for a writer of ``stairway_meta`` that is not a migration (maintenance mode). A new
    database's first migration creates them in its own transaction under that lock, so such a
    writer waits for it instead of racing it to ``CREATE TABLE`` (where one of the two failed
    with "already exists"); once they are there, no lock is taken.

    Raises:
        LockTimeout: a migration still holds the lock after ``lock_timeout`` seconds.
    """
    with engine.connect() as conn:
        if recorder.exists(conn):
            return
    with (
        migration_lock(engine, lock_timeout) as held,
        working(engine, held) as conn,
        conn.begin(),
    ):
        recorder.ensure_tables(conn)  # a migration may have created them while this waited


def _create_bookkeeping(engine: Engine, held: Connection | None) -> None:
    with working(engine, held) as conn, conn.begin():
        recorder.create_tables(conn)


def refuse_unlike_recognised(engine: Engine, catalog: ChangeSource, state: SchemaState) -> None:
    """Refuse a recognised database whose tables are not those its tool's table says it has.

    Raises:
        SchemaError: with both facts, what the tool's table says and what the tables are.
    """
    try:
        adoption.refuse_unlike(engine, catalog, state.level)
    except SchemaError as unlike:
        raise SchemaError(
            f"{state.recognised}, but {unlike.message}",
            hint="the tool's table and the real schema disagree: repair the database with the "
            "product's own tool, or adopt it by hand with `stairway baseline --at N --force`",
        ) from None


def _take_over(engine: Engine, catalog: ChangeSource, state: SchemaState) -> None:
    """Record a recognised database's changes as a baseline, once its tables are shown to be
    those the changes create; the site is at the release they amount to."""
    refuse_unlike_recognised(engine, catalog, state)
    release = adopted_release(catalog, state)
    with engine.begin() as conn:
        _record_baseline(conn, catalog, state.level)
        if repeatables_of(catalog):
            repeatable_runs.adopt(conn, repeatables_of(catalog)[0].table, state.level)
        if release and recorder.get_meta(conn, "release") is None:
            recorder.set_meta(conn, "product", catalog.product)
            recorder.set_meta(conn, "release", release)
    faults.point("after:take-over")  # the tool's table and Stairway's records both say it
    log.info("adopted: %s", state.recognised)


def refuse_uncarried(state: SchemaState, catalog: ChangeSource, release: Release) -> None:
    """Refuse moving a database to ``release`` when it holds a patch ``release`` lacks."""
    state_rules.refuse_uncarried(release, state.uncarried(release.patches), catalog.carriers)


def migrate(
    engine: Engine,
    catalog: ChangeSource,
    target: int,
    *,
    only: Phase | None = None,
    lock_timeout: float = 30.0,
    progress: Progress[Change] | None = None,
    release: Release | None = None,
) -> list[Applied]:
    """Apply the changes up to ``target``; with ``release``, also the patch changes it carries,
    after refusing a database holding a patch it does not carry."""
    with _locked(engine, catalog, lock_timeout) as (state, held, missing):
        if release is not None:
            refuse_uncarried(state, catalog, release)
        todo = pending(state, catalog, target, only, release)
        together = not state.applied and all(c.transactional for c in todo)
        if missing and not together:
            _create_bookkeeping(engine, held)
        with alembic_runtime.one_run(empty=together and not state.recognised):
            if together:
                done = _apply_first(engine, catalog, todo, held, missing, progress)
            else:
                done = _apply_each(engine, catalog, todo, progress)
        level = max([state.level, *(c.number for c in todo)])
        _run_repeatables(engine, catalog, only, level)
        return done


def repeatables_of(catalog: ChangeSource) -> Sequence[Repeatable]:
    """The catalog's Flyway repeatable migrations; none for a source that has no such thing."""
    return catalog.repeatables


def pending_repeatables(
    engine: Engine, catalog: ChangeSource, only: Phase | None = None
) -> list[repeatable_runs.DueRepeatable]:
    """The repeatables a migration (of phase ``only``) would apply after its versioned changes,
    each with why: what ``status``, ``plan`` and ``migrate --dry-run`` show."""
    return repeatable_runs.pending(engine, _of_phase(catalog, only))


def _of_phase(catalog: ChangeSource, only: Phase | None) -> list[Repeatable]:
    return [r for r in repeatables_of(catalog) if only is None or r.phase == only]


def _run_repeatables(engine: Engine, catalog: ChangeSource, only: Phase | None, level: int) -> None:
    """After the versioned migrations of a run, the repeatables that changed, as Flyway runs
    them; a run of one phase only runs those of that phase."""
    for repeatable in repeatable_runs.run_due(engine, _of_phase(catalog, only), level):
        log.info("applied repeatable %s", repeatable.describe())


def _apply_first(
    engine: Engine,
    catalog: ChangeSource,
    todo: Sequence[Change],
    held: Connection | None,
    missing: bool,
    progress: Progress[Change] | None,
) -> list[Applied]:
    """A database that records no change gets ``todo`` in one transaction, with the bookkeeping
    tables when they are ``missing``: a failure or a kill leaves nothing of the run behind."""
    labelled = [(c, _release_label(catalog, c)) for c in todo]
    setup = recorder.create_tables if missing else None
    if held is None:
        return apply_together(engine, labelled, progress, setup=setup)
    with working(engine, held) as conn:  # one session for the lock and the run
        return apply_together(engine, labelled, progress, conn, setup)


def _apply_each(
    engine: Engine, catalog: ChangeSource, todo: Sequence[Change], progress: Progress[Change] | None
) -> list[Applied]:
    done: list[Applied] = []
    for index, change in enumerate(todo):
        if progress:
            progress(index, len(todo), change)
        done.append(apply(engine, change, _release_label(catalog, change)))
        faults.point("after:schema-change")  # committed: the next change not begun
    return done


def baseline(
    engine: Engine, catalog: ChangeSource, at: int, lock_timeout: float = 30.0, force: bool = False
) -> int:
    """Adopt an existing database: record changes 1..at as present without running them.

    Unless ``force``, the database's tables and columns must be those changes 1..at create."""
    if at > len(catalog.changes) or at < 1:
        raise SchemaError(
            f"cannot baseline at {at}: the catalog ships changes 1..{len(catalog.changes)}",
            hint="pick the number of the last change this database already has",
        )
    with locked_state(engine, catalog, lock_timeout) as state:
        if state.applied:
            raise SchemaError(
                f"this database already records changes up to {state.level}",
                hint="baseline adopts a database Stairway has never migrated; use migrate",
            )
        if not force:
            adoption.refuse_unlike(engine, catalog, at)
        with engine.begin() as conn:
            _record_baseline(conn, catalog, at)
    return at


class _NotUsed(Exception):
    """The fresh install stamped a revision beyond the target: roll it back, replay instead."""


def build_fresh(
    engine: Engine,
    catalog: ChangeSource,
    fresh: Callable[[Connection], object],
    target: int,
    lock_timeout: float = 30.0,
    level: int | None = None,
) -> int | None:
    """Build an empty database the product's way (``fresh``, in one transaction) and record
    the changes up to the revision it stamps as a baseline; the level it stamped. None, with
    nothing left of it, when it stamps beyond ``target``: an older release is replayed instead.
    With ``level`` (a schema snapshot, which stamps nothing), that is the level it stands for.

    Raises:
        SchemaError: the database is not empty, or the fresh install stamps no revision.
    """
    with migration_lock(engine, lock_timeout):
        if adoption.product_tables(engine):
            raise SchemaError(
                "a fresh install needs an empty database; this one has tables",
                hint="adopt it instead: `stairway baseline --at N`, or `stairway upgrade` when "
                "a history tool's table names its revision",
            )
        try:
            with engine.begin() as conn:
                return _fresh_in(conn, catalog, fresh, target, level)
        except _NotUsed:
            return None


def _fresh_in(
    conn: Connection,
    catalog: ChangeSource,
    fresh: Callable[[Connection], object],
    target: int,
    level: int | None,
) -> int:
    recorder.ensure_tables(conn)
    fresh(conn)
    if level is not None:
        if level > target:
            raise _NotUsed()
        _record_baseline(conn, catalog, level)
        log.info("fresh install from a schema snapshot (change %d)", level)
        return level
    found = recognition.recognise(conn, catalog.changes)
    if found is None or not found.level:
        raise SchemaError(
            "the product's fresh install stamped no revision of its history",
            hint="the [history] fresh callable must stamp the revision its tables stand at "
            "(as `alembic stamp head` does)",
        )
    if found.level > target:
        raise _NotUsed()
    _record_baseline(conn, catalog, found.level)
    log.info("fresh install at %s (change %d)", found.ident, found.level)
    return found.level


def downgrade(
    engine: Engine,
    catalog: ChangeSource,
    to: int,
    *,
    allow_data_loss: bool,
    lock_timeout: float = 30.0,
    progress: Progress[Change] | None = None,
) -> list[Applied]:
    """Revert, newest first, the applied changes above ``to``, each in its own transaction.

    Raises:
        SchemaError: a change to revert declares no down direction.
        DataLossRefused: reverting would lose data and ``allow_data_loss`` is false.
    """
    with locked_state(engine, catalog, lock_timeout) as state:
        held = {a.key for a in state.applied}
        changes = [c for c in reversed(catalog.changes) if to < c.number and c.key in held]
        with engine.connect() as conn:
            repeatable_runs.refuse_going_below(conn, to)
        refuse_data_loss(changes, allow_data_loss)
        done: list[Applied] = []
        for index, change in enumerate(changes):
            if progress:
                progress(index, len(changes), change)
            done.append(revert(engine, change))
        return done


def repair(engine: Engine, catalog: ChangeSource, lock_timeout: float = 30.0) -> list[str]:
    """Record the current text of drifted changes as applied (the operator checked them)."""
    with migration_lock(engine, lock_timeout):
        state = read_state(engine, catalog)
        with engine.begin() as conn:
            for drift in state.drifted:
                recorder.set_checksum(conn, drift.change)
        return [d.change.label for d in state.drifted]


def _record_baseline(conn: Connection, catalog: ChangeSource, level: int) -> None:
    """Record changes 1..level as found in place, not run."""
    for change in catalog.changes_between(0, level):
        label = _release_label(catalog, change)
        recorder.record(conn, change, label, 0, recorder.RecordKind.BASELINE)


def _release_label(catalog: ChangeSource, change: Change) -> str:
    carriers = catalog.carriers(change.key) if change.patch else []
    release = carriers[0] if carriers else catalog.release_of(change.number)
    return str(release.version) if release else "unreleased"


def changes_for(catalog: ChangeSource, numbers: Sequence[int]) -> list[Change]:
    """The catalog's changes numbered in ``numbers``, in catalog order (patch changes included)."""
    wanted = set(numbers)
    return [c for c in catalog.changes if c.number in wanted]
