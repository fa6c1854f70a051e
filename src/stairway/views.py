"""Rich renderings and JSON shapes of command results. No logic beyond presentation."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from stairway.backup import Backup
from stairway.estimate.predict import say_duration
from stairway.objects.delta_run import DeltaReport
from stairway.objects.store import StoredObject
from stairway.operations import ConfigResult, Status
from stairway.operations.plugins import HopMove
from stairway.plan import UpgradePlan
from stairway.schema.change import Change
from stairway.schema.executor import Applied
from stairway.schema.histories.repeatable_runs import DueRepeatable
from stairway.schema.phases import PhaseFinding
from stairway.transfer.importer import ImportReport
from stairway.transfer.shards import Shard
from stairway.verify import Finding, Report, group

if TYPE_CHECKING:
    from stairway.estimate import Estimate
    from stairway.rehearse import Rehearsal

Warnings = dict[int, list[PhaseFinding]]

PHASE_STYLE = {"expand": "green", "background": "cyan", "contract": "yellow", "offline": "red"}


def phase_text(change: Change) -> str:
    """The change's phase, coloured, with ``(no tx)`` when it runs outside a transaction and
    ``(in parts)`` when it commits part-way."""
    style = PHASE_STYLE.get(change.phase.value, "white")
    tx = "" if change.transactional else " (in parts)" if change.in_parts else " (no tx)"
    return f"[{style}]{change.phase.value}[/{style}]{tx}"


def plan_table(plan: UpgradePlan, warnings: Warnings, plugins: Sequence[HopMove] = ()) -> Group:
    """The upgrade plan as a table, each hop with its changes and their phases and the plug-in
    moves of its objects step, then the phase warnings, each under the label of its change. The
    warnings are prose below the table, not a column of it: beside a long change label at 80
    columns a column would be a few letters wide and cut every word."""
    table = Table(title=f"Upgrade plan: {plan.describe()}")
    hops = [f"{step.source} ->\n{step.release.version}" for step in plan.steps]
    whole_column(table, "step", (line for hop in hops for line in hop.splitlines()))
    whole_column(table, "change", (c.label for s in plan.steps for c in s.changes))
    table.add_column("phase", overflow="fold", min_width=len("contract"))
    for hop, step in zip(hops, plan.steps, strict=True):
        if not step.changes:
            table.add_row(hop, "[dim]no schema changes[/dim]", "")
        if step.release.clear:
            cleared = ", ".join(step.release.clear)
            table.add_row("", f"clears from the data directory: {cleared}", "")
        for index, change in enumerate(step.changes):
            table.add_row(hop if index == 0 else "", change.label, phase_text(change))
        for move in _of_hop(plugins, step.release.version):
            table.add_row("", escape(f"plug-in: {move.describe()}"), "")
    for index, due in enumerate(plan.repeatables):
        why = "re-apply, checksum changed" if due.changed else "repeatable, new"
        shown = escape(f"{due.repeatable.script} ({why})")
        table.add_row("then" if index == 0 else "", shown, due.repeatable.phase.value)
    return Group(table, *_warned(plan, warnings))


def _of_hop(plugins: Sequence[HopMove], release: object) -> list[HopMove]:
    return [move for move in plugins if move.release == str(release)]


def _warned(plan: UpgradePlan, warnings: Warnings) -> list[Text]:
    """Each change's phase warnings, the label first, for below the plan's table."""
    said = []
    for change in (c for s in plan.steps for c in s.changes):
        for warning in warnings.get(change.number, []):
            said.append(Text.assemble((change.label, "yellow"), ": ", warning.describe()))
    return said


def plan_json(
    plan: UpgradePlan, warnings: Warnings, plugins: Sequence[HopMove] = ()
) -> dict[str, Any]:
    """The upgrade plan as ``--json`` prints it: the versions, whether it may run rolling, and
    each hop with its changes and their phase warnings, and the plug-in moves of its objects.
    """
    return {
        "from": str(plan.current),
        "to": str(plan.target),
        "nothing_to_do": plan.nothing_to_do,
        "rolling_safe": plan.rolling_safe,
        "blocking_rolling": [c.label for c in plan.blocking_rolling],
        "repeatables": [repeatable_json(r) for r in plan.repeatables],
        "steps": [
            {
                "from": str(s.source),
                "to": str(s.release.version),
                "clear": list(s.release.clear),
                "plugins": [m.as_json() for m in _of_hop(plugins, s.release.version)],
                "changes": [
                    {
                        **change_json(c),
                        "warnings": [w.describe() for w in warnings.get(c.number, [])],
                    }
                    for c in s.changes
                ],
            }
            for s in plan.steps
        ],
    }


def repeatable_json(due: DueRepeatable) -> dict[str, Any]:
    """A Flyway repeatable a migration applies: its file, Flyway's description of it, its phase
    and checksum, and why it runs (``new``, or ``changed`` since it was applied)."""
    r = due.repeatable
    return {
        "script": r.script,
        "description": r.description,
        "phase": r.phase.value,
        "checksum": r.checksum,
        "reason": due.reason,
    }


def change_json(change: Change) -> dict[str, Any]:
    """A change as JSON: its number (and patch code), name, phase, transaction and checksum."""
    return {
        "number": change.number,
        **({"patch": change.code} if change.patch else {}),
        "name": change.name,
        "phase": change.phase.value,
        "transactional": change.transactional,
        "checksum": change.checksum,
    }


def applied_json(done: list[Applied]) -> list[dict[str, Any]]:
    """The changes applied, each as ``change_json`` with how long it took."""
    return [{**change_json(a.change), "duration_ms": a.duration_ms} for a in done]


def status_table(status: Status) -> Table:
    """The site's schema status as a two-column table: level, latest release, applied, pending,
    drifted and unknown changes.
    """
    state = status.state
    table = Table(title=f"{status.product} at {status.release or 'no release'}", show_header=False)
    table.add_column("what", overflow="fold")
    table.add_column("value", overflow="fold", min_width=_widest_label(status))
    table.add_row("schema level", str(state.level))
    table.add_row("latest release in catalog", status.latest)
    table.add_row("applied changes", str(len(state.applied)))
    table.add_row("pending for this release", _labels(c.label for c in status.pending))
    if status.repeatables is not None:  # a Flyway catalog with repeatables
        shown = (escape(r.describe()) for r in status.repeatables)
        table.add_row("repeatable migrations pending", _labels(shown))
    table.add_row("drifted", _labels(d.describe() for d in state.drifted))
    table.add_row("unknown to this catalog", _labels(a.label for a in state.unknown))
    return table


def _widest_label(status: Status) -> int:
    """The value column is at least as wide as the longest change label it lists."""
    state = status.state
    labels = [c.label for c in status.pending] + [d.change.label for d in state.drifted]
    return max((len(label) for label in labels + [a.label for a in state.unknown]), default=0)


def _labels(items: Any) -> str:
    text = "\n".join(items)
    return text or "[dim]none[/dim]"


def status_json(status: Status) -> dict[str, Any]:
    """The site's schema status as ``--json`` prints it: every applied change, the pending, the
    drifted and the unknown, and how to adopt a database Stairway has not recorded.
    """
    state = status.state
    return {
        "product": status.product,
        "release": status.release,
        "level": state.level,
        "latest": status.latest,
        "applied": [
            {
                "number": a.number,
                **({"patch": a.code} if a.patch else {}),
                "name": a.name,
                "phase": a.phase.value,
                "release": a.release,
                "applied_at": a.applied_at.isoformat(),
                "duration_ms": a.duration_ms,
                "kind": a.kind,
            }
            for a in state.applied
        ],
        "pending": [change_json(c) for c in status.pending],
        "repeatables": [repeatable_json(r) for r in status.repeatables or ()],
        "drifted": [d.describe() for d in state.drifted],
        "unknown": [a.label for a in state.unknown],
        "adopt": status.adopt,
    }


def object_json(found: StoredObject) -> dict[str, Any]:
    """A stored object as JSON: the document as it reads now and the migrations that made it so."""
    return {
        "id": found.id,
        "type": found.type,
        "written_by": str(found.written_by) if found.written_by else None,
        "document": found.document,
        "stale": found.outcome.stale,
        "applied": [m.describe() for m in found.outcome.applied],
        "attention": [a.describe() for a in found.outcome.attention],
    }


def object_panel(found: StoredObject) -> Panel:
    """A stored object as a panel: the migrated document, then what was applied and what needs
    attention.
    """
    lines = [orjson.dumps(found.document, option=orjson.OPT_INDENT_2).decode()]
    lines += [f"[green]applied[/green] {m.describe()}" for m in found.outcome.applied]
    lines += [f"[yellow]attention[/yellow] {a.describe()}" for a in found.outcome.attention]
    written = found.written_by or "unknown"
    return Panel("\n".join(lines), title=f"{found.type} {found.id} (written by {written})")


SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "suggestion": "cyan", "info": "dim"}


def verify_table(report: Report) -> Table:
    """The verify report as a table, most severe first. Each finding's cell holds its prose, the
    objects found and what to do, one under another, so that it is wide enough at 80 columns to
    keep a change label, an id or a path whole; the prose wraps between words."""
    table = Table(title=f"verify {report.current} -> {report.target}", show_lines=False)
    table.add_column("severity", overflow="fold")
    table.add_column("topic", no_wrap=True)
    words = [w for f in report.findings for w in _finding_cell(f).split()]
    table.add_column("finding", overflow="fold", min_width=min(_widest(words), FINDING_WIDEST))
    for severity, findings in group(report.findings).items():
        for finding in findings:
            table.add_row(
                f"[{SEVERITY_STYLE[severity]}]{severity}{' (blocks)' if finding.blocking else ''}",
                escape(finding.topic),
                _finding_cell(finding),
            )
    return table


FINDING_WIDEST = 52  # the finding column's room at 80 columns, beside severity and topic


def _finding_cell(finding: Finding) -> str:
    lines = [escape(finding.message)]
    if finding.examples:
        lines.append(f"[dim]objects / first ids:[/dim] {escape(_hits(finding))}")
    if finding.hint:
        lines.append(f"[dim]what to do:[/dim] {escape(finding.hint)}")
    return "\n".join(lines)


def _hits(finding: Finding) -> str:
    if finding.count is None:
        return ""
    return (
        f"{finding.count}: {', '.join(finding.examples)}"
        if finding.examples
        else str(finding.count)
    )


def verify_json(report: Report) -> dict[str, Any]:
    """The verify report as ``--json`` prints it: whether it blocks, what needs an operator, and
    every finding.
    """
    return {
        "current": str(report.current),
        "target": str(report.target),
        "blocked": bool(report.blocking),
        "needs_operator": [f.message for f in report.by_hand],
        "findings": [dataclasses.asdict(f) for f in report.findings],
    }


def config_table(result: ConfigResult) -> Table:
    """The config-file migration as a table: each file, what was applied, what needs a hand and
    where its original was kept.
    """
    run = result.run
    table = Table(title=f"config files {run.current} -> {run.target}")
    for column in ("file", "applied", "needs a hand", "original kept as"):
        table.add_column(column, overflow="fold")
    kept = {k.name.rsplit(".before-", 1)[0]: k for k in result.kept}
    for outcome in run.outcomes:
        table.add_row(
            str(outcome.path),
            "\n".join(m.describe() for m in outcome.applied) or "-",
            "\n".join(a.describe() for a in outcome.attention) or "-",
            str(kept.get(outcome.path.name, "-")),
        )
    return table


def config_json(result: ConfigResult) -> dict[str, Any]:
    """The config-file migration as ``--json`` prints it: each file's changes and its diff."""
    run = result.run
    return {
        "current": str(run.current),
        "target": str(run.target),
        "written": result.written,
        "files": [
            {
                "path": str(o.path),
                "changed": o.changed,
                "applied": [m.describe() for m in o.applied],
                "attention": [a.describe() for a in o.attention],
                "diff": o.diff(),
            }
            for o in run.outcomes
        ],
        "kept": [str(k) for k in result.kept],
    }


def deltas_table(report: DeltaReport) -> Table:
    """The configuration deltas as a table: each delta, what it does and its outcome; the title
    says when it was a dry run.
    """
    title = "configuration deltas" + ("" if report.written else " (dry run: nothing written)")
    table = Table(title=title)
    table.add_column("release", overflow="fold")
    whole_column(table, "delta", (r.delta.id for r in report.results))
    for column in ("does", "outcome", "objects", "why"):
        table.add_column(column, overflow="fold")
    for result in report.results:
        delta = result.delta
        table.add_row(
            str(delta.release),
            delta.id,
            f"{delta.op} {delta.type} {delta.aim}",
            "settled earlier" if result.verdict is None else str(result.verdict),
            str(result.objects),
            result.reason,
        )
    return table


def deltas_json(report: DeltaReport) -> dict[str, Any]:
    """The configuration deltas as ``--json`` prints them, each with its outcome and why."""
    return {
        "written": report.written,
        "deltas": [
            {
                "id": r.delta.id,
                "release": str(r.delta.release),
                "op": str(r.delta.op),
                "type": r.delta.type,
                "target": r.delta.aim,
                "description": r.delta.description,
                "outcome": "settled" if r.verdict is None else str(r.verdict),
                "objects": r.objects,
                "reason": r.reason,
            }
            for r in report.results
        ],
    }


def backup_json(backup: Backup) -> dict[str, Any]:
    """A backup as JSON: its manifest's facts and its size before and after compression."""
    manifest = backup.manifest
    return {
        "id": manifest.id,
        "path": str(backup.path),
        "product": manifest.product,
        "version": manifest.version,
        "schema_level": manifest.schema_level,
        "created": manifest.created,
        "engine": manifest.engine,
        "members": len(manifest.members),
        "size": manifest.size,
        "compressed": backup.path.stat().st_size,
    }


def _widest(values: Iterable[str]) -> int:
    return max((len(v) for v in values), default=0)


def whole_column(table: Table, header: str, values: Iterable[str]) -> None:
    """A column of values a user copies into another command (a backup id, a change label):
    never cut or wrapped, however narrow the terminal; the other columns wrap instead."""
    table.add_column(
        header, no_wrap=True, overflow="fold", min_width=max(_widest(values), len(header))
    )


def backups_table(found: list[Backup]) -> Table:
    """One backup a row; the id whole, the rest folded onto lines of their own so that the
    table stays readable in 80 columns."""
    table = Table(title="backups")
    whole_column(table, "id", (b.manifest.id for b in found))
    for column in ("created", "release", "size"):
        table.add_column(column, overflow="fold")
    for backup in found:
        manifest = backup.manifest
        day, _, time = manifest.created.replace("+00:00", "").partition("T")
        table.add_row(
            manifest.id,
            f"{day}\n{time[:5]} UTC",
            f"{manifest.version}\nschema {manifest.schema_level}\n{manifest.engine}",
            f"{manifest.size / 1e6:,.1f} MB\n{backup.path.stat().st_size / 1e6:,.1f} MB zst",
        )
    return table


def upgrade_json(report: Any) -> dict[str, Any]:
    """An upgrade's report as ``--json`` prints it: each step done with what it recorded, and what
    was left for an operator.
    """
    return {
        "upgrade": report.upgrade_id,
        "from": report.current,
        "to": report.target,
        "resumed": report.resumed,
        "steps": [{"step": step.describe(), **data} for step, data in report.done],
        "attention": [item.as_json() for item in report.attention],
        "needs_operator": bool(report.attention),
        "background": report.background,
        "sessions": report.sessions.as_json() if report.sessions else None,
    }


def import_table(report: ImportReport) -> Table:
    """Objects per type: what the header announces, what the file held, what is in the site."""
    table = Table("type", "header", "in the file", "in the site", title="objects per type")
    for name, found in sorted(report.types.items()):
        mark = "" if found.read == found.header == found.stored else "[red]"
        table.add_row(name, f"{found.header:,}", f"{mark}{found.read:,}", f"{mark}{found.stored:,}")
    return table


def import_summary(report: ImportReport, shard: Shard) -> str:
    """What an import did, in a sentence or two; for a shard of several, how many chunks are in."""
    done = (
        f"imported {report.imported:,} objects ({report.migrated:,} migrated, "
        f"{report.present:,} already there, {report.rejected:,} rejected)"
    )
    if report.skipped_chunks:
        done += f"; {report.skipped_chunks} chunks were in from an earlier run"
    if report.chunks_in < report.chunks:
        return (
            f"{done}\nshard {shard}: {report.chunks_in} of {report.chunks} chunks are in; "
            "the counts are checked when the last shard finishes"
        )
    verdict = "[green]every count matches the header[/green]" if report.complete else ""
    return f"{done}\n{verdict}" if verdict else done


def rehearsal_table(found: Rehearsal, estimate: Estimate | None) -> Table:
    """A rehearsal's steps as a table: the time each took beside the time the estimate predicted."""
    guesses = {s.label: s.seconds for s in estimate.steps} if estimate else {}
    title = (
        f"rehearsal on {found.scratch_database} from backup {found.backup_id} "
        f"(release {found.backup_release})"
    )
    table = Table(title=title)
    whole_column(table, "step", (step.describe() for step, _ in found.steps))
    for column in ("took", "predicted"):
        table.add_column(column, no_wrap=True)
    for step, seconds in found.steps:
        label = step.describe()
        table.add_row(label, say_duration(seconds), say_duration(guesses.get(label)))
    return table


def rehearsal_json(found: Rehearsal) -> dict[str, Any]:
    """A rehearsal as ``--json`` prints it: the scratch copy, the failure if any, the timed steps,
    the findings and the end state.
    """
    end = found.end
    return {
        "backup": found.backup_id,
        "backup_release": found.backup_release,
        "backup_level": found.backup_level,
        "backup_taken": found.backup_taken,
        "backup_reason": found.backup_reason,
        "path": found.path,
        "scratch_database": found.scratch_database,
        "scratch_dir": str(found.scratch_dir),
        "kept": found.kept,
        "failure": found.failure,
        "steps": [{"step": s.describe(), "seconds": t} for s, t in found.steps],
        "findings": [
            {"severity": f.severity, "topic": f.topic, "message": f.message}
            for f in (found.findings.findings if found.findings else ())
        ],
        "end": {"release": end.release, "level": end.state.level} if end else None,
    }


def plural(count: int, noun: str, many: str = "") -> str:
    """``1 chunk``, ``2 chunks``, ``1,000 objects``; ``many`` when the plural is not noun+s."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


def export_contents(objects: int, audit_entries: int, chunks: int) -> str:
    """What an export holds, counted the same way by `export` and `export verify`."""
    entries = plural(audit_entries, "audit entry", "audit entries")
    return f"{plural(objects, 'object')} and {entries} in {plural(chunks, 'chunk')}"
