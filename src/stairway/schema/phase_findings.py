"""What the phase rules report: findings, how much each weighs in each phase, and their words.

Every message says what the statement does, why that breaks (or stops) the running release,
and what to write instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from stairway.schema.change import Phase


@dataclass(frozen=True)
class PhaseFinding:
    """What one statement does that its change's phase does not allow (or should know about)."""

    rule: str
    blocking: bool
    line: int
    message: str

    def describe(self) -> str:
        """The finding as one line: its line, ``error`` or ``warning``, its rule and its message."""
        level = "error" if self.blocking else "warning"
        return f"line {self.line}: {level} [{self.rule}] {self.message}"


class Weight(Enum):
    """How a finding counts in each phase."""

    # Breaks the running release: an error for expand; what contract and offline are for.
    CONTRADICTS = "contradicts"
    # Stops the product's queries for a time that grows with a table: an error for expand, a
    # warning in every other phase (only offline expects the product to be stopped).
    STALLS = "stalls"
    # Worth knowing in every phase.
    WARNS = "warns"
    # Worth knowing in an expand change only: another phase is where the statement belongs.
    ADVISES = "advises"


@dataclass(frozen=True)
class Hit:
    """A rule's finding on one statement, before its phase decides whether it is an error."""

    rule: str
    weight: Weight
    message: str
    line: int | None = None  # set for a statement inside a DO block; else the statement's

    def finding(self, phase: Phase, line: int) -> PhaseFinding | None:
        """The finding in a change labelled ``phase``; None when the phase makes it moot."""
        expand = phase == Phase.EXPAND
        if not expand and self.weight in (Weight.CONTRADICTS, Weight.ADVISES):
            return None
        blocking = expand and self.weight in (Weight.CONTRADICTS, Weight.STALLS)
        return PhaseFinding(self.rule, blocking, self.line or line, self.message)


def drop_hit(what: str) -> Hit:
    """A DROP of something the running release may use."""
    return Hit(
        "drop",
        Weight.CONTRADICTS,
        f"{what} removes something the running release may still use; stop using it in the "
        "code first, then drop it in a contract change",
    )


def rename_hit(what: str) -> Hit:
    """A rename of something the running release uses by its old name."""
    return Hit(
        "rename",
        Weight.CONTRADICTS,
        f"{what} renames something the running release still uses by its old name; add the "
        "new name alongside the old one (a new column kept in sync, or a view), move the code "
        "to it, and remove the old name in a contract change",
    )


def index_hit(what: str, table: str) -> Hit:
    """An index build that blocks writes to an existing table."""
    return Hit(
        "index-without-concurrently",
        Weight.STALLS,
        f"{what} without CONCURRENTLY holds a SHARE lock on {table}, blocking writes for "
        "the whole build; use CREATE INDEX CONCURRENTLY (or REINDEX CONCURRENTLY), alone in a "
        "change marked `-- transaction: none`",
    )


def concurrently_in_transaction_hit(what: str) -> Hit:
    """A CONCURRENTLY statement that would run in a transaction."""
    return Hit(
        "concurrently-in-transaction",
        Weight.STALLS,
        f"{what} cannot run inside a transaction block, and it would run in one (this change's, "
        "or its DO block's): PostgreSQL refuses the statement; put it alone in a change marked "
        "`-- transaction: none`",
    )


def drop_index_hit(names: str) -> Hit:
    """A DROP INDEX that takes ACCESS EXCLUSIVE, briefly."""
    return Hit(
        "drop-index-without-concurrently",
        Weight.WARNS,
        f"DROP INDEX {names} without CONCURRENTLY takes ACCESS EXCLUSIVE on the index's table: "
        "briefly, but it waits for every query using the table and every new query waits "
        "behind it; use DROP INDEX CONCURRENTLY, alone in a change marked "
        "`-- transaction: none`",
    )


def rewrite_hit(what: str, instead: str) -> Hit:
    """A statement that rewrites a table under ACCESS EXCLUSIVE."""
    return Hit(
        "table-rewrite",
        Weight.STALLS,
        f"{what} rewrites the table and its indexes under ACCESS EXCLUSIVE, blocking reads and "
        f"writes until it ends; {instead}",
    )


def unreadable_hit(what: str) -> Hit:
    """SQL that cannot be read before it runs."""
    return Hit(
        "unreadable-sql",
        Weight.CONTRADICTS,
        f"{what} runs SQL that cannot be read before it runs, so nothing shows that the "
        "change leaves the running release working; write the statements out (EXECUTE a "
        "string literal at most), or label the change contract or offline",
    )


def update_hit(table: str, columns: str) -> Hit:
    """An UPDATE of columns the running release uses."""
    return Hit(
        "data-change",
        Weight.CONTRADICTS,
        f"UPDATE {table} SET {columns} changes rows the running release reads and writes, "
        "under it, in columns it already uses; change existing data in a background change "
        "(or a contract change once no running code depends on the old values)",
    )


def delete_hit(table: str) -> Hit:
    """A DELETE of rows the running release may read."""
    return Hit(
        "data-change",
        Weight.CONTRADICTS,
        f"DELETE FROM {table} removes rows the running release may still read; delete them in "
        "batches in a background change, or in a contract change once no code needs them",
    )


def backfill_hit(table: str, columns: str) -> Hit:
    """An UPDATE that fills only columns the same change added."""
    return Hit(
        "backfill",
        Weight.ADVISES,
        f"UPDATE {table} SET {columns} fills columns this change added, but locks every row it "
        "changes until the change commits, and on a large table runs for long; backfill in "
        "batches in a background change",
    )


def null_fill_hit(table: str, columns: str) -> Hit:
    """An UPDATE that sets its columns only on rows where they are NULL."""
    return Hit(
        "backfill",
        Weight.ADVISES,
        f"UPDATE {table} SET {columns} only fills values that are NULL, leaving every value the "
        "running release wrote as it was, but locks every row it changes until its transaction "
        "commits, and on a large table runs for long; backfill in batches in a background change",
    )


def truncate_hit(what: str) -> Hit:
    """A TRUNCATE of a table the running release reads."""
    return Hit(
        "truncate",
        Weight.CONTRADICTS,
        f"{what} deletes every row the running release may still read; remove data in a "
        "contract change once no code needs it",
    )


def delete_all_hit(table: str) -> Hit:
    """A DELETE without WHERE."""
    return Hit(
        "delete-without-where",
        Weight.CONTRADICTS,
        f"DELETE FROM {table} without WHERE deletes every row the running release may still "
        "read; delete only the rows meant, with a WHERE clause, in a background change, or "
        "remove the data in a contract change",
    )


def type_hit(column: str, table: str) -> Hit:
    """A column type change."""
    return Hit(
        "type-change",
        Weight.CONTRADICTS,
        f"changing the type of {table}.{column} changes what the running release reads and "
        "writes; add a column of the new type, backfill it in a background change, move the "
        "code to it, then drop the old column in a contract change",
    )


def set_not_null_hit(column: str, table: str) -> Hit:
    """SET NOT NULL on an existing column."""
    return Hit(
        "set-not-null",
        Weight.CONTRADICTS,
        f"SET NOT NULL on {table}.{column} makes inserts from the running release fail when they "
        "omit the column, and scans the table under ACCESS EXCLUSIVE; backfill, then SET NOT "
        "NULL in a contract change (a validated CHECK (column IS NOT NULL) lets PostgreSQL 12+ "
        "skip the scan)",
    )


def drop_default_hit(column: str, table: str) -> Hit:
    """DROP DEFAULT on a column the running release may omit."""
    return Hit(
        "drop",
        Weight.CONTRADICTS,
        f"DROP DEFAULT on {table}.{column} changes what the running release gets when it omits "
        "the column (NULL, or a failed insert); drop the default in a contract change",
    )


def not_null_hit(column: str, table: str) -> Hit:
    """ADD COLUMN ... NOT NULL without a default."""
    return Hit(
        "not-null-without-default",
        Weight.CONTRADICTS,
        f"ADD COLUMN {column} NOT NULL without a DEFAULT fails on a non-empty {table} and breaks "
        "inserts from the running release, which does not know the column; add the column "
        "nullable, backfill, then SET NOT NULL in a contract change (or give it a DEFAULT)",
    )


def inline_constraint_hit(column: str, table: str) -> Hit:
    """ADD COLUMN with an inline constraint."""
    return Hit(
        "constraint-without-not-valid",
        Weight.CONTRADICTS,
        f"ADD COLUMN {column} with an inline constraint creates the constraint under the ACCESS "
        f"EXCLUSIVE lock of ADD COLUMN on {table}; add the column alone, then add the "
        "constraint in a later change (NOT VALID and VALIDATE, or USING INDEX for a unique one)",
    )


NOT_VALID = (
    "{what} on {table} checks every existing row while holding a lock that blocks writes "
    "(ACCESS EXCLUSIVE for a check, SHARE ROW EXCLUSIVE on both tables for a foreign key); "
    "add the constraint NOT VALID and VALIDATE it in a later change"
)
UNIQUE = (
    "{what} on {table} builds a unique index under ACCESS EXCLUSIVE, blocking reads and "
    "writes; a UNIQUE or PRIMARY KEY constraint cannot be NOT VALID: build the index first with "
    "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX (or PRIMARY "
    "KEY USING INDEX)"
)
EXCLUDE = (
    "{what} on {table} builds an exclusion index under ACCESS EXCLUSIVE, and an exclusion "
    "constraint can be neither NOT VALID nor built from an existing index; put it in an "
    "offline change"
)


def constraint_hit(template: str, what: str, table: str) -> Hit:
    """A constraint added with a long lock, its message from ``template``."""
    message = template.format(what=what, table=table)
    return Hit("constraint-without-not-valid", Weight.CONTRADICTS, message)
