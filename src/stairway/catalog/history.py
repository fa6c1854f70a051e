"""Where a catalog's schema changes come from: ``schema/`` (Stairway's own layout) or the
``[history]`` of another tool, read where it lies (docs/adopting.md)."""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from pathlib import Path

from stairway.catalog.manifest import HistoryModel, Manifest, ReleaseModel
from stairway.errors import CatalogError
from stairway.schema.change import Change, HistoryTool, Phase
from stairway.schema.histories import repeatables
from stairway.schema.histories.reading import read_history
from stairway.schema.histories.repeatables import Repeatable
from stairway.schema.histories.spec import DEFAULT_TABLES, HistorySpec


def history_spec(
    root: Path, model: HistoryModel, manifest: Path, dialect: str = "postgresql"
) -> HistorySpec:
    """The ``[history]`` table with its directory found (a path under the catalog, or inside an
    installed package), read for a site on ``dialect``.

    Raises:
        CatalogError: the directory or the package is not there.
    """
    tool = HistoryTool(model.tool)
    return HistorySpec(
        tool=tool,
        directory=_directory(root, model, manifest),
        table=model.table or DEFAULT_TABLES[tool],
        manifest=manifest,
        phases={ident: Phase(phase) for ident, phase in model.phases.items()},
        fresh=model.fresh,
        dialect=dialect,
    )


def adopted_changes(
    root: Path, manifest: Manifest, path: Path, dialect: str = "postgresql"
) -> tuple[Change, ...] | None:
    """The changes of the catalog's ``[history]``, for a site on ``dialect`` (an Alembic
    revision's SQL is rendered for it); None when the catalog keeps its own ``schema/``.

    Raises:
        CatalogError: both are there, or the history does not read.
    """
    if manifest.history is None:
        return None
    if (root / "schema").is_dir():
        raise CatalogError(
            "the catalog has both a schema/ directory and a [history]",
            path=str(path),
            hint="keep one: schema/ for Stairway's own changes, [history] for an existing one",
        )
    changes = read_history(history_spec(root, manifest.history, path, dialect))
    _refuse_unknown_phases(manifest.history, changes, path)
    return changes


def adopted_repeatables(
    root: Path, manifest: Manifest, path: Path, changes: tuple[Change, ...]
) -> tuple[Repeatable, ...]:
    """The Flyway repeatable migrations of the catalog's ``[history]``, judged on the schema
    ``changes`` leave; none without a Flyway history.

    Raises:
        CatalogError: a repeatable misnamed, named twice, or labelled expand falsely.
    """
    if manifest.history is None or HistoryTool(manifest.history.tool) != HistoryTool.FLYWAY:
        return ()  # only Flyway has them: the history's directory is not looked up again
    return repeatables.read(history_spec(root, manifest.history, path), changes)


def schema_level(model: ReleaseModel, idents: Mapping[str, int], path: Path) -> int:
    """A release's ``schema``: a change number, or the history's own identifier of one.

    Raises:
        CatalogError: an identifier the history does not have.
    """
    if isinstance(model.schema_, int):
        return model.schema_
    if model.schema_ in idents:
        return idents[model.schema_]
    known = ", ".join(list(idents)[-3:]) or "none: the catalog has no adopted history"
    raise CatalogError(
        f"release {model.version}: schema {model.schema_!r} is no migration of the history "
        f"(its last ones: {known})",
        path=str(path),
        hint="name a migration by its identifier (an Alembic revision, a Flyway version, a "
        "file's version) or give the change number",
    )


def identifiers(changes: tuple[Change, ...]) -> dict[str, int]:
    """Each adopted change's own identifier -> its change number."""
    return {c.origin.ident: c.number for c in changes if c.origin is not None}


def points(changes: tuple[Change, ...]) -> dict[int, str]:
    """Each adopted change's number -> the history's own identifier of it: the point of the
    history a schema snapshot at that level stands for."""
    return {c.number: c.origin.ident for c in changes if c.origin is not None and not c.patch}


def _directory(root: Path, model: HistoryModel, manifest: Path) -> Path:
    if model.path is not None:
        directory = (root / model.path).resolve()
        where = f"path {model.path!r}"
    else:
        assert model.package is not None
        directory = _package_directory(model.package, manifest)
        where = f"package {model.package!r}"
    if not directory.is_dir():
        raise CatalogError(
            f"[history] {where}: no directory {directory}",
            path=str(manifest),
            hint="point path at the history's directory (relative to the catalog) or package "
            'at "package:directory" of an installed package',
        )
    return directory


def _package_directory(location: str, manifest: Path) -> Path:
    package, _, inner = location.partition(":")
    try:
        base = importlib.resources.files(package)
    except (ImportError, TypeError, ValueError) as err:
        raise CatalogError(
            f"[history] package {package!r} cannot be imported: {err}",
            path=str(manifest),
            hint=f"install the product ({package}) into the environment Stairway runs in",
        ) from None
    return Path(str(base.joinpath(inner))).resolve()


def _refuse_unknown_phases(model: HistoryModel, changes: tuple[Change, ...], path: Path) -> None:
    unknown = sorted(set(model.phases) - set(identifiers(changes)))
    if unknown:
        raise CatalogError(
            f"[history] phases names {', '.join(unknown)}, which the history does not have",
            path=str(path),
            hint="name each migration by its own identifier (Alembic revision, Flyway version)",
        )
