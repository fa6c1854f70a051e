"""... then copy every full name into it ..."""

from sqlalchemy import Connection, text

PHASE = "expand"


def upgrade(conn: Connection) -> None:
    conn.execute(text("UPDATE users SET display_name = full_name WHERE display_name IS NULL"))
