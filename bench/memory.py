"""The peak resident memory (RSS) of the benchmark's process and of every process it starts.

A sampling thread walks the process tree under this process every ``INTERVAL`` seconds and
reads each process's ``VmHWM`` (its high-water mark of resident memory) from
``/proc/<pid>/status``. ``VmHWM`` only rises, so the last sample taken before a worker exits is
its peak but for what it grew in its last interval. This process's own mark is reset when a
measurement starts (``/proc/self/clear_refs``), so each size reports its own peak, not the
largest size's before it. A forked worker starts with its parent's pages counted in its RSS
(shared until written), so a worker's figure includes what it inherited.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

INTERVAL = 0.02
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessPeak:
    """One process's peak RSS in bytes; ``role`` is "benchmark" for this process, else "worker"."""

    pid: int
    role: str
    name: str
    peak_bytes: int

    def to_json(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "role": self.role,
            "name": self.name,
            "peak_bytes": self.peak_bytes,
        }


@dataclass(frozen=True)
class Peaks:
    """Every process's peak over one measurement."""

    processes: tuple[ProcessPeak, ...]

    @property
    def benchmark_bytes(self) -> int:
        return max((p.peak_bytes for p in self.processes if p.role == "benchmark"), default=0)

    @property
    def workers(self) -> tuple[ProcessPeak, ...]:
        return tuple(p for p in self.processes if p.role == "worker")

    @property
    def largest_bytes(self) -> int:
        """The largest single process's peak: what bounded memory is judged on."""
        return max((p.peak_bytes for p in self.processes), default=0)

    def to_json(self) -> dict[str, object]:
        return {
            "benchmark_bytes": self.benchmark_bytes,
            "workers": len(self.workers),
            "worker_max_bytes": max((p.peak_bytes for p in self.workers), default=0),
            "largest_bytes": self.largest_bytes,
            "processes": [p.to_json() for p in self.processes],
        }


def supported() -> bool:
    return (PROC / "self" / "status").exists()


class RssSampler:
    """``with RssSampler() as sampler: ...`` then ``sampler.peaks()``."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self._interval = interval
        self._root = os.getpid()
        self._seen: dict[int, ProcessPeak] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        _reset_own_peak()
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def peaks(self) -> Peaks:
        return Peaks(
            tuple(sorted(self._seen.values(), key=lambda p: (p.role != "benchmark", p.pid)))
        )

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        for pid in _tree(self._root):
            status = _status(pid)
            if status is None or "VmHWM" not in status:
                continue  # gone between listing and reading, or a zombie
            peak = _kilobytes(status["VmHWM"]) * 1024
            known = self._seen.get(pid)
            if known is None or peak > known.peak_bytes:
                role = "benchmark" if pid == self._root else "worker"
                self._seen[pid] = ProcessPeak(pid, role, status.get("Name", "?"), peak)


def _reset_own_peak() -> None:
    # Writing 5 resets the high-water mark to the current RSS (Linux 4.0 and later).
    # On an older kernel the write fails and the mark carries over from earlier measurements.
    with contextlib.suppress(OSError):
        (PROC / "self" / "clear_refs").write_text("5")


def _tree(root: int) -> Iterator[int]:
    pending = [root]
    while pending:
        pid = pending.pop()
        yield pid
        pending.extend(_children(pid))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _status(pid: int) -> dict[str, str] | None:
    try:
        text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


def _kilobytes(value: str) -> int:
    return int(value.split()[0])
