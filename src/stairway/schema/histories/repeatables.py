"""Flyway's repeatable migrations (``R__<description>.sql``) read where they lie
(docs/adopting-sql.md).

A repeatable has no version and no place in the numbered order: Flyway applies it after every
versioned migration of a run whenever its checksum differs from the one its table last recorded
for that description. So it is read apart from the numbered changes, judged by the same phase
rules, and run by ``repeatable_runs.py``; editing one is a change to apply, never drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stairway.errors import CatalogError
from stairway.schema.change import Change, HistoryTool, Phase
from stairway.schema.earlier import Earlier
from stairway.schema.histories.spec import HistorySpec
from stairway.schema.histories.sql_layouts import flyway_checksum
from stairway.schema.histories.sql_names import Found, find_repeatables
from stairway.schema.phases import check_phase
from stairway.schema.reader import (
    ChangeFile,
    parse_phase,
    parse_statements,
    read_headers,
    read_text,
)
from stairway.schema.sqltext import Statement


@dataclass(frozen=True)
class Repeatable:
    """One repeatable migration: what Flyway records of it, its statements and its phase."""

    table: str  # Flyway's table that records it
    description: str  # Flyway's ``description`` column, and the key it is matched by
    script: str  # the file relative to the history's directory (the ``script`` column)
    path: Path
    checksum: int  # Flyway's CRC32 of the file
    phase: Phase
    statements: tuple[Statement, ...]

    def describe(self) -> str:
        """The repeatable and its phase, as lists show it."""
        return f"{self.script} (repeatable) [{self.phase}]"


def read(spec: HistorySpec, changes: Sequence[Change]) -> tuple[Repeatable, ...]:
    """The repeatables of a Flyway history in the order Flyway applies them (by description),
    judged on the schema ``changes`` leave; none for the other tools, which have no such thing.

    Raises:
        CatalogError: a misnamed file, a description used twice, a false expand label or a
            background one: the message names the file.
    """
    if spec.tool != HistoryTool.FLYWAY:
        return ()
    earlier = Earlier()
    for change in changes:
        earlier.add(change)
    return tuple(
        _repeatable(spec.table, found, earlier) for found in find_repeatables(spec.directory)
    )


def _repeatable(table: str, found: Found, earlier: Earlier) -> Repeatable:
    text = read_text(found.up).removeprefix("\ufeff")
    file = ChangeFile(0, found.name, found.up)
    header = read_headers(file, text).get("phase", ("offline", 0))
    phase = parse_phase(file, header)
    statements = tuple(parse_statements(file, text, 1))
    _refuse_phase(found, phase, header[1], statements, earlier)
    return Repeatable(
        table, found.description, found.script, found.up, flyway_checksum(text), phase, statements
    )


def _refuse_phase(
    found: Found, phase: Phase, line: int, statements: Sequence[Statement], earlier: Earlier
) -> None:
    if phase == Phase.BACKGROUND:
        raise CatalogError(
            "a repeatable migration runs at once, in one transaction: it cannot be background",
            path=str(found.up),
            line=line,
            hint="declare expand, contract or offline",
        )
    if phase != Phase.EXPAND:
        return
    blocking = [f for f in check_phase(statements, phase, earlier=earlier.shape) if f.blocking]
    if blocking:
        raise CatalogError(
            f"declared expand, but {blocking[0].message}",
            path=str(found.up),
            line=blocking[0].line,
            hint="declare it `-- phase: contract` or offline",
        )
