"""Reading an adopted history into changes: one reader per tool, imported only when used (the
Alembic reader imports Alembic and the product's revision modules)."""

from __future__ import annotations

from importlib import import_module

from stairway.schema.change import Change, HistoryTool
from stairway.schema.histories.spec import HistorySpec

# tool -> the module whose ``read(spec)`` reads its files
READERS = {
    HistoryTool.ALEMBIC: "stairway.schema.histories.alembic_history",
    HistoryTool.FLYWAY: "stairway.schema.histories.sql_layouts",
    HistoryTool.GOLANG_MIGRATE: "stairway.schema.histories.sql_layouts",
    HistoryTool.DBMATE: "stairway.schema.histories.sql_layouts",
}


def read_history(spec: HistorySpec) -> tuple[Change, ...]:
    """The history's migrations as changes numbered 1, 2, 3 ... in the order they apply.

    Raises:
        CatalogError: a file that does not read, an order that cannot be decided, a gap or a
            duplicate: the message names the file.
    """
    reader = import_module(READERS[spec.tool])
    changes: tuple[Change, ...] = reader.read(spec)
    return changes
