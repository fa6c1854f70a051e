"""A reindex task on PostgreSQL: ``REINDEX ... CONCURRENTLY``, and what an interrupted one left.

``CONCURRENTLY`` builds a copy of each index beside it (``<index>_ccnew``), swaps the two, and
drops the old one (renamed ``<index>_ccold``), committing between these phases. A run cut short
leaves the copy, or the old index, behind as an invalid index that PostgreSQL keeps updating on
every write and never uses. A killed Stairway may also leave its server session running, still
waiting for its locks. Before a reindex runs, this module ends such a session of the same task
and drops the invalid leftovers of its own earlier attempt, then runs it; so running a reindex
again is always safe.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Connection, text

from stairway.tasks import Task, TaskKind, TaskProgress, reindex_fraction

log = logging.getLogger(__name__)

ORPHAN_WAIT = 30.0  # seconds an ended session of an earlier attempt may take to let go its locks

_LEFTOVERS = """
SELECT c.relname FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid AND n.nspname = current_schema()
  AND (c.relname LIKE :new ESCAPE '!' OR c.relname LIKE :old ESCAPE '!'
       OR (:table AND i.indrelid = to_regclass(:target)
           AND (c.relname LIKE '%!_ccnew%' ESCAPE '!' OR c.relname LIKE '%!_ccold%' ESCAPE '!')))
ORDER BY c.relname
"""

_ORPHANS = """
SELECT pid FROM pg_stat_activity
WHERE application_name = :name AND datname = current_database() AND pid <> pg_backend_pid()
"""


def session_name(task: Task) -> str:
    """The ``application_name`` of a task's reindex session: how a later attempt finds it."""
    return f"stairway task {task.release}/{task.name}"[:63]  # PostgreSQL keeps 63 bytes


def prepare(conn: Connection, task: Task) -> list[str]:
    """Name this session after ``task``, end a session an earlier attempt of it left running,
    and drop that attempt's invalid indexes; returns the names of those dropped."""
    name = session_name(task)
    conn.execute(text("SELECT set_config('application_name', :name, false)"), {"name": name})
    _end_orphans(conn, name)
    return _drop_leftovers(conn, task)


def _end_orphans(conn: Connection, name: str) -> None:
    """An earlier attempt's session outlives a killed Stairway while it waits for a lock: it
    would finish or fail on its own later, racing this attempt."""
    pids = list(conn.execute(text(_ORPHANS), {"name": name}).scalars())
    for pid in pids:
        log.warning("ending session %d of an interrupted attempt of the same reindex", pid)
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    deadline = time.monotonic() + ORPHAN_WAIT
    while pids and time.monotonic() < deadline:
        pids = list(conn.execute(text(_ORPHANS), {"name": name}).scalars())
        time.sleep(0.05)  # a terminated session exits within milliseconds


def _drop_leftovers(conn: Connection, task: Task) -> list[str]:
    escaped = task.target.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    quote = conn.dialect.identifier_preparer.quote
    found = conn.execute(
        text(_LEFTOVERS),
        {
            "new": f"{escaped}!_ccnew%",
            "old": f"{escaped}!_ccold%",
            "table": task.kind is TaskKind.REINDEX_TABLE,
            "target": quote(task.target),
        },
    ).scalars()
    dropped = list(found)
    for name in dropped:
        log.warning("dropping invalid index %s, left by an interrupted reindex", name)
        conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(name)}"))
    return dropped


_PROGRESS = """
SELECT p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total
FROM pg_stat_progress_create_index p JOIN pg_stat_activity a ON a.pid = p.pid
WHERE a.application_name = :name AND p.datname = current_database()
"""


def poll(conn: Connection, task: Task, elapsed: float) -> TaskProgress | None:
    """How far ``task``'s reindex has come, read from another session; None when it is not
    running (not begun yet, or between two of a table's indexes)."""
    row = conn.execute(text(_PROGRESS), {"name": session_name(task)}).first()
    if row is None:
        return None
    phase, blocks_done, blocks_total, tuples_done, tuples_total = row
    done, total = (blocks_done, blocks_total) if blocks_total else (tuples_done, tuples_total)
    fraction = reindex_fraction(phase, done or 0, total or 0)
    return TaskProgress(task.name, phase, elapsed, fraction)
