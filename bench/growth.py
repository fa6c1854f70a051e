"""How a cost grows with the data (pure): is a figure flat between two sizes, and what a size
far beyond the measured ones would take.

A rate (objects/s) that stays within ``TOLERANCE`` of itself from one size to a ten times larger
one means the work costs the same per object: linear in the data. A peak memory that stays
within it means the memory is bounded. Projections start from the largest size measured.
"""

from __future__ import annotations

from dataclasses import dataclass

TOLERANCE = 0.2
TARGET = 100_000_000


@dataclass(frozen=True)
class Growth:
    """One figure at two sizes; flat when the larger size's is within the tolerance of the
    smaller size's."""

    what: str
    small_size: int
    large_size: int
    small: float
    large: float
    tolerance: float = TOLERANCE

    @property
    def change(self) -> float:
        """The relative change from the smaller size to the larger (+0.1 = 10% more)."""
        if self.small == 0:
            return 0.0 if self.large == 0 else float("inf")
        return (self.large - self.small) / self.small

    @property
    def flat(self) -> bool:
        return abs(self.change) <= self.tolerance

    def to_json(self) -> dict[str, object]:
        return {
            "what": self.what,
            "from_objects": self.small_size,
            "to_objects": self.large_size,
            "from": self.small,
            "to": self.large,
            "change": self.change,
            "tolerance": self.tolerance,
            "met": self.flat,
        }


@dataclass(frozen=True)
class Projection:
    """The time and the peak memory for ``objects``, from the measured figures."""

    objects: int
    from_objects: int
    rate: float
    seconds: float
    memory_bytes: float
    memory_method: str

    def to_json(self) -> dict[str, object]:
        return {
            "objects": self.objects,
            "from_objects": self.from_objects,
            "rate_objects_per_s": self.rate,
            "seconds": self.seconds,
            "hours": self.seconds / 3600,
            "memory_bytes": self.memory_bytes,
            "memory_method": self.memory_method,
        }


def project_seconds(objects: int, rate: float) -> float:
    """The time for ``objects`` at ``rate`` objects/s: a linear cost."""
    return objects / rate if rate > 0 else float("inf")


def project_memory(memory: Growth, objects: int) -> tuple[float, str]:
    """The peak for ``objects``: the larger size's when flat, else the line through both sizes."""
    if memory.flat:
        return memory.large, f"flat: the {memory.large_size:,} peak"
    slope = (memory.large - memory.small) / (memory.large_size - memory.small_size)
    projected = memory.large + slope * (objects - memory.large_size)
    return max(projected, 0.0), (
        f"not flat: extrapolated linearly from {memory.small_size:,} to {memory.large_size:,}"
    )


def project(rate: Growth, memory: Growth, objects: int = TARGET) -> Projection:
    """The projection for ``objects`` from the largest measured size's rate and the memory trend."""
    memory_bytes, method = project_memory(memory, objects)
    return Projection(
        objects=objects,
        from_objects=rate.large_size,
        rate=rate.large,
        seconds=project_seconds(objects, rate.large),
        memory_bytes=memory_bytes,
        memory_method=method,
    )
