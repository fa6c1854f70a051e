"""An object migration as a value: what it changes in documents of a type, not how it runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from stairway.versions import Version

Document = dict[str, object]
Handler = Callable[[Document], Document | None]


class Op(StrEnum):
    """What an object migration does to the documents it concerns.

    Attributes:
        RENAME: A key gets a new name in the same object.
        REMOVE: A key goes away.
        MOVE: A value goes to another path, possibly at another nesting level.
        TRANSFORM: A Python handler named in the catalog rewrites the document.
    """

    RENAME = "rename"  # a key gets a new name in the same object
    REMOVE = "remove"  # a key goes away
    MOVE = "move"  # a value goes to another path, possibly at another nesting level
    TRANSFORM = "transform"  # a Python handler rewrites the document


class Transition(StrEnum):
    """How an object gets from the old shape to the new one.

    Attributes:
        AUTOMATIC: Applied while parsing; nothing to review.
        SEMI_AUTOMATIC: Applied while parsing; an administrator should review the result.
        MANUAL: Never applied: an administrator must change the object.
        DEAD_END: Never applied: the feature is gone and the object must be reworked.
    """

    AUTOMATIC = "automatic"  # applied while parsing; nothing to review
    SEMI_AUTOMATIC = "semi-automatic"  # applied while parsing; an administrator should review
    MANUAL = "manual"  # never applied: an administrator must change the object
    DEAD_END = "dead-end"  # never applied: the feature is gone, the object must be reworked

    @property
    def applied(self) -> bool:
        """Whether Stairway applies such a migration itself while parsing."""
        return self in (Transition.AUTOMATIC, Transition.SEMI_AUTOMATIC)


class Severity(StrEnum):
    """How loudly ``verify`` reports the objects a migration concerns.

    Attributes:
        SUGGESTION: Reported as a suggestion.
        WARNING: Reported as a warning (the default).
        CRITICAL: Objects it leaves to an administrator's hands block the upgrade.
    """

    SUGGESTION = "suggestion"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class ObjectMigration:
    """One declared change to documents of ``type`` written by versions below ``since``.

    Attributes:
        number: Its position in the catalog, for a stable order and for messages.
        type: The object type it concerns.
        since: The first release that writes the new shape; objects written by an older
            release (or by an unknown one) are migrated.
        op: What it does.
        path: The key path it reads (and, but for a move or a rename, changes).
        to: A rename's new key name, or a move's destination path.
        transition: Whether it is applied while parsing or left to an administrator.
        severity: How ``verify`` reports objects it leaves to an administrator.
        subtype: Only objects whose subtype value is this one; None for every object.
        note: The catalog's explanation, shown in ``verify`` findings and release notes.
        handler_name: A transform's handler, ``module:function``.
        source: The catalog file that declares it.
        handler: The transform's handler, resolved when the catalog loads.
    """

    number: int  # position in the catalog, for stable ordering and messages
    type: str
    since: Version
    op: Op
    path: tuple[str, ...]
    to: tuple[str, ...] = ()
    transition: Transition = Transition.AUTOMATIC
    severity: Severity = Severity.WARNING
    subtype: str | None = None
    note: str = ""
    handler_name: str = ""
    source: str = field(default="", compare=False)  # the catalog file that declares it
    handler: Handler | None = field(default=None, compare=False, repr=False)

    def __hash__(self) -> int:
        # Kept by the dataclass (it never replaces an explicit __hash__): the number is unique
        # in a catalog, and hashing every field costs a microsecond per object in verify.
        return hash((self.number, self.type))

    @property
    def label(self) -> str:
        """``type#number``, naming the migration in messages."""
        return f"{self.type}#{self.number}"

    def describe(self) -> str:
        """The migration in one line: type, release, what it does, transition and severity."""
        path = ".".join(self.path)
        what = {
            Op.RENAME: f"rename {path} to {'.'.join(self.to)}",
            Op.MOVE: f"move {path} to {'.'.join(self.to)}",
            Op.REMOVE: f"remove {path}",
            Op.TRANSFORM: f"transform {path} with {self.handler_name}",
        }[self.op]
        subtype = f" ({self.subtype})" if self.subtype else ""
        return (
            f"{self.type}{subtype} since {self.since}: {what} [{self.transition}, {self.severity}]"
        )

    @property
    def target(self) -> tuple[str, ...]:
        """The path a rename or move writes to; empty for the other operations."""
        if self.op == Op.RENAME:
            return (*self.path[:-1], *self.to)
        return self.to if self.op == Op.MOVE else ()

    def concerns(self, type_: str, subtype: object, written_by: Version | None) -> bool:
        """Whether this migration is due for an object of ``type_`` written by ``written_by``.

        Args:
            type_: The object's type.
            subtype: The object's subtype value (anything for a migration without a subtype).
            written_by: The release that wrote the object; None when unknown, which makes
                every migration of the type due.
        """
        if type_ != self.type or (self.subtype is not None and subtype != self.subtype):
            return False
        return written_by is None or written_by < self.since


def reused_paths(
    migrations: Sequence[ObjectMigration],
) -> list[tuple[ObjectMigration, ObjectMigration]]:
    """Pairs (earlier, later) where ``later`` writes where ``earlier`` takes away.

    Reading an object whose writer is unknown runs every migration again; a path reused this way
    would then lose the new value to the old migration. Each pair is a catalog error.

    Args:
        migrations: The catalog's object migrations, in their running order.
    """
    found = []
    for index, later in enumerate(migrations):
        if not later.target:
            continue
        for earlier in migrations[:index]:
            if (
                earlier.type == later.type
                and earlier.op != Op.TRANSFORM
                and _overlap(earlier.path, later.target)
            ):
                found.append((earlier, later))
    return found


def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]
