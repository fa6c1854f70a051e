"""Roles, with the defaults every site starts with; a third was dropped again, so the next
role takes id 4, not 3."""

from sqlalchemy import Connection, text

PHASE = "offline"

_IDENTITY = {
    "postgresql": "INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
}


def upgrade(conn: Connection) -> None:
    identity = _IDENTITY[conn.dialect.name]
    conn.execute(text(f"CREATE TABLE roles (id {identity}, name TEXT NOT NULL UNIQUE)"))
    for name in ("admin", "viewer", "legacy"):
        conn.execute(text("INSERT INTO roles (name) VALUES (:name)"), {"name": name})
    conn.execute(text("DELETE FROM roles WHERE name = 'legacy'"))
