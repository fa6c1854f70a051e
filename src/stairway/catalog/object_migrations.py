"""``objects.toml`` (or ``objects/*.toml``): the catalog's object migrations, checked whole."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stairway.catalog.manifest import check_version, read_model
from stairway.errors import CatalogError
from stairway.hooks import HookNotFound, find_hook
from stairway.objects.migration import Handler, ObjectMigration, Op, Severity, Transition
from stairway.objects.paths import parse_path
from stairway.version_grammars import GrammarName
from stairway.versions import Version

PathText = Annotated[str, Field(pattern=r"^[^.]+(\.[^.]+)*$")]


class MigrationModel(BaseModel):
    """One ``[[migration]]`` of the object migrations, as written by the vendor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Annotated[str, Field(min_length=1)]
    since: str
    op: Op
    path: PathText
    to: PathText | None = None
    transition: Transition = Transition.AUTOMATIC
    severity: Severity = Severity.WARNING
    subtype: str | None = None
    note: str = ""
    handler: Annotated[str, Field(pattern=r"^[\w.]+:\w+$")] | None = None

    _is_version = field_validator("since")(check_version)

    @model_validator(mode="after")
    def _fits_op(self) -> MigrationModel:
        needs_to = self.op in (Op.RENAME, Op.MOVE)
        if needs_to != (self.to is not None):
            raise ValueError(f"`to` is {'required' if needs_to else 'not allowed'} for {self.op}")
        if self.op == Op.RENAME and self.to is not None and "." in self.to:
            raise ValueError("rename keeps the key in its object: use op = 'move' for a new path")
        if self.to is not None and (self.to == self.path or self.to.startswith(self.path + ".")):
            raise ValueError(f"`to` must lie outside `path` ({self.path})")
        if (self.op == Op.TRANSFORM) != (self.handler is not None):
            raise ValueError("`handler` is required for transform and only for transform")
        return self


class ObjectsFile(BaseModel):
    """One object-migration file: its list of migrations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    migration: list[MigrationModel] = []
    kind: Literal["objects"] | None = None  # reserved so files can say what they are


def load_object_migrations(
    root: Path, grammar: GrammarName = "pep440"
) -> tuple[ObjectMigration, ...]:
    """Every object migration of the catalog at ``root``, in file order, handlers resolved,
    ``since`` read in the catalog's version ``grammar``; raises the first problem."""
    found, problems = read_object_migrations(root, grammar)
    if problems:
        raise problems[0]
    return found


def read_object_migrations(
    root: Path, grammar: GrammarName = "pep440"
) -> tuple[tuple[ObjectMigration, ...], list[CatalogError]]:
    """The object migrations that read, and the problem of every file or entry that does not
    (``stairway check`` reports them all)."""
    found: list[ObjectMigration] = []
    problems: list[CatalogError] = []
    for path in _files(root):
        try:
            models = read_model(path, ObjectsFile, "docs/objects.md", grammar).migration
        except CatalogError as problem:
            problems.append(problem)
            continue
        for model in models:
            try:
                found.append(_migration(len(found) + 1, model, root, path, grammar))
            except CatalogError as problem:
                problems.append(problem)
    return tuple(found), problems


def _files(root: Path) -> list[Path]:
    single = root / "objects.toml"
    folder = root / "objects"
    files = [single] if single.is_file() else []
    return files + (sorted(folder.glob("*.toml")) if folder.is_dir() else [])


def _migration(
    number: int, model: MigrationModel, root: Path, path: Path, grammar: GrammarName
) -> ObjectMigration:
    return ObjectMigration(
        number=number,
        type=model.type,
        since=Version(model.since, grammar),
        op=model.op,
        path=parse_path(model.path),
        to=parse_path(model.to) if model.to else (),
        transition=model.transition,
        severity=model.severity,
        subtype=model.subtype,
        note=model.note,
        handler_name=model.handler or "",
        handler=_handler(model.handler, root, path) if model.handler else None,
        source=str(path),
    )


def _handler(name: str, root: Path, path: Path) -> Handler:
    """``module:function``: a module file inside the catalog first, then an importable module."""
    try:
        return find_hook(name, root)  # type: ignore[return-value]
    except HookNotFound as err:
        local = root.joinpath(*name.split(":")[0].split(".")).with_suffix(".py")
        raise CatalogError(
            f"handler {name}: {err}",
            path=str(path),
            hint="name a function taking the document and returning it (or None)"
            if err.imports
            else f"ship {local.relative_to(root)} in the catalog or install the module",
        ) from None
