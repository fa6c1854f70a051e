"""Newer releases than the one an upgrade goes to, as the last ``release check`` found them,
and a last check too old to trust. Info only: knowing of a newer release never stops an
upgrade to the one asked for."""

from __future__ import annotations

from stairway import release_notice
from stairway.context import Context
from stairway.verify.findings import Finding, FindingSeverity, Topic
from stairway.versions import Version


def release_findings(ctx: Context, current: Version, target: Version) -> list[Finding]:
    """A release above ``target`` that the last check found, with its path from ``current``;
    and when that check is old or its index expired, to check again."""
    said = release_notice.for_site(
        ctx.site, ctx.catalog.versions, str(target), current, ctx.catalog.releases
    )
    return [Finding(Topic.RELEASES, FindingSeverity.INFO, a.sentence, hint=a.action) for a in said]
