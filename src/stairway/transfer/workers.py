"""Running the parts of an export or import in forked worker processes.

Each task gets a ``tick`` to report objects done (summed into one progress bar by the parent)
and an ``alive`` check: a worker whose parent was killed stops at its next chunk instead of
running on as an orphan. The first failure stops the other workers; every chunk is written
whole or not at all, so a stopped worker leaves only whole chunks behind, and running the same
command again resumes.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from stairway.errors import StairwayError, TransferError

T = TypeVar("T")
Tick = Callable[[int], None]  # objects done since the last tick
Alive = Callable[[], bool]
Task = Callable[[Tick, Alive], T]


def run_all(tasks: list[Task[T]], progress: Tick | None, what: str) -> list[T]:
    """Run every task, in this process when there is one, else one forked process each."""
    tick = progress or (lambda _n: None)
    if len(tasks) == 1:
        return [tasks[0](tick, lambda: True)]
    context = multiprocessing.get_context("fork")
    events: Any = context.Queue()
    processes = [
        context.Process(target=_child, args=(task, number, events, os.getpid()), daemon=True)
        for number, task in enumerate(tasks)
    ]
    for process in processes:
        process.start()
    try:
        return _collect(processes, events, tick, what)
    finally:
        for process in processes:
            process.terminate()
            process.join()


def _child(task: Task[Any], number: int, events: Any, parent: int) -> None:
    try:
        tick: Tick = lambda n: events.put(("progress", number, n))  # noqa: E731
        events.put(("done", number, task(tick, lambda: os.getppid() == parent)))
    except StairwayError as err:
        events.put(("error", number, (err.message, err.hint)))
    except BaseException:  # a worker's crash must reach the parent, whatever it is
        events.put(("error", number, (traceback.format_exc(), "")))


def _collect(processes: list[Any], events: Any, tick: Tick, what: str) -> list[Any]:
    results: dict[int, Any] = {}
    while len(results) < len(processes):
        try:
            kind, number, value = events.get(timeout=0.5)
        except queue.Empty:
            for index, process in enumerate(processes):
                if index not in results and process.exitcode not in (None, 0):
                    raise TransferError(
                        f"{what} worker {index + 1} died (exit {process.exitcode})",
                        hint="run the same command again: it resumes after the whole chunks",
                    ) from None
            continue
        if kind == "progress":
            tick(value)
        elif kind == "done":
            results[number] = value
        else:
            raise TransferError(value[0], hint=value[1])
    return [results[n] for n in sorted(results)]
