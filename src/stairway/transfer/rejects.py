"""The reject file: every record an import could not take, with its line and the reason.

Worker processes share the file (each entry is one appended write) and one counter, so
``--max-errors`` holds for the whole import on this machine, not per process.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import orjson

from stairway.errors import TransferError


def shared_counter() -> Synchronized[int]:
    """A count of rejected records shared with forked worker processes."""
    return multiprocessing.get_context("fork").Value("q", 0)


class Rejects:
    """The reject file of one import, appended to by every worker, with a shared count."""

    def __init__(self, path: Path, limit: int, counter: Synchronized[int] | None = None) -> None:
        self.path, self.limit = path, limit
        self.counter = counter if counter is not None else shared_counter()
        self._out = path.open("ab", buffering=0)

    @property
    def count(self) -> int:
        """Records rejected so far by every process of the import."""
        return int(self.counter.value)

    def add(self, number: int, reason: str, raw: bytes) -> None:
        """Write the record at line ``number`` and why it was refused to the reject file.

        Raises TransferError once the import's rejects exceed ``--max-errors``.
        """
        entry = {"line": number, "reason": reason, "record": raw[:2000].decode("utf-8", "replace")}
        self._out.write(orjson.dumps(entry) + b"\n")  # unbuffered: one write per entry
        with self.counter.get_lock():
            self.counter.value += 1
            count = self.counter.value
        if count > self.limit:
            raise TransferError(
                f"{count} records rejected, more than --max-errors {self.limit} "
                f"(the last: line {number}: {reason})",
                hint=f"see {self.path}; chunks before it are imported, and the import resumes",
            )

    def close(self) -> None:
        """Close the reject file."""
        self._out.close()
