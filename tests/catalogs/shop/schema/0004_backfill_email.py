"""Give every customer a placeholder address (a Python change)."""

from sqlalchemy import Connection, text

PHASE = "expand"
LOSES = "nothing"

BACKFILL = "UPDATE customers SET email = 'c' || id || '@example.invalid' WHERE email IS NULL"


def upgrade(conn: Connection) -> None:
    conn.execute(text(BACKFILL))


def downgrade(conn: Connection) -> None:
    conn.execute(text("UPDATE customers SET email = NULL WHERE email LIKE '%@example.invalid'"))
