"""Post-upgrade tasks a release declares (``[[release.task]]``): a reindex or a product command
run after the schema and objects of the upgrade, either while the product is stopped
(``serving = false``) or once it serves again (``serving = true``).

A task is a value: what it runs, whether the product may serve meanwhile, and how it is
described by ``plan``, ``verify`` and the journal. What runs it is ``stairway.operations.tasks``;
where it sits among the upgrade's steps is ``stairway.steps``. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum


class TaskKind(StrEnum):
    """What a task runs."""

    REINDEX_INDEX = "reindex"  # one index rebuilt
    REINDEX_TABLE = "reindex-table"  # every index of one table rebuilt
    COMMAND = "command"  # a product command, run without a shell


@dataclass(frozen=True)
class Task:
    """One post-upgrade task of a release, as the catalog declares it."""

    name: str
    release: str  # the release that declares it
    kind: TaskKind
    serving: bool  # whether the product serves while it runs (it runs after the start)
    target: str = ""  # the index or table a reindex rebuilds
    argv: tuple[str, ...] = ()  # the command's program and arguments
    timeout: float = 3600.0  # seconds a command may run
    idempotent: bool = False  # a command that may safely run again after a crash

    @property
    def reindex(self) -> bool:
        """Whether the task rebuilds an index or a table's indexes (always safe to re-run)."""
        return self.kind is not TaskKind.COMMAND

    @property
    def rerunnable(self) -> bool:
        """Whether a resume may run it again when a crash left its end unrecorded."""
        return self.reindex or self.idempotent

    def what(self) -> str:
        """What it runs, in a few words: ``reindex ix_users_email``, ``command myapp reindex``."""
        if self.kind is TaskKind.REINDEX_INDEX:
            return f"reindex {self.target}"
        if self.kind is TaskKind.REINDEX_TABLE:
            return f"reindex table {self.target}"
        return "command " + " ".join(self.argv)

    def describe(self) -> str:
        """The task as plans show it: name, release, what it runs, and when."""
        when = "while the product serves" if self.serving else "while the product is stopped"
        return f"{self.name} ({self.release}): {self.what()}, {when}"

    def rerun_command(self) -> str:
        """The command that runs the task again by hand."""
        return f"stairway tasks run {self.name} --release {self.release}"


def reindex_statement(task: Task, dialect: str, quote: Callable[[str], str]) -> str:
    """The statement that rebuilds ``task``'s index or table on ``dialect``; ``quote`` is the
    dialect's identifier quoting (the name is never pasted in as written)."""
    name = quote(task.target)
    if dialect != "postgresql":
        return f"REINDEX {name}"  # SQLite: an index or a table by its name
    what = "INDEX" if task.kind is TaskKind.REINDEX_INDEX else "TABLE"
    return f"REINDEX {what} CONCURRENTLY {name}"


def on_path(releases: Iterable[tuple[str, tuple[Task, ...]]]) -> list[Task]:
    """The tasks of the releases on an upgrade path, oldest release first; a task named again
    by a later release runs once, as that release declares it, where that release's run."""
    found: dict[str, Task] = {}
    for _, tasks in releases:
        for task in tasks:
            found.pop(task.name, None)
            found[task.name] = task
    return list(found.values())


# The phases of ``REINDEX ... CONCURRENTLY`` in the order PostgreSQL runs them, as
# ``pg_stat_progress_create_index.phase`` names them: how far along a reindex is, in part.
REINDEX_PHASES = (
    "initializing",
    "waiting for writers before build",
    "building index",
    "waiting for writers before validation",
    "index validation: scanning index",
    "index validation: sorting tuples",
    "index validation: scanning table",
    "waiting for old snapshots",
    "waiting for readers before marking dead",
    "waiting for readers before dropping",
)


@dataclass(frozen=True)
class TaskProgress:
    """How far a running task has come: its phase, the time it has run, and for a reindex the
    fraction done (a command reports its elapsed time only: nothing tells how far it is)."""

    task: str
    phase: str
    elapsed: float  # seconds since it began
    fraction: float | None = None  # 0..1, None when unknown

    def eta(self) -> float | None:
        """Seconds left at the pace so far; None while nothing tells."""
        if not self.fraction:
            return None
        return self.elapsed * (1 - self.fraction) / self.fraction

    def describe(self) -> str:
        """``orders-index: building index: scanning table, 42% done, about 12 s left``."""
        said = f"{self.task}: {self.phase}, {self.elapsed:.0f} s"
        if self.fraction is None:
            return said
        eta = self.eta()
        left = f", about {eta:.0f} s left" if eta is not None else ""
        return f"{said}, {self.fraction:.0%} done{left}"


def reindex_fraction(phase: str, done: int, total: int) -> float:
    """The fraction of a reindex done: the phases behind it, and ``done`` of ``total`` blocks
    or tuples of the phase it is in (PostgreSQL counts one or the other, per phase)."""
    names = [i for i, name in enumerate(REINDEX_PHASES) if phase.startswith(name)]
    at = names[0] if names else 0
    within = min(done / total, 1.0) if total > 0 else 0.0
    return (at + within) / len(REINDEX_PHASES)
