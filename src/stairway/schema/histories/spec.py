"""What a catalog says about an adopted history: which tool, where its files lie, and what the
vendor declares beside them (phases by identifier, the fresh-install step)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stairway.schema.change import HistoryTool, Phase

DEFAULT_TABLES = {
    HistoryTool.ALEMBIC: "alembic_version",
    HistoryTool.FLYWAY: "flyway_schema_history",
    HistoryTool.GOLANG_MIGRATE: "schema_migrations",
    HistoryTool.DBMATE: "schema_migrations",
}


@dataclass(frozen=True)
class HistorySpec:
    """A history to read: ``directory`` holds its files (an Alembic script directory, or the SQL
    files); ``table`` is the tool's bookkeeping table; ``phases`` are phases the catalog declares
    by the history's own identifier, for files the vendor cannot edit."""

    tool: HistoryTool
    directory: Path
    table: str
    manifest: Path  # stairway.toml, named by errors about the [history] table
    phases: Mapping[str, Phase] = field(default_factory=dict)
    fresh: str | None = None  # "module:callable" that builds a fresh database and stamps it
    dialect: str = "postgresql"  # the site's database: what an Alembic revision renders for
