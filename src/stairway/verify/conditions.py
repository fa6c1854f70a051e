"""Findings from the site as it runs: the catalog's declared conditions (on the data, and on the
environment: ``stairway.verify.environment``) and the jobs that are running now. Every query
runs in a transaction that is rolled back."""

from __future__ import annotations

from sqlalchemy import Connection, text

from stairway.catalog.manifest import CheckModel, JobModel
from stairway.context import Context
from stairway.verify.environment import environment_finding
from stairway.verify.findings import EXAMPLES, Finding, FindingSeverity, Topic
from stairway.versions import Version


def check_findings(ctx: Context, current: Version, target: Version) -> list[Finding]:
    """Every declared data check due between ``current`` and ``target`` that the data fails,
    and what every environment check due found."""
    manifest = ctx.catalog.manifest
    due = [
        c
        for c in (manifest.check if manifest else ())
        if c.before is None or current < ctx.catalog.version(c.before) <= target
    ]
    with _read_only(ctx) as conn:
        found = [f for c in due if c.kind == "query" and (f := _check(conn, c)) is not None]
    return found + [environment_finding(ctx, c) for c in due if c.kind != "query"]


def _check(conn: Connection, check: CheckModel) -> Finding | None:
    try:
        row = conn.execute(text(check.query or "")).first()
    except Exception as err:
        conn.rollback()
        return Finding(
            Topic.CHECKS,
            FindingSeverity.CRITICAL,
            f"{check.name}: the query failed: {str(err).splitlines()[0]}",
            blocking=True,
            hint="the catalog's check does not fit this database; report it to the product team",
        )
    value = None if row is None else row[0]
    if _same(value, check.expect):
        return None
    severity = FindingSeverity(check.severity)
    return Finding(
        Topic.CHECKS,
        severity,
        f"{check.name}: found {value!r}, the upgrade needs {check.expect!r}",
        blocking=severity is FindingSeverity.CRITICAL,
        hint=check.hint,
    )


def _same(value: object, expect: object) -> bool:
    if isinstance(expect, bool) or isinstance(value, bool):
        return str(value).lower() in (str(expect).lower(), "1" if expect else "0")
    return str(value) == str(expect)


def job_findings(ctx: Context) -> list[Finding]:
    """The product's jobs running now, which the upgrade will interrupt."""
    manifest = ctx.catalog.manifest
    with _read_only(ctx) as conn:
        return [f for job in (manifest.job if manifest else ()) if (f := _job(conn, job))]


def _job(conn: Connection, job: JobModel) -> Finding | None:
    try:
        rows = conn.execute(text(job.query)).all()
    except Exception as err:
        conn.rollback()
        return Finding(Topic.JOBS, FindingSeverity.WARNING, f"{job.name}: cannot list them: {err}")
    if not rows:
        return None
    return Finding(
        Topic.JOBS,
        FindingSeverity.WARNING,
        f"{len(rows)} {job.name} running: the upgrade will mark them interrupted",
        count=len(rows),
        examples=tuple(str(r[0]) for r in rows[:EXAMPLES]),
        hint="let them finish first, or accept that the product reconciles them on start",
    )


class _read_only:
    """A connection whose transaction is always rolled back (and read-only on PostgreSQL)."""

    def __init__(self, ctx: Context) -> None:
        self.conn = ctx.engine.connect()

    def __enter__(self) -> Connection:
        self.conn.begin()
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text("SET TRANSACTION READ ONLY"))
        return self.conn

    def __exit__(self, *_exc: object) -> None:
        self.conn.rollback()
        self.conn.close()
