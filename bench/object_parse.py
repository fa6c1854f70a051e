"""``object_parse``: parsing stored documents with migrations applied, against orjson alone.

Each document is about 1 KB and three migrations hit every one (a rename, a move across nesting
levels and a remove). The baseline parses the same bytes with ``orjson.loads`` and nothing else.
Goal: migrating while parsing costs at most 1.5 times the bare parse.
"""

from __future__ import annotations

import statistics
import time

import orjson

from bench.harness import Result, Sizes, alternate
from stairway.objects.migrate import Migrator
from stairway.objects.migration import ObjectMigration, Op
from stairway.versions import Version

NAME = "object_parse"
GOAL = 1.5
ROUNDS = 11
WRITTEN_BY = "1.0.0"  # the stamp as the objects table stores it

MIGRATIONS = [
    ObjectMigration(1, "User", Version("2.0.0"), Op.RENAME, ("fullName",), to=("displayName",)),
    ObjectMigration(
        2, "User", Version("2.0.0"), Op.MOVE, ("address", "city"), to=("location", "city")
    ),
    ObjectMigration(3, "User", Version("2.0.0"), Op.REMOVE, ("legacyFlags",)),
]


def document(number: int) -> bytes:
    body = {
        "oid": f"user-{number:08d}",
        "fullName": f"User Number {number}",
        "emailAddress": f"user{number}@example.org",
        "address": {"street": f"{number} Long Street", "city": "Brno", "zip": "60200"},
        "legacyFlags": [1, 2, 3],
        "roles": [f"role-{r}" for r in range(8)],
        "attributes": {f"attr{a}": f"value {a} of user {number}" for a in range(14)},
        "enabled": True,
        "created": "2024-01-01T00:00:00Z",
    }
    return orjson.dumps(body)


def run(sizes: Sizes) -> Result:
    count = sizes.guard_calls * 25  # 50,000 documents in a full run
    raw = [document(n) for n in range(count)]
    migrator = Migrator(MIGRATIONS)
    runs = alternate(lambda: parse_all(raw, migrator), lambda: _bare(raw), ROUNDS)
    _check(raw[0], migrator)
    return Result(
        name=NAME,
        subject=f"Migrator.parse, 3 migrations hitting each of {count:,} 1 KB documents",
        baseline=f"orjson.loads of the same {count:,} documents",
        runs=runs,
        goal=GOAL,
        timings={"parse_migrate_s": list(runs.subject), "orjson_s": list(runs.baseline)},
        details={
            "documents": count,
            "document_bytes": len(raw[0]),
            "documents_per_s": count / statistics.median(runs.subject),
        },
    )


def parse_all(raw: list[bytes], migrator: Migrator) -> float:
    started = time.perf_counter()
    for body in raw:
        migrator.parse("User", body, WRITTEN_BY)
    return time.perf_counter() - started


def _bare(raw: list[bytes]) -> float:
    started = time.perf_counter()
    for body in raw:
        orjson.loads(body)
    return time.perf_counter() - started


def _check(body: bytes, migrator: Migrator) -> None:
    """Both sides must do the work claimed: every migration really applies."""
    outcome = migrator.parse("User", body, WRITTEN_BY)
    assert [m.number for m in outcome.applied] == [1, 2, 3], outcome.applied
