"""Estimates without rehearsing: locks, table sizes and predicted durations of every step."""

from __future__ import annotations

from dataclasses import replace

from stairway.context import Context
from stairway.estimate.predict import Estimate, Limits, estimate, site_facts
from stairway.estimate.rates import load_rates
from stairway.estimate.sizes import table_sizes
from stairway.operations import schema as site_schema
from stairway.operations.plugins import plan_moves
from stairway.plan import UpgradePlan
from stairway.steps import plan_steps

__all__ = ["Estimate", "Limits", "estimate_upgrade"]


def estimate_upgrade(
    ctx: Context, to: str | None, limits: Limits, recalibrate: bool = False
) -> Estimate:
    """Predict each step of the upgrade to ``to`` (default: latest) from the site's table sizes.

    Nothing is run on the site's tables. The server's rates are measured the first time, and again
    when ``recalibrate`` is set.
    """
    plan = site_schema.plan(ctx, to)
    steps = plan_steps(plan, releases=ctx.site.site.releases_dir is not None)
    hops = {str(h.release.version): h for h in plan.steps}
    described = [(s.kind, s.describe(), hops.get(s.release or "")) for s in steps]
    named = {t.name: t for t in plan.tasks}
    tasks = {s.describe(): named[s.task] for s in steps if s.task in named}
    sizes = table_sizes(ctx.engine)
    facts = site_facts(ctx.engine, ctx.catalog, sizes, ctx.site.site.data_dir)
    facts = replace(facts, plugin_objects=_repointed(ctx, plan))
    rates = load_rates(ctx.engine, ctx.site.site.backup_dir, recalibrate)
    return estimate(plan, described, ctx.catalog, facts, rates, limits, tasks)


def _repointed(ctx: Context, plan: UpgradePlan) -> dict[str, int]:
    """The objects each hop's objects step repoints to a plug-in's new version."""
    found: dict[str, int] = {}
    for move in plan_moves(ctx, plan):
        found[move.release] = found.get(move.release, 0) + (move.objects or 0)
    return found
