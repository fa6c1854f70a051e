"""A schema change as a value: what it is, not how it runs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stairway.schema.sqltext import Statement


class Phase(StrEnum):
    EXPAND = "expand"  # old and new code both work after it
    CONTRACT = "contract"  # only new code works after it
    OFFLINE = "offline"  # needs the product stopped
    BACKGROUND = "background"  # batched data change while the product serves

    @property
    def online(self) -> bool:
        """Whether the previous release keeps working after this change."""
        return self in (Phase.EXPAND, Phase.BACKGROUND)


class Kind(StrEnum):
    SQL = "sql"
    PYTHON = "python"


@dataclass(frozen=True)
class Batches:
    """A background change's key range: ``upgrade_batch(conn, low, high)`` is called for
    consecutive ranges ``low <= key < high`` of ``table``'s integer ``key``."""

    table: str
    key: str
    size: int = 1000


@dataclass(frozen=True)
class Change:
    """One numbered change of the catalog. ``statements`` and ``down`` are empty for Python."""

    number: int
    name: str
    path: Path
    kind: Kind
    phase: Phase
    checksum: str
    transactional: bool = True
    statements: tuple[Statement, ...] = ()
    down: tuple[Statement, ...] | None = None
    loses: str | None = None
    has_python_down: bool = False
    description: str = ""  # the header's prose (SQL) or the docstring (Python): release notes
    batches: Batches | None = None  # a background change: run in batches while serving

    @property
    def label(self) -> str:
        return f"{self.number:04d}_{self.name}"

    @property
    def reversible(self) -> bool:
        return self.down is not None or self.has_python_down

    def describe(self) -> str:
        tx = "" if self.transactional else ", outside a transaction"
        return f"{self.label} [{self.phase}{tx}]"
