"""What the schema engine reads of a product's catalog: its changes and the releases that carry
them. ``stairway.catalog.Catalog`` is one; the engine depends on this shape, not on the loader."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from stairway.schema.change import Change
from stairway.schema.histories.repeatables import Repeatable
from stairway.versions import Release


class ChangeSource(Protocol):
    """A product's schema changes in order, and which release ships or carries each."""

    @property
    def product(self) -> str:
        """The product the changes belong to."""

    @property
    def releases(self) -> Sequence[Release]:
        """Every release, oldest first."""

    @property
    def changes(self) -> Sequence[Change]:
        """Every change, mainline and patch, in the order they apply."""

    @property
    def repeatables(self) -> Sequence[Repeatable]:
        """Flyway repeatable migrations, run after the versioned ones when they changed; none
        for other histories."""

    def changes_between(self, low: int, high: int) -> list[Change]:
        """Mainline changes numbered low+1 .. high (no patch changes)."""
        ...

    def carriers(self, key: tuple[int, int]) -> list[Release]:
        """The releases that carry patch change ``key``, oldest first."""
        ...

    def release_of(self, number: int) -> Release | None:
        """The first release that ships change ``number``."""
        ...
