"""``upgrade --rolling``: an upgrade without downtime, one instance at a time, old and new
releases serving side by side on one database until the last old instance is gone.

Allowed only when every change on the path is ``expand`` or ``background`` (the target's own
contract changes excepted: they are deferred) and the target release is marked ``rolling``.
The order, journaled like any upgrade:

1. backup; the expand changes of every hop (background ones are queued) while the old release
   serves; the config files; the target release checked, unpacked and made current;
2. each instance in turn: drained (it stops taking new requests and finishes those in flight:
   the load balancer sends the rest elsewhere), stopped, started on the new release, and
   health-checked until it answers with the new version;
3. when agents were connected to the site's control plane as it began, the ``agents-back``
   check of an offline upgrade: each of them connected again, the missing ones left for the
   operator (``stairway.agents_back``);
4. the deltas, then the objects naming a plug-in the path moves repointed to its new version,
   then the deferred contract changes: both once no instance or connected agent of an older
   release is left (it waits for them, and says which it waits for); then the audit entry.

The plug-in objects wait as the contract does: an old instance has only the old version of the
plug-in and could not load an object naming the new one. With the old release gone, old and new
plug-in versions never serve side by side; the directories were snapshotted right after the
backup, before the first instance moved.

A failure before the contract step puts every instance back on the old release (the expand
changes stay: the old release runs on them) and says so; nothing is restored from the backup,
since the product kept serving and writing.

``[service]`` names the instances by URL; ``stop`` and ``start`` say which instance with
``{instance}`` (1, 2, ...), ``{port}`` or ``{url}``; ``health`` and ``drain`` are URLs that may
use ``{url}``.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from typing import Any, NoReturn

from stairway import recovery, releases, service
from stairway.context import Context
from stairway.errors import (
    ManualStepNeeded,
    RollbackFailed,
    UpgradeError,
    UpgradeFailed,
)
from stairway.instances import Instance, filled, instances_of
from stairway.journal import Journal, JournalState
from stairway.operations import plugins as site_plugins
from stairway.plan import UpgradePlan
from stairway.recovery import closed, in_words, maintenance_said, note, then
from stairway.schema import migrator
from stairway.serving import health_of, old_ones
from stairway.site import ServiceSection
from stairway.steps import Step, StepKind, path_of, task_steps
from stairway.versions import Version

log = logging.getLogger(__name__)
# the old release cannot run on what they leave
PAST_RETURN = (StepKind.PLUGIN_OBJECTS, StepKind.CONTRACT, StepKind.AUDIT)
OLD_WAIT = 300.0  # seconds the contract step waits for the last old instance or agent


def refusals(ctx: Context, plan: UpgradePlan) -> list[str]:
    """Why this upgrade cannot be rolling; empty when it can."""
    safety = plan.rolling_safety()
    found = [r for r in safety.reasons() if safety.moves]  # nothing to do is not a refusal
    section = ctx.site.service
    if len(instances_of(section)) < 2:
        found.append(
            "[service] instances names fewer than two: one must serve while another restarts"
        )
    for which in ("stop", "start"):
        command = getattr(section, which, None) if section else None
        if not command or not any(p in command for p in ("{instance}", "{port}", "{url}")):
            found.append(
                f"[service] {which} must name the instance with {{instance}}, {{port}} or {{url}}"
            )
    if section is None or not section.health:
        found.append("[service] health is needed to know an instance is back")
    return found


def rolling_steps(
    plan: UpgradePlan,
    instances: list[Instance],
    with_releases: bool,
    agents: bool = False,
    plugins: bool = False,
) -> list[Step]:
    """The steps of a rolling upgrade along ``plan``: expand, then each instance, then (when
    ``agents`` were connected as it began) the check that they came back, then contract, then
    the releases' post-upgrade tasks (a path with a task that needs the product stopped is
    refused by ``check``). With ``plugins`` (the path moves a plug-in) their directories are
    snapshotted after the backup and their objects repointed just before the contract."""
    steps = [Step(StepKind.BACKUP)]
    steps += [Step(StepKind.PLUGIN_SNAPSHOT)] if plugins else []
    for hop in plan.steps:
        release, source = str(hop.release.version), str(hop.source)
        steps += [
            Step(StepKind.EXPAND, release, source),
            Step(StepKind.CONFIG_FILES, release, source),
        ]
    if with_releases:
        steps.append(Step(StepKind.RELEASE, str(plan.target), str(plan.current)))
    steps += [Step(StepKind.INSTANCE, str(plan.target), i.url) for i in instances]
    steps += [Step(StepKind.AGENTS)] if agents else []
    for hop in plan.steps:
        steps.append(Step(StepKind.DELTAS, str(hop.release.version), str(hop.source)))
    moved = Step(StepKind.PLUGIN_OBJECTS, str(plan.target), str(plan.current))
    steps += [moved] if plugins else []
    steps.append(Step(StepKind.CONTRACT, str(plan.target)))
    return [*steps, *task_steps(plan, serving=True), Step(StepKind.AUDIT)]


def check(ctx: Context, plan: UpgradePlan) -> None:
    """Refuse a rolling upgrade along ``plan`` with UpgradeError naming every reason."""
    refused = refusals(ctx, plan)
    if refused:
        raise UpgradeError(
            f"a rolling upgrade to {plan.target} is refused: " + "; ".join(refused),
            hint="upgrade without --rolling in a maintenance window, or fix the site as said",
            current=str(plan.current),
            target=str(plan.target),
        )


# --- the steps --------------------------------------------------------------------------------


def expand(ctx: Context, step: Step, state: JournalState) -> dict[str, Any]:
    """The hop's changes up to, not including, the target's deferred contract changes."""
    target = ctx.catalog.release(step.release or "")
    deferred = [
        c.number
        for c in ctx.catalog.changes
        if step.release == state.plan["to"]
        and c.phase.value == "contract"
        and c.number > _schema_before(ctx, target.version)
    ]
    level = min(deferred) - 1 if deferred else target.schema
    done = migrator.migrate(ctx.engine, ctx.catalog, level, release=target)
    if level == target.schema:
        migrator.set_site_release(ctx.engine, ctx.catalog, str(target.version))
    return {
        "changes": [a.change.label for a in done],
        "ms": {a.change.label: a.duration_ms for a in done},
    }


def _schema_before(ctx: Context, version: Version) -> int:
    return max((r.schema for r in ctx.catalog.releases if r.version < version), default=0)


def instance(ctx: Context, step: Step, state: JournalState) -> dict[str, Any]:
    """Drain, stop and start the step's instance, and wait until it serves the target release."""
    section = ctx.site.service
    assert section is not None and step.source is not None
    instance = next(i for i in instances_of(section) if i.url == step.source)
    log.info("instance %d (%s): draining", instance.number, instance.url)
    drained = _drain(section, instance)
    _command(section, "stop", instance)
    _command(section, "start", instance)
    _wait_release(section, instance, state.plan["to"])
    log.info("instance %d (%s) serves %s", instance.number, instance.url, state.plan["to"])
    return {"instance": instance.url, "drained": drained}


def _drain(section: ServiceSection, instance: Instance) -> bool:
    if not section.drain:
        return False
    url = instance.fill(section.drain)
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=section.drain_timeout) as answer:
            return bool(200 <= answer.status < 300)
    except (urllib.error.URLError, OSError) as err:
        raise UpgradeError(
            f"instance {instance.number} did not drain ({url}: {err})",
            hint="check [service] drain: a URL that stops new requests and returns once those "
            "in flight are done",
        ) from None


def _command(section: ServiceSection, which: str, instance: Instance) -> None:
    service.run_command(filled(section, instance), which)


def _wait_release(section: ServiceSection, instance: Instance, target: str) -> None:
    """Healthy, and answering as ``target`` where ``[service] health_release`` says."""
    one = filled(section, instance)
    deadline = time.monotonic() + section.health_timeout
    last = "no answer"
    while time.monotonic() < deadline:
        answer = service.ask_health(one)
        if answer.ok:
            wrong = service.mismatch(answer, service.Expected(target), one.health_release)
            if wrong is None:
                return
            last = wrong
        time.sleep(0.2)
    raise UpgradeError(
        f"instance {instance.number} ({instance.url}) did not come back on {target} within "
        f"{section.health_timeout:.0f} s ({last})",
        hint="check the instance's log",
        target=target,
    )


def contract(ctx: Context, step: Step, state: JournalState) -> dict[str, Any]:
    """Run the target's deferred contract changes once no older release serves; record the site."""
    target = state.plan["to"]
    waited = wait_for_old(ctx, target, OLD_WAIT)
    release = ctx.catalog.release(target)
    done = migrator.migrate(ctx.engine, ctx.catalog, release.schema, release=release)
    migrator.set_site_release(ctx.engine, ctx.catalog, target)
    return {"changes": [a.change.label for a in done], "waited": round(waited, 3)}


def plugin_objects(ctx: Context, _step: Step, state: JournalState) -> dict[str, Any]:
    """The objects naming a plug-in the path moves repointed to its new version, hop by hop in
    one transaction, once no instance or agent of an older release is left."""
    waited = wait_for_old(ctx, state.plan["to"], OLD_WAIT)
    steps = [Step.from_json(s) for s in state.plan["steps"]]
    path = path_of(s for s in steps if s.kind == StepKind.EXPAND)  # the deltas walk it again
    return {"plugins": site_plugins.move_along(ctx, path), "waited": round(waited, 3)}


def wait_for_old(ctx: Context, target: str, limit: float) -> float:
    """Wait until no instance or agent of an older release than ``target`` serves; returns seconds.

    Raises UpgradeError naming them when they are still there after ``limit`` seconds.
    """
    started = time.monotonic()
    while True:
        remaining = old_ones(ctx, target)
        if not remaining:
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            raise UpgradeError(
                f"the contract changes of {target} wait for: {'; '.join(remaining)}",
                hint="upgrade or stop them, then `stairway upgrade --resume`",
                target=target,
            )
        time.sleep(0.5)


# --- when a step fails ------------------------------------------------------------------------


def failed(
    ctx: Context, journal: Journal, state: JournalState, step: Step, error: BaseException
) -> NoReturn:
    """Put every instance back on the old release; the expand changes stay. Always raises.

    Once the contract step began, the old release can no longer run on the schema: the upgrade
    is finished forward (``upgrade --resume``), never rolled back."""
    if step.kind in PAST_RETURN:
        note(journal, "failed-after-roll")
        raise ManualStepNeeded(
            f"{step.describe()} failed: {in_words(error)}. Every instance runs "
            f"{state.plan['to']}; the contract changes that did not run are still pending; "
            f"{maintenance_said(ctx)}",
            hint=then(ctx, error, journal.directory, "upgrade --resume"),
        ) from error
    note(journal, "rollback-begin")
    try:
        back = _instances_back(ctx, state, step)
    except Exception as failure:
        note(journal, "rollback-failed", error=str(failure))
        raise RollbackFailed(
            f"{step.describe()} failed ({in_words(error)}) and putting the instances back on "
            f"{state.plan['from']} failed too ({in_words(failure)}); {maintenance_said(ctx)}",
            hint=then(ctx, failure, journal.directory, "rollback --yes")
            + " restores the backup taken before it (what was written since is lost); or "
            "start each instance on the old release by hand: the schema is compatible",
        ) from failure
    said = (
        f"{step.describe()} failed: {in_words(error)}. Rolled back: every instance runs "
        f"{state.plan['from']} again"
        + (f" (instances {', '.join(back)} restarted)" if back else "")
        + "; the expand changes stay, the old release runs on them; nothing was lost"
    )
    unrecorded = note(journal, "rolled-back") or closed(journal, state.upgrade_id)
    if unrecorded is not None:
        raise ManualStepNeeded(
            f"{said}; but the journal could not record that ({in_words(unrecorded)})",
            hint=then(ctx, unrecorded, journal.directory, "rollback --yes")
            + " records it (it finds the instances back and restores nothing)",
        ) from error
    raise UpgradeFailed(said, hint="fix the cause, then run `stairway upgrade --rolling` again")


def _instances_back(ctx: Context, state: JournalState, step: Step) -> list[str]:
    """``current`` pointed back (by the swap's intent record: its done record may not have been
    written), then each instance that was touched restarted on it; the numbers restarted."""
    origin = state.plan["from"]
    recovery.release_back(ctx, state)
    back = []
    for instance in _touched(ctx, state, step):
        section = ctx.site.service
        assert section is not None
        _command(section, "stop", instance)
        _command(section, "start", instance)
        _wait_release(section, instance, origin)
        back.append(str(instance.number))
    return back


def already_back(ctx: Context, state: JournalState) -> bool:
    """A rolling upgrade whose contract step never began, with ``current`` and every instance on
    the old release again: its rollback is done, only not recorded (nothing to restore)."""
    if not state.plan.get("rolling") or not instances_of(ctx.site.service):
        return False
    steps = [Step.from_json(s) for s in state.plan["steps"]]
    begun = {r.step for r in state.records if r.event == "begin" and r.step is not None}
    if any(steps[i].kind in PAST_RETURN for i in begun if i < len(steps)):
        return False
    origin = str(state.plan["from"])
    where = ctx.site.site.releases_dir
    if where is not None and releases.current_release(where) not in (origin, None):
        return False
    section = ctx.site.service
    assert section is not None
    said = [health_of(i.fill(section.health or "")) for i in instances_of(section)]
    return all(s is not None and str(s.get("release")) == origin for s in said)


def _touched(ctx: Context, state: JournalState, failing: Step) -> list[Instance]:
    """The instances already on the new release, and the one that failed on its way there."""
    steps = [Step.from_json(s) for s in state.plan["steps"]]
    urls = {steps[i].source for i in state.done if steps[i].kind == StepKind.INSTANCE}
    if failing.kind == StepKind.INSTANCE:
        urls.add(failing.source)
    return [i for i in instances_of(ctx.site.service) if i.url in urls]
