"""Sharing one export or import between machines and processes.

An import splits the file's chunks: chunk ``k`` goes to shard (k-1) mod N, so each machine of
``--shard i/N`` takes every N-th chunk and may run its own number of worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from stairway.errors import TransferError


@dataclass(frozen=True)
class Shard:
    """``--shard i/N``: this machine imports (or exports) part ``index`` (0-based) of ``of``."""

    index: int = 0
    of: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Read ``--shard i/N``; raises TransferError unless 1 <= i <= N."""
        number, _, count = text.partition("/")
        if not (number.isdigit() and count.isdigit() and 1 <= int(number) <= int(count)):
            raise TransferError(
                f"--shard {text!r} is not of the form i/N with 1 <= i <= N",
                hint="for example --shard 2/4 on the second of four machines",
            )
        return cls(int(number) - 1, int(count))

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.of}"


WHOLE = Shard()  # one machine does it all
