"""``stairway_import_chunks``: one row per imported chunk, written in the chunk's transaction.

The row says the chunk is in (a resumed import skips it) and what it held: objects per type as
read and as stored, and how many were new, already present or rejected. Processes and machines
that share an import each add their chunks' rows; the sums are checked against the header once
every chunk is in, by whichever finishes last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, Text, insert, select

metadata = MetaData()
chunks_table = Table(
    "stairway_import_chunks",
    metadata,
    Column("import_id", String(64), primary_key=True),
    Column("chunk", Integer, primary_key=True),
    Column("types", Text, nullable=False),  # {"type": [read, stored]}
    Column("imported", Integer, nullable=False),
    Column("present", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
)


@dataclass
class ChunkTally:
    """What one chunk (or a sum of chunks) held: objects per type read and stored, and outcomes."""

    types: dict[str, list[int]] = field(default_factory=dict)
    imported: int = 0
    present: int = 0
    rejected: int = 0

    def saw(self, type_: object) -> None:
        """Count one object record of ``type_`` read from the file."""
        self.types.setdefault(str(type_), [0, 0])[0] += 1

    def stored(self, type_: str) -> None:
        """Count one object of ``type_`` that is now in the site, new or already there."""
        self.types.setdefault(type_, [0, 0])[1] += 1

    def add(self, other: ChunkTally) -> None:
        """Add ``other``'s counts to this tally."""
        for type_, (read, stored) in other.types.items():
            mine = self.types.setdefault(type_, [0, 0])
            mine[0] += read
            mine[1] += stored
        self.imported += other.imported
        self.present += other.present
        self.rejected += other.rejected


def ensure_table(conn: Connection) -> None:
    """Create ``stairway_import_chunks`` unless it exists."""
    metadata.create_all(conn, checkfirst=True)


def record_chunk(conn: Connection, import_id: str, chunk: int, tally: ChunkTally) -> None:
    """Record chunk ``chunk`` of the import as in, with its tally; in the chunk's transaction."""
    conn.execute(
        insert(chunks_table).values(
            import_id=import_id,
            chunk=chunk,
            types=orjson.dumps(tally.types).decode(),
            imported=tally.imported,
            present=tally.present,
            rejected=tally.rejected,
        )
    )


def recorded(conn: Connection, import_id: str) -> set[int]:
    """The numbers of the chunks of ``import_id`` already in, from any run or machine."""
    query = select(chunks_table.c.chunk).where(chunks_table.c.import_id == import_id)
    return {int(n) for n in conn.execute(query).scalars()}


def total(conn: Connection, import_id: str) -> tuple[int, ChunkTally]:
    """How many chunks are in, and what they held, over every run and process."""
    query = select(
        chunks_table.c.types,
        chunks_table.c.imported,
        chunks_table.c.present,
        chunks_table.c.rejected,
    ).where(chunks_table.c.import_id == import_id)
    sums, count = ChunkTally(), 0
    for types, imported, present, rejected in conn.execute(query):
        sums.add(ChunkTally(orjson.loads(types), imported, present, rejected))
        count += 1
    return count, sums
