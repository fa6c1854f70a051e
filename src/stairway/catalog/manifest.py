"""``stairway.toml``: the product's name, its releases and where its objects live (Pydantic)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stairway.errors import CatalogError
from stairway.versions import Version


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductModel(_Strict):
    name: Annotated[str, Field(min_length=1)]


class ObjectsModel(_Strict):
    table: str = "objects"
    id: str = "oid"
    type: str = "type"
    body: str = "data"


class ReleaseModel(_Strict):
    version: str
    schema_: Annotated[int, Field(alias="schema", ge=0)]
    lts: bool = False
    rolling: bool = False
    requires: str | None = None
    agent_protocol: tuple[int, int] | None = None

    @field_validator("version", "requires")
    @classmethod
    def _is_version(cls, value: str | None) -> str | None:
        if value is not None:
            Version(value)  # InvalidVersion is a ValueError: pydantic reports it with its key
        return value


class Manifest(_Strict):
    product: ProductModel
    objects: ObjectsModel | None = None
    release: Annotated[list[ReleaseModel], Field(min_length=1)]


def load_manifest(path: Path) -> Manifest:
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CatalogError(
            f"not valid TOML: {err}", path=str(path), hint="fix the TOML syntax"
        ) from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        raise _translate(err, path, text) from None


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CatalogError(
            "no stairway.toml here",
            path=str(path),
            hint="point --catalog at the directory that holds the product's stairway.toml",
        ) from None
    except UnicodeDecodeError as err:
        raise CatalogError(
            f"not valid UTF-8 (byte {err.start})", path=str(path), hint="save the file as UTF-8"
        ) from None
    except OSError as err:
        raise CatalogError(
            f"cannot read: {err.strerror}", path=str(path), hint="check the file's permissions"
        ) from None


def _translate(err: ValidationError, path: Path, text: str) -> CatalogError:
    first = err.errors()[0]
    key = _key_path(first["loc"])
    leaf = str(first["loc"][-1]) if first["loc"] else ""
    if first["type"] == "extra_forbidden":
        return CatalogError(
            f"unknown key {key!r}",
            path=str(path),
            line=_line_of(text, leaf),
            hint="remove it or check its spelling against the catalog format (docs/catalog.md)",
        )
    if first["type"] == "missing":
        return CatalogError(
            f"missing key {key!r}", path=str(path), hint=f"add {leaf} = ... (docs/catalog.md)"
        )
    return CatalogError(
        f"{key}: {first['msg']}",
        path=str(path),
        line=_line_of(text, leaf),
        hint="fix the value (docs/catalog.md describes every key)",
    )


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item + 1}]"
        else:
            parts.append(item)
    return ".".join(parts)


def _line_of(text: str, key: str) -> int | None:
    """Line of the first ``key = ...``: tomllib keeps no positions, so look for the key."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith(key) and line.strip()[len(key) :].lstrip().startswith("="):
            return number
    return None
