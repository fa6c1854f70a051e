"""The jobs product's handler: resumes an interrupted export where it left off."""

from __future__ import annotations

import time

from sqlalchemy import Connection, text


def resume_export(conn: Connection, key: object) -> None:
    """Records the call and moves the export on; slow enough for two starts to overlap."""
    time.sleep(0.02)
    conn.execute(text("INSERT INTO resumed (export_id) VALUES (:key)"), {"key": key})
    conn.execute(text("UPDATE exports SET phase = 'resuming' WHERE export_id = :key"), {"key": key})
    if key == 13:
        raise RuntimeError("export 13 lost its output file")
