"""A fresh install the product's way: many products do not replay their history on an empty
database; they create the tables from their ORM metadata and stamp the head revision. The
catalog names that step (``[history] fresh``), and the history takes over from the revision it
stamps (docs/adopting.md)."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from stairway.errors import CatalogError

FreshInstall = Callable[[Connection], Any]


def fresh_install(root: Path, named: str, key: str = "[history] fresh") -> FreshInstall:
    """The callable ``named`` ("module:callable", or "file.py:callable" relative to the catalog
    ``root``); it takes a SQLAlchemy ``Connection`` inside Stairway's transaction.

    Raises:
        CatalogError: it cannot be imported, or is not callable.
    """
    where, _, name = named.rpartition(":")
    try:
        module = _module(root, where)
        found = getattr(module, name)
    except Exception as err:  # the product's module raised while importing
        raise CatalogError(
            f"{key} = {named!r} cannot be loaded: {type(err).__name__}: {err}",
            path=str(root / "stairway.toml"),
            hint='name "module:callable" of an installed package, or "file.py:callable" beside '
            "stairway.toml",
        ) from None
    if not callable(found):
        raise CatalogError(
            f"{key} = {named!r} is not callable",
            path=str(root / "stairway.toml"),
            hint="name a function taking a SQLAlchemy Connection",
        )
    fresh: FreshInstall = found
    return fresh


def _module(root: Path, where: str) -> object:
    if not where.endswith(".py"):
        return importlib.import_module(where)
    path = root / where
    spec = importlib.util.spec_from_file_location(f"stairway_fresh_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no Python file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
