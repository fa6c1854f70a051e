"""How long-running work reports how far it has come: one protocol for every producer.

A producer (the schema migrator, a background migration, the object rewrite, an upgrade's steps,
an export, an import, a key rotation) calls ``progress(done, total, item)`` after each unit of
work: ``done`` units of ``total`` (None when the total is not known in advance), and the unit it
just reached — a change, a step, a job, a checkpoint, or None when a count says it all. The
command line turns the calls into lines or a bar; a library caller passes any matching callable.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

Item = TypeVar("Item", contravariant=True)


class Progress(Protocol[Item]):
    """Told after each unit of work: ``done`` of ``total`` units, and the unit itself."""

    def __call__(self, done: int, total: int | None, item: Item, /) -> None:
        """Report ``done`` units of ``total`` (None: unknown), the last one being ``item``."""


def silent(_done: int, _total: int | None, _item: object, /) -> None:
    """Progress that goes nowhere: for runs whose only output is their result (``--json``)."""
