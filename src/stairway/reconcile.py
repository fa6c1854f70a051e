"""``stairway.reconcile_jobs()``: what a product calls at start, beside ``guard()``, to settle
the jobs an offline upgrade marked interrupted when it stopped the product.

Each ``[[job]]`` of the catalog with a ``[job.reconcile]`` table names where its jobs are and
what becomes of the interrupted ones: back to the queue, failed with a reason, or handed one by
one to the product's function. The jobs are taken and moved by one ``UPDATE ... RETURNING``, in
the transaction that also runs the handler: two processes starting at once cannot both take a
job (the second waits for the first's row locks, or for SQLite's write lock, and then finds none
left), a handler that fails leaves every job interrupted for the next start, and a second call
finds nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from stairway.catalog import Catalog
from stairway.catalog.manifest import JobModel, ReconcileModel, load_manifest
from stairway.database import engine_for, writing
from stairway.errors import JobsError
from stairway.hooks import HookNotFound, find_hook

log = logging.getLogger(__name__)
Handler = Callable[[Connection, object], object]
Declared = Catalog | Path | str | Sequence[JobModel]


@dataclass(frozen=True)
class Reconciled:
    """The interrupted jobs of one ``[[job]]`` that a start settled, by their keys."""

    job: str
    action: str
    state: str  # the state they were left in (a handler may have moved them on)
    ids: tuple[object, ...]

    def describe(self) -> str:
        """What was done, on one line."""
        done = {"requeue": "re-queued", "fail": "failed", "handler": "handed to the handler"}
        return f"{len(self.ids)} interrupted {self.job} {done[self.action]} (now {self.state})"


def reconcile_jobs(database: Engine | str, catalog: Declared) -> list[Reconciled]:
    """Settle the jobs an upgrade marked interrupted, as the catalog's ``[job.reconcile]`` says.

    Safe to call on every start and from several processes at once: each job is reconciled
    exactly once, and a call that finds none does nothing.

    Args:
        database: The product's database: an engine, or its SQLAlchemy URL.
        catalog: The release's catalog (its directory, or a loaded ``Catalog``), or the
            ``[[job]]`` declarations themselves.

    Returns:
        One entry per declared job kind with a ``[job.reconcile]`` table, with the keys of the
            jobs this call settled (none when another process or an earlier start did).

    Raises:
        JobsError: A handler could not be imported, or raised, or a declared table or column
            is not in the database; nothing was changed.
    """
    jobs = [job for job in _declared(catalog) if job.reconcile is not None]
    if not jobs:
        return []
    root = _root(catalog)
    handlers = {job.name: _handler(job, root) for job in jobs if _handled(job)}
    engine = database if isinstance(database, Engine) else engine_for(database)
    with writing(engine) as conn:
        done = [_reconcile(conn, job, handlers.get(job.name)) for job in jobs]
    for entry in done:
        if entry.ids:
            log.info("%s", entry.describe())
    return done


def _handled(job: JobModel) -> bool:
    return job.reconcile is not None and job.reconcile.handler is not None


def _reconcile(conn: Connection, job: JobModel, handler: Handler | None) -> Reconciled:
    spec = job.reconcile
    assert spec is not None  # only declared ones are reconciled
    ids = _claim(conn, spec)
    for key in ids:
        if handler is not None:
            _call(handler, conn, job, key)
    return Reconciled(job.name, spec.action, spec.target_state, ids)


def _claim(conn: Connection, spec: ReconcileModel) -> tuple[object, ...]:
    """The interrupted jobs moved to the target state, by one statement that locks them."""
    quote = conn.dialect.identifier_preparer.quote
    values = {"to": spec.target_state, "interrupted": spec.interrupted, "reason": spec.reason}
    sets = f"{quote(spec.state)} = :to"
    if spec.reason_column is not None:
        sets += f", {quote(spec.reason_column)} = :reason"
    statement = (
        f"UPDATE {quote(spec.table)} SET {sets} WHERE {quote(spec.state)} = :interrupted "
        f"RETURNING {quote(spec.key)}"
    )
    try:
        return tuple(sorted(conn.execute(text(statement), values).scalars()))
    except DBAPIError as err:
        said = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        raise JobsError(
            f"cannot reconcile the jobs in {spec.table}: {said}",
            hint="make [job.reconcile] name the table and columns the release's schema has; "
            "nothing was changed",
        ) from None


def _call(handler: Handler, conn: Connection, job: JobModel, key: object) -> None:
    try:
        handler(conn, key)
    except Exception as err:
        raise JobsError(
            f"the handler of {job.name} failed on job {key!r}: {err}",
            hint="every interrupted job stays interrupted; fix the handler and start again",
        ) from err


def _declared(catalog: Declared) -> Sequence[JobModel]:
    if isinstance(catalog, Catalog):
        return catalog.manifest.job if catalog.manifest else []
    if isinstance(catalog, Path | str):
        return load_manifest(Path(catalog) / "stairway.toml").job
    return catalog


def _root(catalog: Declared) -> Path | None:
    if isinstance(catalog, Catalog):
        return catalog.root
    return Path(catalog) if isinstance(catalog, Path | str) else None


def _handler(job: JobModel, root: Path | None) -> Handler:
    """``module:function``: a module file inside the catalog first, then an importable module."""
    assert job.reconcile is not None and job.reconcile.handler is not None
    name = job.reconcile.handler
    try:
        return find_hook(name, root)
    except HookNotFound as err:
        raise JobsError(
            f"the handler {name} of {job.name}: {err}",
            hint="name a function taking (connection, job key); nothing was changed"
            if err.imports
            else "ship the module in the catalog or install it; nothing was changed",
        ) from None
