"""Optuna's own fresh install, on Stairway's connection: what ``optuna.storages.RDBStorage``
does to an empty database (its ORM metadata's tables, the version row, ``alembic_version``
stamped at the head), without opening an engine of its own."""

from __future__ import annotations

import os

import optuna
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from optuna.storages._rdb import models
from sqlalchemy import Connection, insert


def fresh(conn: Connection) -> None:
    """Create Optuna's tables from its models and stamp the head revision."""
    models.BaseModel.metadata.create_all(conn)
    conn.execute(
        insert(models.VersionInfoModel.__table__).values(
            version_info_id=1,
            schema_version=models.SCHEMA_VERSION,
            library_version=optuna.__version__,
        )
    )
    script = ScriptDirectory(os.path.join(os.path.dirname(models.__file__), "alembic"))
    MigrationContext.configure(conn).stamp(script, "head")
