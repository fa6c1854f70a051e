"""The table locks a change holds until it commits, statement after statement.

PostgreSQL releases a table lock only when its transaction ends. In a change that runs as one
transaction, a brief ``ALTER TABLE`` early on keeps its ``ACCESS EXCLUSIVE`` lock while every
later statement runs: a backfill or an index build after it stops the product's queries for as
long as that statement takes, however carefully the statement itself was written. The ledger
remembers the strongest lock each statement took on each existing table, so the statement that
grows with the data can be told which earlier statement makes it stop the product.

The modes and their order are PostgreSQL's (explicit-locking, "Table-Level Lock Modes").

A ``COMMIT`` among a change's statements ends its transaction and releases every lock: the
statements after it run each on its own (autocommit) until a ``BEGIN`` opens a new transaction.
That is how Alembic renders an ``autocommit_block()`` in offline SQL, the way to run ``CREATE
INDEX CONCURRENTLY`` in a revision that otherwise runs in a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum


class LockMode(IntEnum):
    """PostgreSQL's table lock modes, weakest first."""

    ACCESS_SHARE = 1
    ROW_SHARE = 2
    ROW_EXCLUSIVE = 3
    SHARE_UPDATE_EXCLUSIVE = 4
    SHARE = 5
    SHARE_ROW_EXCLUSIVE = 6
    EXCLUSIVE = 7
    ACCESS_EXCLUSIVE = 8

    @property
    def blocks_writes(self) -> bool:
        """Whether it conflicts with ROW EXCLUSIVE, the lock every INSERT, UPDATE and DELETE
        takes; SHARE is the weakest mode that does."""
        return self >= LockMode.SHARE

    @property
    def blocks_reads(self) -> bool:
        """Whether it conflicts with ACCESS SHARE, the lock a plain SELECT takes."""
        return self is LockMode.ACCESS_EXCLUSIVE

    def describe(self) -> str:
        """The mode as PostgreSQL's documentation writes it, e.g. ``SHARE ROW EXCLUSIVE``."""
        return self.name.replace("_", " ")

    @classmethod
    def named(cls, words: str) -> LockMode | None:
        """The mode ``LOCK TABLE ... IN <words> MODE`` asks for, or None for an unknown one."""
        return cls.__members__.get("_".join(words.upper().split()))


@dataclass(frozen=True)
class Held:
    """A lock an earlier statement of the change took and keeps until the change commits."""

    table: str
    mode: LockMode
    statement: str  # a few words of the statement that took it
    line: int

    def stops(self) -> str:
        """What the lock stops: ``reads and writes`` or ``writes``."""
        return "reads and writes" if self.mode.blocks_reads else "writes"


@dataclass
class LockLedger:
    """The strongest lock held on each existing table so far in one transaction."""

    held: dict[str, Held] = field(default_factory=dict)

    def take(self, lock: Held) -> None:
        """Record ``lock``; a weaker lock on a table already held changes nothing."""
        before = self.held.get(lock.table)
        if before is None or lock.mode > before.mode:
            self.held[lock.table] = lock

    def stopping_the_product(self) -> list[Held]:
        """The held locks that stop the product's writes (or reads), earliest statement first."""
        stopping = [lock for lock in self.held.values() if lock.mode.blocks_writes]
        return sorted(stopping, key=lambda lock: lock.line)


def held_lock_message(statement: str, grows: str, held: list[Held]) -> str:
    """Why ``statement``, whose time grows with the data, stops the product under ``held``."""
    first = held[0]
    more = len(held) - 1
    others = f" (and {more} more table{'s' if more > 1 else ''})" if more else ""
    return (
        f"{statement} {grows} while {first.statement} (line {first.line}) still holds "
        f"{first.mode.describe()} on {first.table}{others}: a lock is kept until the change "
        f"commits, so {first.stops()} on {first.table} wait for as long as this statement "
        "takes; put the statement that grows with the data in a change of its own (a "
        "background change for a backfill)"
    )


_ENDS = frozenset({"COMMIT", "END", "ROLLBACK", "ABORT"})


def transaction_control(words: Sequence[str]) -> bool | None:
    """Whether a transaction is open after the statement of ``words`` (its keywords, upper
    case): True after ``BEGIN`` or ``START TRANSACTION``, False after ``COMMIT``, ``END``,
    ``ROLLBACK`` or ``ABORT``; None for a statement that controls no transaction.

    ``COMMIT AND CHAIN`` ends one transaction and opens the next at once: its locks go, but the
    statements after it are still in a transaction. ``ROLLBACK TO SAVEPOINT`` ends nothing.
    """
    if words[:1] == ["BEGIN"] or words[:2] == ["START", "TRANSACTION"]:
        return True
    if words[:1] and words[0] in _ENDS and "TO" not in words and "PREPARED" not in words:
        return "CHAIN" in words and "NO" not in words
    return None
