"""Findings on the site's licence for the release it is about to run."""

from __future__ import annotations

from stairway import licence
from stairway.context import Context
from stairway.verify.findings import Finding, FindingSeverity, Topic
from stairway.versions import Version


def licence_findings(ctx: Context, version: Version) -> list[Finding]:
    """The licence checked for running ``version``: a critical problem (unsigned, expired, or not
    covering that version) blocks, so that no site upgrades into a release it may not run."""
    declared = ctx.catalog.manifest.licence if ctx.catalog.manifest else None
    if declared is None:
        return []
    where = ctx.site.licence.file
    if where is None:
        return [
            Finding(
                Topic.LICENCE,
                FindingSeverity.CRITICAL,
                f"{ctx.catalog.product} needs a licence and site.toml names no licence file",
                blocking=True,
                hint='set [licence] file = "PATH" to the licence from the vendor',
            )
        ]
    key = ctx.catalog.root / declared.key
    terms, problems = licence.check(
        where, key, ctx.catalog.product, version, warn_days=declared.warn_days
    )
    found = [_problem(p) for p in problems]
    if terms is not None and not problems:
        found.append(
            Finding(
                Topic.LICENCE,
                FindingSeverity.INFO,
                f"licence {terms.id} for {terms.customer} covers {version} until {terms.expires}",
            )
        )
    return found


def _problem(problem: licence.Problem) -> Finding:
    blocking = problem.severity is licence.ProblemSeverity.CRITICAL
    severity = FindingSeverity(problem.severity)
    return Finding(Topic.LICENCE, severity, problem.message, blocking=blocking, hint=problem.hint)
