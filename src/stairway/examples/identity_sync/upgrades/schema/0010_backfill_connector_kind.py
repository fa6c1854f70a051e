"""... then copy every connector's type into its kind ..."""

from sqlalchemy import Connection, text

PHASE = "expand"


def upgrade(conn: Connection) -> None:
    conn.execute(text("UPDATE connectors SET kind = type WHERE kind IS NULL"))
