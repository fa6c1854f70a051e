"""Configuration deltas as values, and the pure judgement of one against a stored object.

A delta is a change a release makes to specific objects it shipped, rather than to the shape of
every object of a type: ``add`` an initial object, ``modify`` values the release set, mark one
``obsolete``. An operator may have changed those objects since; a delta never overwrites such a
change and never deletes anything. It is applied whole or reported whole.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from stairway.objects import paths
from stairway.objects.migration import Document
from stairway.versions import Version


class DeltaOp(StrEnum):
    """What a delta does.

    Attributes:
        ADD: Adds an initial object the release ships.
        MODIFY: Changes values the previous release shipped in existing objects.
        OBSOLETE: Marks objects obsolete (at the catalog's lifecycle path) for an
            administrator to review; nothing is deleted.
    """

    ADD = "add"
    MODIFY = "modify"
    OBSOLETE = "obsolete"


class _Absent(Enum):
    """The value of a key that is not there: ``old`` of a key a release adds, ``new`` of one
    it takes away."""

    ABSENT = "absent"

    def __repr__(self) -> str:
        return "absent"


ABSENT = _Absent.ABSENT
Value = object  # a JSON value, or ABSENT


@dataclass(frozen=True)
class DeltaSet:
    """One value a ``modify`` delta changes.

    Attributes:
        path: The key path in the object.
        old: What the previous release shipped at the path (``ABSENT``: no key).
        new: What this release ships there (``ABSENT``: the key goes away).
    """

    path: tuple[str, ...]
    old: Value = ABSENT  # what the previous release shipped at this path
    new: Value = ABSENT  # what this release ships there

    def describe(self) -> str:
        """``path: old -> new`` in one line."""
        return f"{'.'.join(self.path)}: {_show(self.old)} -> {_show(self.new)}"


@dataclass(frozen=True)
class Delta:
    """One configuration delta of a release, as the catalog declares it.

    Attributes:
        id: Unique in the catalog; the delta log records deltas by it.
        release: The release that ships it (its file is under ``deltas/<release>/``).
        description: One sentence for the release notes.
        op: What it does.
        type: The type of the objects it targets.
        target: The id of the object it targets (``add``: the new object's id); None when
            ``where`` selects the objects.
        where: Pairs of key path and value: it targets every object of the type matching all.
        document: ``add``: the object itself.
        sets: ``modify``: the values it changes.
        source: The catalog file that declares it.
    """

    id: str  # unique in the catalog; the log records deltas by it
    release: Version  # the release that ships it: deltas/<release>/
    description: str  # one sentence for the release notes
    op: DeltaOp
    type: str
    target: object = None  # an object id; add: the new object's id
    where: tuple[tuple[tuple[str, ...], object], ...] = ()  # or: every object matching these
    document: Document = field(default_factory=dict)  # add: the object itself
    sets: tuple[DeltaSet, ...] = ()  # modify: the values it changes
    source: str = field(default="", compare=False)

    def describe(self) -> str:
        """The delta in one line: release, id, what it does to which objects, and why."""
        return f"{self.release} {self.id} ({self.op} {self.type} {self.aim}): {self.description}"

    @property
    def aim(self) -> str:
        """The objects it targets, as text: the target id, or the ``where`` conditions."""
        if self.target is not None:
            return str(self.target)
        return " and ".join(f"{'.'.join(p)} = {v!r}" for p, v in self.where)

    def selects(self, document: Document) -> bool:
        """Whether a document of this delta's type matches its ``where``.

        Args:
            document: A stored object of the delta's type.
        """
        return all(_get(document, path) == value for path, value in self.where)


class Verdict(StrEnum):
    """What becomes of a delta, or of one object it targets.

    Attributes:
        APPLY: Apply it: the object is as the previous release shipped it.
        DONE: Already in the shape the delta gives: record it, change nothing.
        REPORT: Not forced: its target is missing or an operator changed it; reported for an
            operator to settle (apply by hand, or ``stairway deltas skip``).
    """

    APPLY = "apply"
    DONE = "done"  # already in the shape the delta gives: record it, change nothing
    REPORT = "report"  # target missing or changed by the operator: not forced


@dataclass(frozen=True)
class Judgement:
    """The verdict of a delta on one object.

    Attributes:
        verdict: Apply, done or report.
        reason: Why, in a few words, for the operator (empty for a plain apply).
        document: ``APPLY``: the object as it is to be stored; None otherwise.
    """

    verdict: Verdict
    reason: str = ""
    document: Document | None = None  # the document to store when the verdict is APPLY


def judge(delta: Delta, found: Sequence[Document], lifecycle: tuple[str, ...]) -> list[Judgement]:
    """What ``delta`` does to each of the documents it targets (none when missing).

    Pure: the documents are not changed; a judgement to apply carries the new document.

    Args:
        delta: The delta.
        found: The stored objects it targets: for ``add``, the object of its id if any.
        lifecycle: The key path an ``obsolete`` delta sets to ``"obsolete"``.

    Returns:
        One judgement per document found (a single one when none is found).
    """
    if delta.op == DeltaOp.ADD:
        return [_judge_add(delta, found[0] if found else None)]
    if not found:
        return [Judgement(Verdict.REPORT, f"no {delta.type} {delta.aim} to change")]
    if delta.op == DeltaOp.MODIFY:
        return [_judge_modify(delta, document) for document in found]
    return [_judge_obsolete(document, lifecycle) for document in found]


def overall(judgements: Sequence[Judgement]) -> Verdict:
    """One verdict for the whole delta: reported if any object is, done if all are.

    Args:
        judgements: The judgements ``judge`` gave on each of its objects.
    """
    verdicts = {j.verdict for j in judgements}
    if Verdict.REPORT in verdicts:
        return Verdict.REPORT
    return Verdict.APPLY if Verdict.APPLY in verdicts else Verdict.DONE


def _judge_add(delta: Delta, existing: Document | None) -> Judgement:
    if existing is None:
        return Judgement(Verdict.APPLY, document=dict(delta.document))
    if existing == delta.document:
        return Judgement(Verdict.DONE, "already present")
    return Judgement(
        Verdict.REPORT, f"{delta.type} {delta.target} exists and differs from the one shipped"
    )


def _judge_modify(delta: Delta, document: Document) -> Judgement:
    changed = [s for s in delta.sets if _get(document, s.path) not in (s.old, s.new)]
    if changed:
        where = "; ".join(
            f"{'.'.join(s.path)} is {_show(_get(document, s.path))}, the release shipped "
            f"{_show(s.old)}"
            for s in changed
        )
        return Judgement(Verdict.REPORT, f"changed by an operator: {where}")
    due = [s for s in delta.sets if _get(document, s.path) != s.new]
    if not due:
        return Judgement(Verdict.DONE, "already in place")
    result = copy.deepcopy(document)
    blocked = [s for s in due if not _set(result, s.path, s.new)]
    if blocked:
        where = ", ".join(".".join(s.path[:-1]) for s in blocked)
        return Judgement(Verdict.REPORT, f"changed by an operator: {where} is not an object")
    return Judgement(Verdict.APPLY, document=result)


def _judge_obsolete(document: Document, lifecycle: tuple[str, ...]) -> Judgement:
    if _get(document, lifecycle) == "obsolete":
        return Judgement(Verdict.DONE, "already obsolete")
    result = copy.deepcopy(document)
    if not _set(result, lifecycle, "obsolete"):
        return Judgement(Verdict.REPORT, f"{'.'.join(lifecycle[:-1])} is not an object")
    return Judgement(Verdict.APPLY, document=result)


def _get(document: Document, path: tuple[str, ...]) -> Value:
    holder = paths.parent(document, path)
    return holder.get(path[-1], ABSENT) if holder is not None else ABSENT


def _set(document: Document, path: tuple[str, ...], value: Value) -> bool:
    if value is ABSENT:
        paths.take(document, path)
        return True
    return paths.put(document, path, value)


def _show(value: Value) -> str:
    return "absent" if value is ABSENT else repr(value)
