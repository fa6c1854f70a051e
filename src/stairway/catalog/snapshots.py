"""Schema snapshots a release ships: its schema as it stands, so that ``init`` builds a site at
a late release from one file instead of replaying every change (Rails' ``schema.rb``, GitLab's
``structure.sql``, Flyway's baseline migrations).

A release names a directory (``snapshot = "snapshots/2.1.0"``) holding, per dialect, the DDL
(``postgresql.sql``, ``sqlite.sql``), the rows the changes insert when they insert some
(``postgresql.rows.sql``: seed data and sequence values) and a manifest beside them
(``postgresql.toml``, ``sqlite.toml``) giving the release, the change level the files stand for
and their SHA-256. A manifest that does not match its release or its files is refused when the
catalog loads. Snapshots written before rows were carried have no rows file and still load.

A catalog with a ``[history]`` ships snapshots too: their manifest also names the history's
own identifier of the migration at their level (``history = "v1.3.0.a"``, a Flyway version, a
file's version), and a snapshot whose identifier is not the history's at that level (a
migration inserted or renamed below it since) is refused. The tool's own table is not in the
files: ``init`` stamps it from the level (:func:`stairway.schema.histories.ledger.stamp`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stairway.catalog.manifest import Manifest, check_version, read_model
from stairway.errors import CatalogError
from stairway.versions import Release, Version

DIALECTS: tuple[str, ...] = ("postgresql", "sqlite")
_DOC = "docs/catalog.md"


class SnapshotManifest(BaseModel):
    """``<dialect>.toml`` beside a snapshot's DDL: what the DDL stands for and its digest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    release: str
    level: Annotated[int, Field(ge=1)]  # the release's schema: changes 1..level
    dialect: Literal["postgresql", "sqlite"]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    # SHA-256 of the rows file; absent when the changes insert no rows
    rows_sha256: Annotated[str | None, Field(pattern=r"^[0-9a-f]{64}$")] = None
    # an adopted history's own identifier of the migration at ``level``; absent without one
    history: Annotated[str | None, Field(min_length=1)] = None

    _is_version = field_validator("release")(check_version)


@dataclass(frozen=True)
class Snapshot:
    """One dialect's snapshot of a release, as checked when the catalog loaded."""

    release: Version
    level: int
    dialect: str
    ddl_path: Path
    sha256: str
    rows_path: Path | None = None  # the rows the changes insert; None when they insert none

    def ddl(self) -> str:
        """The DDL's text (checked against its digest when the catalog loaded)."""
        return self.ddl_path.read_bytes().decode("utf-8")

    def rows(self) -> str:
        """The rows file's text (checked against its digest when the catalog loaded); empty
        when the snapshot carries no rows."""
        return self.rows_path.read_bytes().decode("utf-8") if self.rows_path else ""

    def describe(self) -> str:
        """``the snapshot of 2.1.0 (changes 1..11)``."""
        return f"the snapshot of {self.release} (changes 1..{self.level})"


def ddl_name(dialect: str) -> str:
    """The DDL file of ``dialect`` in a snapshot directory."""
    return f"{dialect}.sql"


def rows_name(dialect: str) -> str:
    """The rows file of ``dialect`` in a snapshot directory."""
    return f"{dialect}.rows.sql"


def manifest_name(dialect: str) -> str:
    """The manifest of ``dialect``'s DDL in a snapshot directory."""
    return f"{dialect}.toml"


def digest(data: bytes) -> str:
    """The SHA-256 a manifest records, of the DDL file's bytes."""
    return hashlib.sha256(data).hexdigest()


def newest_at_or_below(snapshots: Sequence[Snapshot], level: int, dialect: str) -> Snapshot | None:
    """The snapshot of ``dialect`` with the highest level not above ``level``; None if none."""
    fitting = [s for s in snapshots if s.dialect == dialect and s.level <= level]
    return max(fitting, key=lambda s: (s.level, s.release), default=None)


def read_snapshots(
    root: Path, manifest: Manifest, releases: Sequence[Release], points: Mapping[int, str]
) -> tuple[tuple[Snapshot, ...], list[CatalogError]]:
    """Every snapshot the releases name, and the problems of those that do not check out;
    ``points`` maps each change number of an adopted history to the history's own identifier
    of it (empty for a catalog keeping its own ``schema/``)."""
    found: list[Snapshot] = []
    problems: list[CatalogError] = []
    for model, release in zip(manifest.release, releases, strict=True):
        if model.snapshot is None:
            continue
        for item in _release_snapshots(root, manifest, release, model.snapshot, points):
            if isinstance(item, CatalogError):
                problems.append(item)
            else:
                found.append(item)
    return tuple(found), problems


def _release_snapshots(
    root: Path, manifest: Manifest, release: Release, named: str, points: Mapping[int, str]
) -> Iterator[Snapshot | CatalogError]:
    toml = str(root / "stairway.toml")
    directory = (root / named).resolve()
    if not directory.is_relative_to(root.resolve()):
        yield CatalogError(
            f"release {release.version}: snapshot {named!r} lies outside the catalog",
            path=toml,
            hint="name a directory inside the catalog, e.g. snapshots/" + str(release.version),
        )
        return
    if release.patches:
        yield CatalogError(
            f"release {release.version}: a snapshot of a release carrying patch changes is not "
            "supported",
            path=toml,
            hint="remove `snapshot` from this release: init replays its changes",
        )
        return
    dialects = [d for d in DIALECTS if (directory / manifest_name(d)).is_file()]
    if not dialects:
        yield CatalogError(
            f"release {release.version}: {named} holds no snapshot "
            f"({' or '.join(manifest_name(d) for d in DIALECTS)})",
            path=toml,
            hint=f"write one with `stairway snapshot --release {release.version}`",
        )
    point = points.get(release.schema) if manifest.history is not None else None
    for dialect in dialects:
        yield _one(directory, release, dialect, point)


def _one(
    directory: Path, release: Release, dialect: str, point: str | None
) -> Snapshot | CatalogError:
    path = directory / manifest_name(dialect)
    try:
        said = read_model(path, SnapshotManifest, _DOC, release.version.grammar)
    except CatalogError as error:
        return error
    redo = f"write it again with `stairway snapshot --release {release.version}`"
    if said.dialect != dialect or Version(said.release, release.version.grammar) != release.version:
        return CatalogError(
            f"the manifest is of release {said.release} ({said.dialect}), beside "
            f"release {release.version}'s {dialect} snapshot",
            path=str(path),
            hint=redo,
        )
    if said.level != release.schema:
        return CatalogError(
            f"the snapshot says it stands for changes 1..{said.level}, but release "
            f"{release.version} needs changes 1..{release.schema}",
            path=str(path),
            hint=redo,
        )
    problem = _point_problem(said, point, path, redo)
    if problem is not None:
        return problem
    return _checked(directory / ddl_name(dialect), path, release, said, redo)


def _point_problem(
    said: SnapshotManifest, point: str | None, path: Path, redo: str
) -> CatalogError | None:
    """Why the snapshot is not of the point of the history its level is; None when it is (or
    when neither the catalog nor the snapshot has a history)."""
    if said.history == point:
        return None
    if point is None:
        why = f"names history migration {said.history!r}, but the catalog adopts no history"
    elif said.history is None:
        why = f"names no history migration, where change {said.level} is {point!r}"
    else:
        why = (
            f"stands for history migration {said.history!r}, which is no point of the history "
            f"at change {said.level} (that is {point!r}): a migration was added, removed or "
            "renamed below it since"
        )
    return CatalogError(f"the snapshot {why}", path=str(path), hint=redo)


def _checked(
    ddl: Path, path: Path, release: Release, said: SnapshotManifest, redo: str
) -> Snapshot | CatalogError:
    problem = _digest_problem(ddl, said.sha256, path, redo, "the DDL")
    if problem is not None:
        return problem
    rows = ddl.parent / rows_name(said.dialect)
    if said.rows_sha256 is None:
        if rows.exists():
            return CatalogError(
                f"{rows.name} lies beside a manifest that names no rows (no rows_sha256): "
                "it was added by hand or its manifest replaced",
                path=str(path),
                hint=redo,
            )
        return Snapshot(release.version, said.level, said.dialect, ddl, said.sha256)
    problem = _digest_problem(rows, said.rows_sha256, path, redo, "the rows")
    if problem is not None:
        return problem
    return Snapshot(release.version, said.level, said.dialect, ddl, said.sha256, rows)


def _digest_problem(
    file: Path, expected: str, path: Path, redo: str, what: str
) -> CatalogError | None:
    """Why ``file`` is not the file its manifest names; None when it is."""
    try:
        actual = digest(file.read_bytes())
    except OSError as err:
        return CatalogError(
            f"cannot read {file.name}: {err.strerror or err}", path=str(path), hint=redo
        )
    if actual == expected:
        return None
    return CatalogError(
        f"{file.name} does not match its manifest (SHA-256 {actual[:12]}..., the manifest "
        f"says {expected[:12]}...): {what} was edited or replaced",
        path=str(path),
        hint=redo,
    )
