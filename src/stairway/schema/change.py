"""A schema change as a value: what it is, not how it runs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stairway.schema.sqltext import Statement


class Phase(StrEnum):
    """When a change may run, judged by which releases of the product keep working after it."""

    EXPAND = "expand"  # old and new code both work after it
    CONTRACT = "contract"  # only new code works after it
    OFFLINE = "offline"  # needs the product stopped
    BACKGROUND = "background"  # batched data change while the product serves

    @property
    def online(self) -> bool:
        """Whether the previous release keeps working after this change."""
        return self in (Phase.EXPAND, Phase.BACKGROUND)


class ChangeKind(StrEnum):
    """What a change file is written in: SQL statements or a Python module."""

    SQL = "sql"
    PYTHON = "python"
    ALEMBIC = "alembic"  # an Alembic revision module, run through Alembic's own runtime


class HistoryTool(StrEnum):
    """The tool whose migration history a catalog's changes come from (docs/adopting.md)."""

    STAIRWAY = "stairway"  # schema/NNNN_name.sql|py, Stairway's own layout
    ALEMBIC = "alembic"
    FLYWAY = "flyway"
    GOLANG_MIGRATE = "golang-migrate"
    DBMATE = "dbmate"


@dataclass(frozen=True)
class Origin:
    """Where a change adopted from another tool's history comes from, and what that tool's own
    bookkeeping table says once it has run, so the tool keeps working after Stairway.

    ``heads_before`` and ``heads_after`` are the rows of the tool's version table before and after
    the change (Alembic's ``alembic_version`` holds one row per head; golang-migrate's
    ``schema_migrations`` one version)."""

    tool: HistoryTool
    ident: str  # the tool's own identifier: Alembic revision, Flyway version, file version
    table: str  # the tool's bookkeeping table
    heads_before: tuple[str, ...] = ()
    heads_after: tuple[str, ...] = ()
    script: str = ""  # the file name as the tool records it (Flyway's ``script`` column)
    description: str = ""  # the tool's description of it (Flyway's ``description`` column)
    checksum: int | None = None  # the tool's own checksum of it (Flyway's CRC32), when it keeps one


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
    kind: ChangeKind
    phase: Phase
    checksum: str
    transactional: bool = True
    statements: tuple[Statement, ...] = ()
    down: tuple[Statement, ...] | None = None
    loses: str | None = None
    has_python_down: bool = False
    description: str = ""  # the header's prose (SQL) or the docstring (Python): release notes
    batches: Batches | None = None  # a background change: run in batches while serving
    patch: int = 0  # K of a patch change N.K (docs/catalog.md, "Patch releases of an LTS line")
    origin: Origin | None = None  # a change of an adopted history (docs/adopting.md)
    opaque: str = ""  # why its effect cannot be read as SQL, so an expand label cannot be proven
    catches: bool = False  # its code catches a failed statement itself: DDL not pipelined
    dialect: str = "postgresql"  # whose SQL it is read as: an Alembic revision renders the site's

    @property
    def key(self) -> tuple[int, int]:
        """Where the change sorts: a patch N.K after N, before N+1."""
        return (self.number, self.patch)

    @property
    def code(self) -> str:
        """The change as messages name it: ``3``, or ``3.1`` for a patch change."""
        return change_code(self.number, self.patch)

    @property
    def label(self) -> str:
        """The change as lists show it: its file name without suffix, such as ``0003_add_email``."""
        return change_label(self.number, self.patch, self.name)

    @property
    def reversible(self) -> bool:
        """Whether the change can be undone: it declares a down direction, in SQL or in Python."""
        return self.down is not None or self.has_python_down

    @property
    def in_parts(self) -> bool:
        """Whether the change commits part-way, as an Alembic revision with an autocommit block
        does: not all-or-none, recorded with its last part."""
        return self.kind == ChangeKind.ALEMBIC and not self.transactional

    def describe(self) -> str:
        """The change and its phase, and whether it runs outside a transaction or in parts."""
        tx = ", in parts" if self.in_parts else ", outside a transaction"
        return f"{self.label}{self.ident_note} [{self.phase}{'' if self.transactional else tx}]"

    @property
    def ident_note(self) -> str:
        """`` (alembic v3.0.0.a)``: the adopted history's own identifier, unless the label
        already shows it; empty for Stairway's own changes."""
        if self.origin is None or self.origin.ident in self.name:
            return ""
        return f" ({self.origin.tool} {self.origin.ident})"


def change_code(number: int, patch: int) -> str:
    """``3`` for a mainline change, ``3.1`` for a patch change."""
    return f"{number}.{patch}" if patch else str(number)


def change_label(number: int, patch: int, name: str) -> str:
    """``0003_name`` for a mainline change, ``0003.1_name`` for a patch change."""
    return f"{number:04d}.{patch}_{name}" if patch else f"{number:04d}_{name}"
