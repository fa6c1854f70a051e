"""Where a product keeps its objects: the ``[objects]`` table of its catalog's ``stairway.toml``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ObjectsModel(BaseModel):
    """The table holding the product's documents and the columns and paths Stairway reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = "objects"
    id: str = "oid"
    type: str = "type"
    body: str = "data"
    version: str | None = None  # column holding the release that wrote each object
    subtype: str | None = None  # dotted path inside the document naming its subtype
    lifecycle: str = "lifecycleState"  # dotted path a delta sets to "obsolete" (never deletes)
