"""Backfill titles."""

PHASE = "expand"


def upgrade(conn):
    pass


def downgrade(conn):
    pass
