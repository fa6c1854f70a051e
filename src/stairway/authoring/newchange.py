"""Writing the next numbered change file of a catalog, with the header docs/catalog.md describes.

The file is written under a temporary name and linked into place, so it either appears whole
or not at all, and an existing file of that name is never replaced.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stairway.catalog.loader import MANIFEST
from stairway.errors import CatalogError, UsageRefused
from stairway.schema.change import Phase
from stairway.schema.reader import parse_file_name

SLUG = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
MAX_NAME = 60
NEW_PHASES = (Phase.EXPAND, Phase.CONTRACT, Phase.OFFLINE)  # background changes are Python


@dataclass(frozen=True)
class NewChange:
    """The change file to write: its number, name, phase and text."""

    number: int
    name: str
    phase: Phase
    patch: int = 0  # a patch change of an LTS line: ``0003.1_name.sql`` follows change 3

    @property
    def file_name(self) -> str:
        """The file's name: ``0007_add_email.sql``, or ``0003.1_name.sql`` for a patch change."""
        suffix = f".{self.patch}" if self.patch else ""
        return f"{self.number:04d}{suffix}_{self.name}.sql"

    @property
    def code(self) -> str:
        """The change as messages name it: ``7``, or ``3.1`` for a patch change."""
        return f"{self.number}.{self.patch}" if self.patch else str(self.number)

    def text(self) -> str:
        """The file's opening lines: a title made from the name, then the phase header."""
        title = self.name.replace("_", " ").capitalize()
        return f"-- {title}.\n-- phase: {self.phase}\n\n"


def check_name(name: str) -> str:
    """``name`` if it is a safe slug for a file name; refused otherwise."""
    if len(name) <= MAX_NAME and SLUG.fullmatch(name):
        return name
    raise UsageRefused(
        f"{name!r} is not a safe change name",
        hint=f"use lowercase letters, digits and single underscores, starting with a letter, "
        f"at most {MAX_NAME} characters, e.g. add_user_email",
    )


def check_phase_name(phase: str) -> Phase:
    """The phase named ``phase`` (any case) that a new SQL change may have; refused otherwise.

    Raises:
        UsageRefused: ``phase`` is unknown, or ``background`` (a background change is Python).
    """
    for known in NEW_PHASES:
        if phase.lower() == known.value:
            return known
    raise UsageRefused(
        f"unknown phase {phase!r} for a new change",
        hint="use expand, contract or offline (a background change is written in Python, "
        "docs/catalog.md)",
    )


def next_number(schema: Path) -> int:
    """One above the highest change number in ``schema`` (1 when there is none)."""
    if not schema.is_dir():
        return 1
    files = [f for p in schema.iterdir() if (f := parse_file_name(p))]
    return max((f.number for f in files), default=0) + 1


def next_patch(schema: Path, of: int) -> int:
    """One above the highest patch of change ``of`` (1 when it has none); refused when change
    ``of`` is not shipped: a patch follows a change of the LTS line it fixes."""
    files = [f for p in schema.iterdir() if (f := parse_file_name(p))] if schema.is_dir() else []
    if not any(f.number == of and not f.patch for f in files):
        raise UsageRefused(
            f"change {of} is not in this catalog: a patch change follows a shipped change",
            hint="name the last change of the LTS line the fix is for, e.g. --patch-of 3",
        )
    return max((f.patch for f in files if f.number == of), default=0) + 1


def write_change(root: Path, name: str, phase: str, patch_of: int | None = None) -> NewChange:
    """Write the next change (or, with ``patch_of``, the next patch of that change) of the
    catalog at ``root``; what was written."""
    if not (root / MANIFEST).is_file():
        raise CatalogError(
            f"no {MANIFEST} here",
            path=str(root),
            hint="pass --catalog DIR, the directory holding the product's stairway.toml",
        )
    schema = root / "schema"
    slug, kind = check_name(name), check_phase_name(phase)
    if patch_of is None:
        change = NewChange(next_number(schema), slug, kind)
    else:
        change = NewChange(patch_of, slug, kind, next_patch(schema, patch_of))
    schema.mkdir(exist_ok=True)
    _create(schema / change.file_name, change.text())
    return change


def _create(path: Path, text: str) -> Path:
    """Write ``path`` whole, or refuse when it exists; never replace it."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".new-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        raise UsageRefused(
            f"{path} exists already", hint="it was left as it is; run the command again"
        ) from None
    finally:
        os.unlink(temporary)
    return path
