"""Reading a Flyway, golang-migrate or dbmate history where it lies (docs/adopting-sql.md): each
migration, found by its file name (``sql_names.py``), becomes a numbered SQL change with its
``Origin``: the version the tool records, and what the tool's table says once it has run.

The files are the product's and are not edited for Stairway. A phase comes from ``[history]
phases`` by version, or from a ``-- phase:`` header when the vendor wrote one; otherwise the
migration is offline. What a down direction loses is read from its statements (``dataloss.py``)
instead of asked for in a ``-- loses:`` header.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stairway.errors import CatalogError
from stairway.schema.change import Change, ChangeKind, HistoryTool, Origin, Phase
from stairway.schema.dataloss import loses_data
from stairway.schema.earlier import Earlier
from stairway.schema.histories.spec import HistorySpec
from stairway.schema.histories.sql_names import Found, find
from stairway.schema.phases import check_phase
from stairway.schema.reader import (
    ChangeFile,
    parse_phase,
    parse_statements,
    parse_transactional,
    prose,
    read_headers,
    read_text,
)
from stairway.schema.sqltext import Statement, checksum

_DBMATE_MARKER = re.compile(r"^--\s*migrate:(?P<direction>up|down)(?P<options>(?:\s+\S+)*)\s*$")
_CONTROL = re.compile(r"^(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK)\b", re.IGNORECASE)
_OPENS = re.compile(r"^(BEGIN|START\s+TRANSACTION)\b", re.IGNORECASE)
_CLOSES = re.compile(r"^(COMMIT|END)\b", re.IGNORECASE)


@dataclass(frozen=True)
class _Section:
    """One direction's SQL: its text, the file line it starts on, and whether it may run in a
    transaction (dbmate's ``transaction:false``)."""

    path: Path
    text: str
    first_line: int
    transactional: bool = True


def read(spec: HistorySpec) -> tuple[Change, ...]:
    """The migrations of the history in ``spec.directory``, numbered 1, 2, 3 ... in the order
    the tool applies them.

    Raises:
        CatalogError: a misnamed file, a duplicate version, a gap, a down without its up, a
            dbmate file without ``-- migrate:up``: the message names the file.
    """
    found = find(spec.tool, spec.directory)
    previous = [None, *(f.ident for f in found)]
    earlier = Earlier()  # an expand label is judged on the schema the earlier files left
    for number, migration in enumerate(found, start=1):
        earlier.add(_change(spec, number, migration, previous[number - 1], earlier))
    return earlier.changes


def flyway_checksum(text: str) -> int:
    """Flyway's checksum of a migration's text: CRC32 over the UTF-8 bytes of each line without
    its line ending (as Java's ``BufferedReader.readLine`` splits them), a leading BOM dropped,
    stored as a signed 32-bit integer. Line endings therefore do not count."""
    crc = 0
    for line in re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff")):
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _change(
    spec: HistorySpec, number: int, found: Found, previous: str | None, earlier: Earlier
) -> Change:
    file = ChangeFile(number, found.name, found.up)
    whole, up, down = _sections(spec.tool, found)
    headers = read_headers(file, whole if spec.tool == HistoryTool.DBMATE else up.text)
    transaction = parse_transactional(file, headers.get("transaction", ("", 0)))
    statements = _statements(number, found, up)
    down_statements = _statements(number, found, down) if down else ()
    phase = _phase(spec, found, file, headers.get("phase", ("offline", 0)))
    transactional = transaction and up.transactional
    _refuse_false_expand(found, phase, statements, transactional, earlier)
    return Change(
        number=number,
        name=found.name,
        path=found.up,
        kind=ChangeKind.SQL,
        phase=phase,
        checksum=checksum(whole),
        transactional=transaction and up.transactional,
        statements=statements,
        down=down_statements or None,  # an empty down undoes nothing: not a way back
        loses=headers["loses"][0] if "loses" in headers else _loses(down_statements),
        description=prose(up.text) or found.description,
        origin=_origin(spec, found, previous, whole if spec.tool == HistoryTool.FLYWAY else ""),
    )


def _origin(spec: HistorySpec, found: Found, previous: str | None, up_text: str) -> Origin:
    golang = spec.tool == HistoryTool.GOLANG_MIGRATE
    return Origin(
        tool=spec.tool,
        ident=found.ident,
        table=spec.table,
        heads_before=(previous,) if golang and previous else (),
        heads_after=(found.ident,) if golang else (),
        script=found.script,
        description=found.description,
        checksum=flyway_checksum(up_text) if spec.tool == HistoryTool.FLYWAY else None,
    )


def _sections(tool: HistoryTool, found: Found) -> tuple[str, _Section, _Section | None]:
    """The text checksummed (the up file and the down file, or dbmate's one file) and the
    up and down sections."""
    text = read_text(found.up).removeprefix("\ufeff")
    if tool == HistoryTool.DBMATE:
        up, down = _dbmate_sections(found.up, text)
        return text, up, down
    if found.down is None:
        return text, _Section(found.up, text, 1), None
    down_text = read_text(found.down).removeprefix("\ufeff")
    up_section, down_section = _Section(found.up, text, 1), _Section(found.down, down_text, 1)
    if tool == HistoryTool.FLYWAY:
        return text, up_section, down_section  # Flyway's checksum is the V file's alone
    return text + "\n" + down_text, up_section, down_section


def _dbmate_sections(path: Path, text: str) -> tuple[_Section, _Section | None]:
    lines = text.splitlines(keepends=True)
    marks = {"up": [], "down": []}  # type: dict[str, list[tuple[int, re.Match[str]]]]
    for index, line in enumerate(lines):
        if match := _DBMATE_MARKER.match(line.strip()):
            marks[match["direction"]].append((index, match))
    _refuse_dbmate_markers(path, lines, marks)
    up_at, up = marks["up"][0]
    down_at, down = marks["down"][0] if marks["down"] else (len(lines), None)
    up_section = _dbmate_section(path, lines[up_at + 1 : down_at], up_at, up)
    return up_section, _dbmate_section(path, lines[down_at + 1 :], down_at, down) if down else None


def _dbmate_section(path: Path, lines: list[str], at: int, marker: re.Match[str]) -> _Section:
    options = dict(o.partition(":")[::2] for o in marker["options"].split())
    transactional = options.get("transaction", "true").lower() != "false"
    return _Section(path, "".join(lines), at + 2, transactional)


def _refuse_dbmate_markers(
    path: Path, lines: list[str], marks: dict[str, list[tuple[int, re.Match[str]]]]
) -> None:
    if not marks["up"]:
        raise CatalogError(
            f"{path.name} has no `-- migrate:up` line",
            path=str(path),
            hint="dbmate reads a migration's up direction after a line `-- migrate:up` (and its "
            "down after `-- migrate:down`); dbmate itself refuses this file",
        )
    for direction, found in marks.items():
        if len(found) > 1:
            raise CatalogError(
                f"`-- migrate:{direction}` appears twice",
                path=str(path),
                line=found[1][0] + 1,
                hint="a dbmate migration has one up section and at most one down section",
            )
    up_at = marks["up"][0][0]
    if marks["down"] and marks["down"][0][0] < up_at:
        raise CatalogError(
            "`-- migrate:down` comes before `-- migrate:up`",
            path=str(path),
            line=marks["down"][0][0] + 1,
            hint="write the up section first, as dbmate requires",
        )
    before = [i for i, line in enumerate(lines[:up_at]) if line.strip() and not _comment(line)]
    if before:
        raise CatalogError(
            "SQL before `-- migrate:up`, which dbmate would not run",
            path=str(path),
            line=before[0] + 1,
            hint="move it into the up section",
        )


def _comment(line: str) -> bool:
    return line.strip().startswith("--")


def _statements(number: int, found: Found, section: _Section) -> tuple[Statement, ...]:
    file = ChangeFile(number, found.name, section.path)
    return _unwrapped(section.path, parse_statements(file, section.text, section.first_line))


def _unwrapped(path: Path, statements: Sequence[Statement]) -> tuple[Statement, ...]:
    """The statements without a ``BEGIN`` ... ``COMMIT`` wrapping the whole file: Stairway's
    own transaction, which also writes the tool's table, takes its place. Transaction control
    anywhere else would end that transaction half-way, and is refused."""
    body = list(statements)
    if len(body) >= 2 and _OPENS.match(body[0].text) and _CLOSES.match(body[-1].text):
        body = body[1:-1]
    for statement in body:
        if _CONTROL.match(statement.text):
            raise CatalogError(
                f"the migration controls its own transaction ({statement.describe()})",
                path=str(path),
                line=statement.line,
                hint="Stairway runs each migration in one transaction with the tool's table; a "
                "file wrapped whole in BEGIN ... COMMIT is read without them, but a COMMIT or "
                "ROLLBACK between statements cannot be kept",
            )
    return tuple(body)


def _phase(spec: HistorySpec, found: Found, file: ChangeFile, header: tuple[str, int]) -> Phase:
    if found.ident in spec.phases:
        return spec.phases[found.ident]
    phase = parse_phase(file, header)
    if phase == Phase.BACKGROUND:
        raise CatalogError(
            "a SQL migration runs at once, in one transaction: it cannot be a background change",
            path=str(found.up),
            line=header[1],
            hint="declare expand, contract or offline",
        )
    return phase


def _refuse_false_expand(
    found: Found,
    phase: Phase,
    statements: Sequence[Statement],
    transactional: bool,
    earlier: Earlier,
) -> None:
    findings = check_phase(statements, phase, transactional=transactional, earlier=earlier.shape)
    blocking = [f for f in findings if f.blocking]
    if phase == Phase.EXPAND and blocking:
        raise CatalogError(
            f"declared expand, but {blocking[0].message}",
            path=str(found.up),
            line=blocking[0].line,
            hint=f"declare version {found.ident} contract or offline in [history] phases",
        )


def _loses(down: Sequence[Statement]) -> str | None:
    """What the down direction loses, read from its statements (the file cannot say)."""
    losing = loses_data(down)
    return f"its down direction runs {losing.describe()}" if losing else None
