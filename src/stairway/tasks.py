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
