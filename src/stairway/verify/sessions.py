"""The user sessions open now, which an offline upgrade ends when it stops the product."""

from __future__ import annotations

from stairway.context import Context
from stairway.errors import StairwayError
from stairway.open_sessions import source_for
from stairway.verify.findings import Finding, FindingSeverity, Topic

ADVICE = (
    "`stairway upgrade --drain-sessions SECONDS` waits for them to close, after a notice; "
    "`--end-sessions` ends them with notice"
)


def session_findings(ctx: Context) -> list[Finding]:
    """How many user sessions ``[sessions]`` of site.toml finds open; never blocking: the
    upgrade is told what to do about them (``stairway.open_sessions``)."""
    source = source_for(ctx.site.sessions, ctx.catalog.product)
    if source is None:
        return []
    try:
        count = source.count()
    except StairwayError as err:
        message = f"cannot count the open user sessions: {err.message}"
        return [Finding(Topic.SESSIONS, FindingSeverity.WARNING, message, hint=err.hint)]
    if not count:
        return [Finding(Topic.SESSIONS, FindingSeverity.INFO, "no user session is open", count=0)]
    return [
        Finding(
            Topic.SESSIONS,
            FindingSeverity.WARNING,
            f"{count} user session(s) open: an offline upgrade ends them when it stops the product",
            count=count,
            hint=ADVICE,
        )
    ]
