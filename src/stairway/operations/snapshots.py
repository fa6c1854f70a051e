"""``stairway snapshot``: a release's schema as one DDL file per dialect, the rows its changes
insert and its manifest, taken from a site at that release whose schema is exactly what the
release's changes create.

Before writing, the site's changes 1..N are replayed into an empty scratch database and the two
schemas compared object by object (:mod:`stairway.schema.inventory`): a snapshot of a site
someone altered by hand would hand that alteration to every new site. The rows come from that
scratch database, never from the site, whose rows are its users' data. The DDL file is written
first, the rows next and the manifest, which carries their digests, last: each file is replaced
whole, and files left without their new manifest are refused when the catalog loads.

On a site of an adopted history, the tool's own table (``alembic_version``,
``flyway_schema_history``, ``schema_migrations``) is bookkeeping of the history, as Stairway's
``stairway_*`` tables are: it is left out of the comparison, the DDL and the rows, and ``init``
stamps it from the level. The manifest names the history's identifier of that level instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import Engine, literal, select, table

from stairway.catalog.snapshots import DIALECTS, ddl_name, digest, manifest_name, rows_name
from stairway.context import Context
from stairway.errors import SchemaError, UsageRefused
from stairway.files import write_atomic
from stairway.operations.ddl import schema_ddl
from stairway.operations.seed_rows import seed_rows
from stairway.schema import migrator
from stairway.schema.adoption import product_tables
from stairway.schema.change import Change
from stairway.schema.inventory import Inventory, differences, inventory_of
from stairway.scratch import scratch_engine
from stairway.targets import named_release
from stairway.versions import Release


@dataclass(frozen=True)
class SnapshotWritten:
    """What ``stairway snapshot`` wrote."""

    release: str
    level: int
    dialect: str
    ddl: Path
    manifest: Path
    sha256: str
    statements: int
    rows: Path | None  # the rows file; None when the changes insert no rows
    row_statements: int
    declared: bool  # the release names this directory as its snapshot already

    def as_json(self) -> dict[str, object]:
        """The result as ``stairway snapshot --json`` prints it."""
        return {
            "release": self.release,
            "level": self.level,
            "dialect": self.dialect,
            "ddl": str(self.ddl),
            "manifest": str(self.manifest),
            "sha256": self.sha256,
            "statements": self.statements,
            "rows": str(self.rows) if self.rows else None,
            "row_statements": self.row_statements,
            "declared": self.declared,
        }


def take_snapshot(ctx: Context, version: str, out: Path | None = None) -> SnapshotWritten:
    """Write the snapshot of release ``version`` from the site, which must be at it, with no
    drift; into ``out`` (default: ``snapshots/<version>`` in the catalog)."""
    release = named_release(ctx.catalog, version, "--release")
    dialect = ctx.engine.dialect.name
    if dialect not in DIALECTS:
        raise UsageRefused(f"no snapshot of a {dialect} database", hint="PostgreSQL or SQLite")
    _refuse_unfit(ctx, release)
    rows = _refuse_unlike_history(ctx, release)
    statements = schema_ddl(ctx.engine, tool_tables(ctx.catalog.changes))
    directory = out or ctx.catalog.root / "snapshots" / str(release.version)
    ddl = _render(ctx.catalog.product, release, dialect, statements).encode("utf-8")
    seeds = _render_rows(ctx.catalog.product, release, dialect, rows) if rows else None
    _write(directory, release, dialect, ddl, seeds, _point(ctx, release))
    return SnapshotWritten(
        str(release.version),
        release.schema,
        dialect,
        directory / ddl_name(dialect),
        directory / manifest_name(dialect),
        digest(ddl),
        len(statements),
        directory / rows_name(dialect) if seeds else None,
        len(rows),
        _declared(ctx, release, directory),
    )


def tool_tables(changes: Sequence[Change]) -> set[str]:
    """The adopted tool's bookkeeping tables the changes keep; none for Stairway's own."""
    return {c.origin.table for c in changes if c.origin is not None}


def _point(ctx: Context, release: Release) -> str | None:
    """The adopted history's own identifier of the release's level; None without a history."""
    at = ctx.catalog.changes_between(release.schema - 1, release.schema)
    return at[0].origin.ident if at and at[0].origin is not None else None


def _refuse_unfit(ctx: Context, release: Release) -> None:
    """The site must be at ``release``, with every change it needs applied as shipped."""
    again = (
        f"take it from a site at {release.version}: `stairway init --version {release.version} "
        "--replay` on an empty database"
    )
    at = migrator.site_release(ctx.engine)
    if at != str(release.version):
        where = f"at {at}" if at else "not a Stairway site"
        raise SchemaError(f"the site is {where}, not at release {release.version}", hint=again)
    if release.patches:
        raise UsageRefused(
            f"release {release.version} carries patch changes: it ships no snapshot",
            hint="snapshot a release of the main line",
        )
    state = migrator.read_state(ctx.engine, ctx.catalog)
    state.refuse_unsafe()  # drift, or changes this catalog does not ship
    if state.pending(ctx.catalog.changes, release.schema) or state.patches:
        raise SchemaError(
            f"the site does not hold exactly changes 1..{release.schema} of {release.version}",
            hint="`stairway status` shows what is pending; " + again,
        )


def _refuse_unlike_history(ctx: Context, release: Release) -> list[str]:
    """The live schema must be what changes 1..N create, object by object; the statements that
    put back the rows those changes insert."""
    replayed, rows = _replayed(ctx, release)
    found = differences(replayed, inventory_of(ctx.engine, tool_tables(ctx.catalog.changes)))
    if not found:
        return rows
    shown = "; ".join(d.describe("replayed schema", "site's schema") for d in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    raise SchemaError(
        f"the site's schema is not what changes 1..{release.schema} create: {shown}{more}",
        hint="a snapshot hands its schema to every new site: take it from a site built by "
        f"`stairway init --version {release.version} --replay`",
    )


def _replayed(ctx: Context, release: Release) -> tuple[Inventory, list[str]]:
    """The inventory of changes 1..N replayed into an empty scratch database, and the rows
    they left there as statements."""
    try:
        with scratch_engine(ctx.engine, "snapshot") as scratch:
            migrator.migrate(scratch, ctx.catalog, release.schema, release=release)
            tools = tool_tables(ctx.catalog.changes)  # stamped by init, not carried
            tables = [t for t in product_tables(scratch) if t not in tools]
            seeded = [t for t in tables if _has_rows(scratch, t)]
            return inventory_of(scratch, tools), seed_rows(scratch, seeded)
    except psycopg.Error as err:
        raise SchemaError(
            f"cannot replay the changes into a scratch database: {str(err).strip()}",
            hint="grant the site's user CREATEDB",
        ) from None


def _has_rows(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(select(literal(1)).select_from(table(name)).limit(1)).first() is not None
        )


def _render(product: str, release: Release, dialect: str, statements: list[str]) -> str:
    head = (
        f"-- The schema of {product} {release.version} (changes 1..{release.schema}), "
        f"{dialect}: written by `stairway snapshot`.\n"
        "-- Do not edit: its manifest carries its SHA-256, checked when the catalog loads.\n\n"
    )
    return head + "".join(f"{statement};\n\n" for statement in statements)


def _render_rows(product: str, release: Release, dialect: str, statements: list[str]) -> bytes:
    head = (
        f"-- The rows changes 1..{release.schema} of {product} {release.version} insert, "
        f"{dialect}: written by `stairway snapshot`.\n"
        "-- Do not edit: its manifest carries its SHA-256, checked when the catalog loads.\n\n"
    )
    return (head + "".join(f"{statement};\n" for statement in statements)).encode("utf-8")


def _write(
    directory: Path,
    release: Release,
    dialect: str,
    ddl: bytes,
    rows: bytes | None,
    point: str | None,
) -> None:
    rows_line = f'rows_sha256 = "{digest(rows)}"\n' if rows else ""
    if point is not None:  # TOML's basic string: the identifier escaped as JSON escapes it
        rows_line += f"history = {json.dumps(point)}\n"
    manifest = (
        "# written by `stairway snapshot`: what the files beside it stand for\n"
        f'release = "{release.version}"\n'
        f"level = {release.schema}\n"
        f'dialect = "{dialect}"\n'
        f'sha256 = "{digest(ddl)}"\n' + rows_line
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / ddl_name(dialect), ddl)
        if rows:
            write_atomic(directory / rows_name(dialect), rows)
        else:  # rows of an earlier snapshot here would be refused beside a manifest without them
            (directory / rows_name(dialect)).unlink(missing_ok=True)
        write_atomic(directory / manifest_name(dialect), manifest.encode("utf-8"))
    except OSError as err:
        raise UsageRefused(
            f"cannot write the snapshot in {directory}: {err.strerror or err}",
            hint="pass --out DIR, a directory you can write",
        ) from None


def _declared(ctx: Context, release: Release, directory: Path) -> bool:
    """Whether the release's ``snapshot`` names ``directory`` already."""
    models = ctx.catalog.manifest.release if ctx.catalog.manifest else []
    named = next(
        (m.snapshot for m in models if ctx.catalog.version(m.version) == release.version), None
    )
    return named is not None and (ctx.catalog.root / named).resolve() == directory.resolve()
