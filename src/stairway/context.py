"""The site context: the operator's site, its catalog and its database engine, opened once
and handed to every operation and orchestration below the command line."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from stairway import audit, audit_anchor, audit_witness
from stairway.backup.database import settle_renamed
from stairway.catalog import Catalog, load_catalog
from stairway.database import connected, engine_for
from stairway.errors import (
    BackupError,
    SiteBusy,
    SiteError,
    StairwayError,
)
from stairway.release_source import catalog_of
from stairway.schema import migrator
from stairway.secrets.keyring import KeySource
from stairway.site import Site, load_site
from stairway.sitelock import site_lock
from stairway.versions import Version

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
# The sites this process opened, by site file: the command line checkpoints each one's audit
# log when its command ends (``checkpoint_opened``), whichever command it was, without every
# command having to remember to. Keyed by file, so a long-running process holds one per site.
_opened: dict[Path, Context] = {}


@dataclass(frozen=True)
class Context:
    """The operator's site, its catalog and its database engine, opened once per command."""

    site: Site
    catalog: Catalog
    engine: Engine


def open_context(
    site_file: Path | None, catalog_dir: Path | None, release: str | None = None
) -> Context:
    """The site, its catalog and its engine. With ``release`` (a command's ``--to``) and no
    ``--catalog``, a site that reads its catalog from its releases reads that release's own
    catalog, installing the verified release first when it is published but not installed."""
    site = load_site(site_file)
    root = catalog_dir or (release and catalog_of(site.site, release)) or site.site.catalog
    if root is None:
        raise SiteError(
            "no catalog given",
            hint="pass --catalog DIR or set `catalog = ...` in the [site] table of site.toml",
        )
    # an adopted Alembic history's SQL is rendered for the site's own database
    catalog = load_catalog(root, engine_for(site.database).dialect.name)
    ctx = Context(site, catalog, _reachable(site.database))
    _opened[site.path.resolve()] = ctx
    return ctx


def _reachable(url: str) -> Engine:
    """The site's engine once it answers; a PostgreSQL database left renamed by a restore killed
    between its two renames is put back under its name first (the restore is then run again)."""
    try:
        return connected(url)
    except SiteError:
        engine = engine_for(url)
        if engine.dialect.name != "postgresql":
            raise
        try:
            settled = settle_renamed(engine.url)
        except Exception:  # the server itself does not answer: the first error says so
            settled = False
        if not settled:
            raise
        return connected(url)


@contextlib.contextmanager
def changing(ctx: Context, unless: bool = False) -> Iterator[None]:
    """The site lock for a command that changes the site; none for a dry run (``unless``).

    The functions below that change a site take it themselves; this is for callers that write
    through a lower layer (secrets, background migrations) and for a dry run's counterpart.
    """
    if unless:
        yield
        return
    with site_lock(ctx):
        yield


def current_version(ctx: Context) -> Version:
    """The release the site's database is at.

    Raises SiteError when the database holds no Stairway site.
    """
    release = migrator.site_release(ctx.engine) or migrator.adopted_release(
        ctx.catalog, migrator.read_state(ctx.engine, ctx.catalog)
    )
    if release is None:
        raise SiteError(
            f"{ctx.site.database} holds no Stairway site",
            hint="create it with `stairway init --version V` or adopt it with `stairway baseline`",
        )
    return ctx.catalog.version(release)


def backup_dir(ctx: Context) -> Path:
    """The site's backup directory; raises BackupError when site.toml names none."""
    where = ctx.site.site.backup_dir
    if where is None:
        raise BackupError(
            "site.toml names no backup_dir", hint="set backup_dir in the [site] table"
        )
    return where


def secret_keys(ctx: Context) -> KeySource:
    """Where the site key ring comes from: the environment or ``[secrets] key_file``."""
    return KeySource(ctx.site.secrets.key_file)


def anchor(ctx: Context) -> audit_witness.Anchor:
    """Where the site's audit log is anchored: its audit key and witness file."""
    return audit_witness.anchor_of(ctx.site)


def checkpoint(ctx: Context) -> audit_witness.Checkpoint | None:
    """Sign the site's committed audit head if it moved; a failure is logged, never raised:
    the work it follows is done, and ``stairway audit verify`` names what is wrong."""
    try:
        return audit_anchor.checkpoint(ctx.engine, anchor(ctx))
    except (StairwayError, OSError, SQLAlchemyError) as err:
        log.warning("no audit checkpoint for %s: %s", ctx.site.path, err)
        return None


def checkpointed(
    work: Callable[Concatenate[Context, P], R],
) -> Callable[Concatenate[Context, P], R]:
    """``work`` on a site, then a checkpoint of its audit log, whether it succeeded or not (a
    failed upgrade logs its rollback). Refused because another command holds the site, it
    wrote nothing to sign: it lets go of the database at once instead of reading it beside
    the holder (on SQLite a rollback or restore refuses to swap a file another process has
    open)."""

    @functools.wraps(work)
    def run(ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            done = work(ctx, *args, **kwargs)
        except SiteBusy:
            ctx.engine.dispose()
            raise
        except BaseException:
            checkpoint(ctx)
            raise
        checkpoint(ctx)
        return done

    return run


def checkpoint_opened() -> None:
    """A checkpoint of every site opened since the last call (``forget_opened``) whose audit
    log this process wrote to: a command that only read a site leaves its files alone."""
    for ctx in list(_opened.values()):
        if audit.database_of(ctx.engine) in audit.appended_to:
            checkpoint(ctx)
    forget_opened()


def forget_opened() -> None:
    """Start afresh: no site opened, no log written."""
    _opened.clear()
    audit.appended_to.clear()
