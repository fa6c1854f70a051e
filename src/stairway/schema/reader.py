"""Reading change files (``schema/NNNN_name.sql`` and ``schema/NNNN_name.py``) into Changes.

A SQL change starts with header comments: ``-- phase: expand`` (``offline`` when absent),
``-- transaction: none`` for statements PostgreSQL refuses inside a transaction, and
``-- loses: ...`` saying what its down direction loses. A line ``-- down:`` separates the
upgrade statements from their inverse.

A Python change defines ``upgrade(conn)``, optionally ``downgrade(conn)`` with ``LOSES``, and
``PHASE``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from stairway.errors import CatalogError
from stairway.schema.change import Batches, Change, ChangeKind, Phase
from stairway.schema.sqltext import SqlSyntaxError, Statement, checksum, split_statements, tokenize

T = TypeVar("T")
DIRECTIVES = ("phase", "transaction", "loses")
DOWN_MARKER = "-- down:"


@dataclass(frozen=True)
class ChangeFile:
    """A change file found by its name: the change's number, name and path, and its patch number."""

    number: int
    name: str
    path: Path
    patch: int = 0

    @property
    def key(self) -> tuple[int, int]:
        """Where the change sorts: a patch N.K after N, before N+1."""
        return (self.number, self.patch)


def parse_file_name(path: Path) -> ChangeFile | None:
    """``0007_backfill.sql`` -> (7, "backfill"); ``0003.1_fix.sql`` -> the patch 3.1 "fix";
    None for files that are not changes."""
    if path.suffix not in (".sql", ".py") or path.name.startswith(("_", ".")):
        return None
    digits, _, name = path.stem.partition("_")
    mainline, dot, patch = digits.partition(".")
    if not mainline.isdigit() or not name or (dot and not patch.isdigit()):
        raise CatalogError(
            "a change file must be named NNNN_name.sql or NNNN_name.py "
            "(a patch change of an LTS line NNNN.K_name)",
            path=str(path),
            hint="rename it, e.g. 0001_create_users.sql, or 0003.1_fix_email_index.sql for the "
            "first patch after change 3",
        )
    if dot and (int(patch) == 0 or int(mainline) == 0):
        raise CatalogError(
            f"patch number {digits} is not a patch of a change: patches are N.1, N.2 ... "
            "after a change N of 1 or more",
            path=str(path),
            hint="number the first patch after change N as N.1",
        )
    return ChangeFile(int(mainline), name, path, int(patch) if dot else 0)


def read_text(path: Path) -> str:
    """The text of a change file.

    Raises:
        CatalogError: the file cannot be read or is not UTF-8; says the line of the first bad byte.
    """
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise CatalogError(
            f"not valid UTF-8 (byte {err.start})",
            path=str(path),
            line=line,
            hint="save the file as UTF-8",
        ) from None
    except OSError as err:
        raise CatalogError(
            f"cannot read: {err.strerror}", path=str(path), hint="check the file's permissions"
        ) from None


def read_change(file: ChangeFile) -> Change:
    """The change ``file`` holds.

    Raises:
        CatalogError: the first problem found reading it.
    """
    change, problems = read_change_problems(file)
    if change is None:
        raise problems[0]
    return change


def read_change_problems(file: ChangeFile) -> tuple[Change | None, list[CatalogError]]:
    """The change, or None with every problem found reading it (``stairway check`` shows all)."""
    try:
        text = read_text(file.path)
        if file.path.suffix == ".py":
            return _read_python(file, text), []
        return _read_sql(file, text)
    except CatalogError as problem:
        return None, [problem]


def _read_sql(file: ChangeFile, text: str) -> tuple[Change | None, list[CatalogError]]:
    up_text, down_text, down_line = _split_down(file, text)
    headers = read_headers(file, up_text)
    problems: list[CatalogError] = []
    phase = _kept(problems, partial(parse_phase, file, headers.get("phase", ("offline", 0))))
    if phase == Phase.BACKGROUND:
        problems.append(_background_in_sql(file, headers["phase"][1]))
    transactional = _kept(
        problems, partial(parse_transactional, file, headers.get("transaction", ("", 0)))
    )
    up = _kept(problems, partial(parse_statements, file, up_text, 1))
    down = (
        _kept(problems, partial(parse_statements, file, down_text, down_line))
        if down_text is not None
        else None
    )
    if problems or phase is None or transactional is None or up is None:
        return None, problems
    return Change(
        number=file.number,
        patch=file.patch,
        name=file.name,
        path=file.path,
        kind=ChangeKind.SQL,
        phase=phase,
        checksum=checksum(text),
        transactional=transactional,
        statements=tuple(up),
        down=tuple(down) if down is not None else None,
        loses=headers["loses"][0] if "loses" in headers else None,
        description=prose(up_text),
    ), []


def _kept(problems: list[CatalogError], read: Callable[[], T]) -> T | None:
    """``read()``, or None with its error added to ``problems``."""
    try:
        return read()
    except CatalogError as problem:
        problems.append(problem)
        return None


def _background_in_sql(file: ChangeFile, line: int) -> CatalogError:
    return CatalogError(
        "a background change is written in Python, batch by batch",
        path=str(file.path),
        line=line,
        hint='write it as NNNN_name.py with PHASE = "background", TABLE, KEY and '
        "upgrade_batch(conn, low, high)",
    )


def prose(text: str) -> str:
    """The header comment lines that are not ``key: value`` directives, joined."""
    words = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("--"):
            break
        key, sep, _ = line[2:].partition(":")
        if line and not (sep and key.strip().lower() in DIRECTIVES):
            words.append(line[2:].strip())
    return " ".join(w for w in words if w)


def _split_down(file: ChangeFile, text: str) -> tuple[str, str | None, int]:
    """Cut at a ``-- down:`` line that is a comment of its own, not text inside a body."""
    offset = 0
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if line.strip().lower() == DOWN_MARKER and not _inside_token(file, text, offset):
            return text[:offset], text[offset + len(line) :], number + 1
        offset += len(line)
    return text, None, 0


def _inside_token(file: ChangeFile, text: str, offset: int) -> bool:
    try:
        tokens = tokenize(text)
    except SqlSyntaxError as err:
        raise CatalogError(
            f"cannot read the SQL: {err}",
            path=str(file.path),
            line=err.line,
            hint="check for an unterminated string, quoted name or dollar-quoted body",
        ) from None
    return any(t.start < offset <= t.end for t in tokens)


def read_headers(file: ChangeFile, text: str) -> dict[str, tuple[str, int]]:
    """``-- key: value`` comment lines before the first statement."""
    found: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("--"):
            break
        key, sep, value = line[2:].partition(":")
        if sep and key.strip().lower() in DIRECTIVES:
            found[key.strip().lower()] = (value.strip(), number)
    return found


def parse_phase(file: ChangeFile, value: tuple[str, int]) -> Phase:
    """The phase a header (value, line) names; CatalogError for an unknown one."""
    try:
        return Phase(value[0].lower())
    except ValueError:
        known = ", ".join(p.value for p in Phase)
        raise CatalogError(
            f"unknown phase {value[0]!r}",
            path=str(file.path),
            line=value[1],
            hint=f"use one of: {known}",
        ) from None


def parse_transactional(file: ChangeFile, value: tuple[str, int]) -> bool:
    """Whether a ``transaction`` header (value, line) lets the change run in a transaction."""
    if value[0].lower() in ("", "required"):
        return True
    if value[0].lower() == "none":
        return False
    raise CatalogError(
        f"unknown transaction mode {value[0]!r}",
        path=str(file.path),
        line=value[1],
        hint="write `-- transaction: none` for statements that cannot run in a transaction",
    )


def parse_statements(file: ChangeFile, text: str, first_line: int) -> list[Statement]:
    """The statements of ``text``, which starts on ``first_line`` of the file; CatalogError,
    with the file line, for SQL the tokenizer cannot read."""
    try:
        return split_statements(text, first_line=first_line)
    except SqlSyntaxError as err:
        raise CatalogError(
            f"cannot read the SQL: {err}",
            path=str(file.path),
            line=first_line + err.line - 1,
            hint="check for an unterminated string, quoted name or dollar-quoted body",
        ) from None


def _read_python(file: ChangeFile, text: str) -> Change:
    """Read a Python change without running it: its names come from the syntax tree."""
    try:
        tree = ast.parse(text, filename=str(file.path))
    except SyntaxError as err:
        raise CatalogError(
            f"Python syntax error: {err.msg}",
            path=str(file.path),
            line=err.lineno,
            hint="fix the syntax; the change was not run",
        ) from None
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    constants = _constants(tree)
    phase = parse_phase(file, (str(constants.get("PHASE", "offline")), 1))
    if phase == Phase.BACKGROUND:
        return _read_background(file, text, tree, functions, constants)
    if "upgrade" not in functions:
        raise CatalogError(
            "a Python change must define upgrade(conn)",
            path=str(file.path),
            hint="add `def upgrade(conn): ...` taking a SQLAlchemy Connection",
        )
    has_down = "downgrade" in functions
    if has_down and "LOSES" not in constants:
        raise CatalogError(
            "downgrade() is defined but LOSES is not",
            path=str(file.path),
            hint='say what the down direction loses: LOSES = "..." (or "nothing")',
        )
    return Change(
        number=file.number,
        patch=file.patch,
        name=file.name,
        path=file.path,
        kind=ChangeKind.PYTHON,
        phase=phase,
        checksum=checksum(text),
        has_python_down=has_down,
        loses=str(constants["LOSES"]) if "LOSES" in constants else None,
        description=" ".join((ast.get_docstring(tree) or "").split()),
    )


def _read_background(
    file: ChangeFile,
    text: str,
    tree: ast.Module,
    functions: set[str],
    constants: dict[str, object],
) -> Change:
    """A background change: ``upgrade_batch(conn, low, high)`` over ``TABLE``'s ``KEY``."""
    table, key, size = constants.get("TABLE"), constants.get("KEY"), constants.get("BATCH", 1000)
    if "upgrade_batch" not in functions or not isinstance(table, str) or not isinstance(key, str):
        raise CatalogError(
            "a background change defines upgrade_batch(conn, low, high), TABLE and KEY",
            path=str(file.path),
            hint='e.g. TABLE = "users", KEY = "id" (an integer key) and BATCH = 1000; '
            "upgrade_batch changes the rows with low <= KEY < high and nothing else",
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise CatalogError(
            f"BATCH must be a positive integer, not {size!r}",
            path=str(file.path),
            hint="the number of keys one batch covers, e.g. BATCH = 1000",
        )
    return Change(
        number=file.number,
        patch=file.patch,
        name=file.name,
        path=file.path,
        kind=ChangeKind.PYTHON,
        phase=Phase.BACKGROUND,
        checksum=checksum(text),
        description=" ".join((ast.get_docstring(tree) or "").split()),
        batches=Batches(table, key, size),
    )


def _constants(tree: ast.Module) -> dict[str, object]:
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found
