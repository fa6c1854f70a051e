"""One order for a revision graph (pure): Alembic's histories branch and merge; Stairway runs
changes in a single numbered line.

A revision comes after every revision it revises or depends on. Where several are ready at once
(parallel branches), the one that continues the branch just placed goes first, so a branch runs
whole before the next one starts; remaining ties go to the smallest revision id. The same graph
always gives the same order, whatever the file system lists first.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


class NoSingleOrder(ValueError):
    """The graph has no single order: a cycle, or more than one head."""

    def __init__(self, message: str, revisions: Sequence[str]) -> None:
        super().__init__(message)
        self.revisions = tuple(revisions)


def linearise(parents: Mapping[str, Sequence[str]]) -> list[str]:
    """Every revision of ``parents`` (revision -> what it revises or depends on) in one order.

    Raises:
        NoSingleOrder: a revision names one that is not in the graph, a cycle, or two heads.
    """
    _refuse_missing(parents)
    _refuse_heads(parents)
    children: dict[str, list[str]] = {r: [] for r in parents}
    waiting = {r: len(set(ps)) for r, ps in parents.items()}
    for revision, ps in parents.items():
        for parent in set(ps):
            children[parent].append(revision)
    ready = [r for r, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        revision = _next(ready, children[order[-1]] if order else [])
        order.append(revision)
        for child in children[revision]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) < len(parents):
        stuck = sorted(r for r, n in waiting.items() if n)
        raise NoSingleOrder(f"the revisions {', '.join(stuck[:6])} form a cycle", stuck)
    return order


def heads_after(
    order: Sequence[str], revises: Mapping[str, Sequence[str]]
) -> list[tuple[str, ...]]:
    """The heads (what ``alembic_version`` holds) after each prefix of ``order``: the revisions
    placed so far that no placed revision revises (``revises``: down revisions only)."""
    heads: set[str] = set()
    result: list[tuple[str, ...]] = []
    for revision in order:
        heads -= set(revises[revision])
        heads.add(revision)
        result.append(tuple(sorted(heads)))
    return result


def _next(ready: list[str], continuing: Sequence[str]) -> str:
    same_branch = sorted(r for r in continuing if r in ready)
    if not same_branch:
        return heapq.heappop(ready)
    ready.remove(same_branch[0])
    heapq.heapify(ready)
    return same_branch[0]


def _refuse_missing(parents: Mapping[str, Sequence[str]]) -> None:
    for revision, ps in sorted(parents.items()):
        missing = [p for p in ps if p not in parents]
        if missing:
            raise NoSingleOrder(
                f"revision {revision} revises {missing[0]}, which is not in the history",
                [revision],
            )


def _refuse_heads(parents: Mapping[str, Sequence[str]]) -> None:
    revised = {p for ps in parents.values() for p in ps}
    heads = sorted(set(parents) - revised)
    if len(heads) > 1:
        raise NoSingleOrder(
            f"the history has {len(heads)} heads ({', '.join(heads[:6])}) and no merge point",
            heads,
        )
