"""``deltas/<version>/*.toml``: the configuration deltas each release ships, checked whole."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stairway.catalog.manifest import read_model
from stairway.errors import CatalogError
from stairway.objects.delta import ABSENT, Delta, DeltaOp, DeltaSet
from stairway.objects.paths import parse_path
from stairway.version_grammars import GrammarName, describe
from stairway.versions import Version

DOC = "docs/deltas.md"
PathText = Annotated[str, Field(pattern=r"^[^.]+(\.[^.]+)*$")]


class SetModel(BaseModel):
    """One ``[[delta.set]]``: a path in the object and its value before and after."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: PathText
    old: Any = None  # absent from the file: the key was not there before
    new: Any = None  # absent from the file: the release takes the key away

    @model_validator(mode="after")
    def _changes_something(self) -> SetModel:
        if self.old == self.new:
            raise ValueError("`old` and `new` are the same: nothing to change")
        return self


class DeltaModel(BaseModel):
    """One ``[[delta]]`` of a release's delta file, as written by the vendor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[\w.:-]+$")]
    description: Annotated[str, Field(min_length=1)]
    op: DeltaOp
    type: Annotated[str, Field(min_length=1)]
    target: str | int | None = None
    where: dict[str, str | int | float | bool] = {}
    object: dict[str, Any] | None = None
    set: list[SetModel] = []

    @model_validator(mode="after")
    def _fits_op(self) -> DeltaModel:
        if (self.target is None) == (not self.where):
            raise ValueError("give either `target` (an object id) or `where` (a filter)")
        if self.op == DeltaOp.ADD and self.target is None:
            raise ValueError("add needs `target`: the id of the object it adds")
        if (self.op == DeltaOp.ADD) != (self.object is not None):
            raise ValueError("`object` is required for add and only for add")
        if (self.op == DeltaOp.MODIFY) != bool(self.set):
            raise ValueError("[[delta.set]] entries are required for modify and only for modify")
        return self


class DeltasFile(BaseModel):
    """One ``deltas/<version>/*.toml`` file: its list of deltas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delta: list[DeltaModel] = []


def load_deltas(root: Path, grammar: GrammarName = "pep440") -> tuple[Delta, ...]:
    """Every delta under ``root/deltas``, by release (its directory's name, a version of the
    catalog's ``grammar``), then file name, then file order; raises the first problem."""
    found, problems = read_deltas(root, grammar)
    if problems:
        raise problems[0]
    return found


def read_deltas(
    root: Path, grammar: GrammarName = "pep440"
) -> tuple[tuple[Delta, ...], list[CatalogError]]:
    """The deltas that read, and the problem of every directory, file or id that does not
    (``stairway check`` reports them all)."""
    folder = root / "deltas"
    if not folder.is_dir():
        return (), []
    found: list[Delta] = []
    releases, problems = _release_dirs(folder, grammar)
    for release_dir in sorted(releases, key=lambda d: Version(d.name, grammar)):
        release = Version(release_dir.name, grammar)
        for path in sorted(release_dir.glob("*.toml")):
            try:
                found += [_delta(m, release, path) for m in _read(path).delta]
            except CatalogError as problem:
                problems.append(problem)
    return tuple(found), problems + _reused_ids(found)


def _release_dirs(folder: Path, grammar: GrammarName) -> tuple[list[Path], list[CatalogError]]:
    dirs, problems = [], []
    for directory in (d for d in folder.iterdir() if d.is_dir()):
        try:
            Version(directory.name, grammar)
            dirs.append(directory)
        except ValueError:
            problems.append(
                CatalogError(
                    f"{directory.name!r} is not a release version",
                    path=str(directory),
                    hint="deltas live in deltas/<version>/, e.g. deltas/2.0.0/roles.toml; "
                    f"this catalog writes {describe(grammar)}",
                )
            )
    return dirs, problems


def _read(path: Path) -> DeltasFile:
    return read_model(path, DeltasFile, DOC)


def _delta(model: DeltaModel, release: Version, path: Path) -> Delta:
    return Delta(
        id=model.id,
        release=release,
        description=model.description,
        op=model.op,
        type=model.type,
        target=model.target,
        where=tuple((parse_path(k), v) for k, v in model.where.items()),
        document=dict(model.object or {}),
        sets=tuple(_set(s) for s in model.set),
        source=str(path),
    )


def _set(model: SetModel) -> DeltaSet:
    given = model.model_fields_set
    return DeltaSet(
        parse_path(model.path),
        model.old if "old" in given else ABSENT,
        model.new if "new" in given else ABSENT,
    )


def _reused_ids(deltas: list[Delta]) -> list[CatalogError]:
    seen: dict[str, Delta] = {}
    problems = []
    for delta in deltas:
        if delta.id in seen:
            problems.append(
                CatalogError(
                    f"delta id {delta.id!r} is used twice (also in {seen[delta.id].source})",
                    path=delta.source,
                    hint="give every delta its own id: the site records deltas by id",
                )
            )
        seen.setdefault(delta.id, delta)
    return problems
