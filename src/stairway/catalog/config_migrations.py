"""``config.toml``: the catalog's config-file migrations, checked whole before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from stairway.catalog.manifest import check_version, read_model
from stairway.configfiles.migration import (
    KEYED_OPS,
    XML_OPS,
    ConfigMigration,
    ConfigOp,
    ConfigTransition,
    Format,
    parse_key,
)
from stairway.configfiles.xmlfile import check_xpath
from stairway.version_grammars import GrammarName
from stairway.versions import Version

DOC = "docs/config-files.md"


class ConfigMigrationModel(BaseModel):
    """One ``[[migration]]`` of ``config.toml``, as written by the vendor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Annotated[str, Field(min_length=1)]
    since: str
    op: ConfigOp
    format: Format | None = None
    key: str | None = None
    to: str | None = None
    value: Any = None
    xpath: str | None = None
    namespaces: dict[str, str] = {}
    attribute: str | None = None
    transition: ConfigTransition = ConfigTransition.AUTOMATIC
    note: str = ""

    @property
    def resolved_format(self) -> Format:
        """The ``format`` given, or the one the file's extension says.

        Raises ValueError when neither says one.
        """
        found = self.format or Format.of(Path(self.file))
        if found is None:
            raise ValueError(f"cannot tell the format of {self.file!r}: add format = ...")
        return found

    _is_version = field_validator("since")(check_version)

    @model_validator(mode="after")
    def _fits(self) -> ConfigMigrationModel:
        if self.resolved_format == Format.XML:
            self._fits_xml()
        else:
            self._fits_keyed()
        return self

    def _fits_xml(self) -> None:
        _allowed(self.op, XML_OPS, "XML")
        _needs("xpath", self.xpath, self.op)
        _forbids(("key", self.key), ("to", self.to))
        check_xpath(self.xpath or "", self.namespaces)
        _needs("attribute", self.attribute, self.op, self.op == ConfigOp.SET_ATTRIBUTE)
        _needs("value", self.value, self.op, self.op != ConfigOp.REMOVE)
        if self.value is not None and not isinstance(self.value, str | int | float | bool):
            raise ValueError("`value` for XML must be a string, number or boolean")

    def _fits_keyed(self) -> None:
        _allowed(self.op, KEYED_OPS, self.resolved_format.value.upper())
        _forbids(("xpath", self.xpath), ("attribute", self.attribute))
        _needs("key", self.key, self.op)
        key = parse_key(self.key or "")
        _needs("to", self.to, self.op, self.op == ConfigOp.RENAME)
        if self.to is not None:
            to = parse_key(self.to)
            if to[: len(key)] == key or key[: len(to)] == to:
                raise ValueError("`to` must lie outside `key`, and `key` outside `to`")
        _needs("value", self.value, self.op, self.op == ConfigOp.SET_DEFAULT)


def _allowed(op: ConfigOp, ops: frozenset[ConfigOp], kind: str) -> None:
    if op not in ops:
        names = ", ".join(sorted(o.value for o in ops))
        raise ValueError(f"op {op.value!r} does not apply to {kind} files (use {names})")


def _needs(name: str, value: object, op: ConfigOp, needed: bool = True) -> None:
    if needed and value is None:
        raise ValueError(f"`{name}` is required for {op.value}")
    if not needed and value is not None:
        raise ValueError(f"`{name}` is not used by {op.value}")


def _forbids(*pairs: tuple[str, object]) -> None:
    for name, value in pairs:
        if value is not None:
            raise ValueError(f"`{name}` does not apply to this file's format")


class ConfigFile(BaseModel):
    """The whole of ``config.toml``: its list of config-file migrations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    migration: list[ConfigMigrationModel] = []


def load_config_migrations(
    root: Path, grammar: GrammarName = "pep440"
) -> tuple[ConfigMigration, ...]:
    """The config-file migrations of the catalog at ``root``, in file order (none without one),
    ``since`` read in the catalog's version ``grammar``."""
    path = root / "config.toml"
    if not path.is_file():
        return ()
    return tuple(
        _migration(number, model, path, grammar)
        for number, model in enumerate(read_model(path, ConfigFile, DOC, grammar).migration, 1)
    )


def _migration(
    number: int, model: ConfigMigrationModel, path: Path, grammar: GrammarName
) -> ConfigMigration:
    return ConfigMigration(
        number=number,
        file=model.file,
        since=Version(model.since, grammar),
        op=model.op,
        format=model.resolved_format,
        key=parse_key(model.key) if model.key else (),
        to=parse_key(model.to) if model.to else (),
        value=model.value,
        xpath=model.xpath or "",
        namespaces=tuple(sorted(model.namespaces.items())),
        attribute=model.attribute or "",
        transition=model.transition,
        note=model.note,
        source=str(path),
    )
