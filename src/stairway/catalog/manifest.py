"""``stairway.toml``: the product's name, its releases and where its objects live (Pydantic)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from stairway.errors import CatalogError
from stairway.objects.spec import ObjectsModel
from stairway.parsing import toml_document
from stairway.tasks import Task, TaskKind
from stairway.version_grammars import GRAMMARS, GrammarName, describe
from stairway.versions import Version

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductModel(_Strict):
    """``[product]``: the product's name."""

    name: Annotated[str, Field(min_length=1)]
    versions: GrammarName = "pep440"  # how the product writes its versions (docs/catalog.md)


def grammar_of(info: ValidationInfo) -> GrammarName:
    """The catalog's version grammar, which ``read_model`` passes as the validation context."""
    grammar: GrammarName = (info.context or {}).get("versions", "pep440")
    return grammar


def check_version(value: str | None, info: ValidationInfo) -> str | None:
    """``value`` as a version of the catalog's grammar; an error naming the grammar otherwise."""
    if value is None:
        return None
    grammar = grammar_of(info)
    try:
        Version(value, grammar)
    except InvalidVersion:
        raise PydanticCustomError(
            "version",
            "'{value}' is not a version of the {grammar} grammar",
            {"value": value, "grammar": grammar, "hint": f"write {describe(grammar)}"},
        ) from None
    return value


def _plain_name(value: str) -> str:
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{value!r} holds a control character: name the index or table")
    return value


# An index or table name as the database knows it; quoted by the dialect when it is run.
SqlName = Annotated[str, Field(min_length=1, max_length=63), AfterValidator(_plain_name)]


class TaskModel(_Strict):
    """One ``[[release.task]]``: a reindex (an index, or every index of a table) or a product
    command, run after the upgrade's schema and objects; ``serving`` says whether the product
    serves meanwhile."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")]
    serving: bool
    reindex: SqlName | None = None  # an index
    reindex_table: SqlName | None = None  # every index of a table
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = (
        None  # the program and its arguments, run without a shell
    )
    timeout: Annotated[float, Field(gt=0, le=7 * 86400)] = 3600.0  # a command's, in seconds
    idempotent: bool = False  # a command that may run again after a crash cut it short

    @model_validator(mode="after")
    def _one_kind(self) -> TaskModel:
        given = [k for k in ("reindex", "reindex_table", "command") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of `reindex`, `reindex_table` or `command`")
        if self.command is None and "timeout" in self.model_fields_set:
            raise ValueError("`timeout` applies to a `command` task")
        if self.command is None and "idempotent" in self.model_fields_set:
            raise ValueError("`idempotent` applies to a `command` task (a reindex always is)")
        if self.command is not None and any("\x00" in arg for arg in self.command):
            raise ValueError("`command` holds a NUL character")
        return self

    def task(self, release: str) -> Task:
        """The task as a value, declared by ``release``."""
        if self.command is not None:
            argv = tuple(self.command)
            return Task(
                self.name,
                release,
                TaskKind.COMMAND,
                self.serving,
                argv=argv,
                timeout=self.timeout,
                idempotent=self.idempotent,
            )
        kind = TaskKind.REINDEX_INDEX if self.reindex else TaskKind.REINDEX_TABLE
        return Task(
            self.name, release, kind, self.serving, target=self.reindex or self.reindex_table or ""
        )


class AgentsModel(_Strict):
    """``agents = { minors_behind = 1, ahead = false, outside = "refuse" }`` of a ``[[release]]``:
    the agent releases it accepts, and whether one outside them is refused or held."""

    minors_behind: Annotated[int, Field(ge=0)] | None = None
    ahead: bool = False
    outside: Literal["refuse", "hold"] = "refuse"


class ReleaseModel(_Strict):
    """One ``[[release]]`` of ``stairway.toml``."""

    version: str
    # the last change's number, or (an adopted history) its own identifier, e.g. "v3.0.0.a"
    schema_: Annotated[
        Annotated[int, Field(ge=0)] | Annotated[str, Field(min_length=1)], Field(alias="schema")
    ]
    lts: bool = False
    rolling: bool = False
    requires: str | None = None
    agent_protocol: tuple[int, int] | None = None
    agents: AgentsModel | None = None  # the agent releases it accepts
    provides: dict[str, list[str]] = {}  # plug-in kind -> the type names this release ships
    patches: list[str] = []  # patch changes "N.K" of an LTS line this release carries
    clear: list[str] = []  # transient paths of the data directory removed before it starts
    snapshot: str | None = None  # its schema snapshot's directory, relative to the catalog
    task: list[TaskModel] = []  # post-upgrade tasks: a reindex or a product command

    _is_version = field_validator("version", "requires")(check_version)

    @field_validator("patches")
    @classmethod
    def _are_patch_numbers(cls, value: list[str]) -> list[str]:
        for code in value:
            parse_patch(code)
        if len(set(map(parse_patch, value))) != len(value):
            raise ValueError("a patch is listed twice")
        return value

    @field_validator("clear")
    @classmethod
    def _are_inside(cls, value: list[str]) -> list[str]:
        cleared = [inside_path(path) for path in value]
        if len(set(cleared)) != len(cleared):
            raise ValueError("a path is listed twice")
        return cleared

    @field_validator("task")
    @classmethod
    def _named_once(cls, value: list[TaskModel]) -> list[TaskModel]:
        names = [task.name for task in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"task {twice[0]!r} is declared twice: give each a name of its own")
        return value

    @property
    def patch_keys(self) -> tuple[tuple[int, int], ...]:
        """The patch changes this release carries, as sorted (number, patch) pairs."""
        return tuple(sorted(parse_patch(code) for code in self.patches))


def inside_path(path: str) -> str:
    """A path relative to the site's data directory that stays in it, written the one way
    (``"tx-object-store"``, ``"cache/sessions"``); a ValueError (reported by pydantic with its
    key) for an absolute path, a ``..`` step, or the data directory itself."""
    pure = PurePosixPath(path)
    if "\x00" in path:
        raise ValueError(f"{path!r} holds a NUL character")
    if "\\" in path or pure.is_absolute() or path.startswith("~"):
        raise ValueError(
            f"{path!r} is not a relative path: name it from the data directory, "
            'e.g. "tx-object-store"'
        )
    if ".." in pure.parts:
        raise ValueError(f"{path!r} leaves the data directory: a path may not contain '..'")
    if not pure.parts or pure == PurePosixPath("."):
        raise ValueError(f"{path!r} is the data directory itself: name what lies inside it")
    return pure.as_posix()


def parse_patch(code: str) -> tuple[int, int]:
    """``"3.1"`` -> (3, 1); a ValueError (reported by pydantic with its key) otherwise."""
    number, dot, patch = code.partition(".")
    if not (dot and number.isdigit() and patch.isdigit() and int(number) and int(patch)):
        raise ValueError(f'{code!r} is not a patch number: write N.K, e.g. "3.1"')
    return int(number), int(patch)


CheckKind = Literal["query", "command", "memory", "disk", "database"]
PROBES: tuple[CheckKind, ...] = ("query", "command", "memory", "disk", "database")
ENGINES = ("postgresql", "sqlite")
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class CheckModel(_Strict):
    """A pre-upgrade condition, of one kind by the key that names its probe: ``query`` (its first
    value must equal ``expect``), or the environment: ``command`` (the first version in its
    output must meet the ``version`` specifier), ``memory`` or ``disk`` (at ``path``) free at
    least, ``database`` (the engine must be listed, its version meet the engine's specifier)."""

    name: Annotated[str, Field(min_length=1)]
    query: Annotated[str, Field(min_length=1)] | None = None
    expect: str | int | float | bool | None = None
    command: (
        Annotated[str, Field(min_length=1)] | Annotated[list[str], Field(min_length=1)] | None
    ) = None  # run without a shell: a string is split as a shell would split it
    version: str | None = None  # a PEP 440 specifier, e.g. ">=17,<22"
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    memory: int | str | None = None  # bytes, or "2GiB", "512MB"
    disk: int | str | None = None
    path: str | None = None  # where ``disk`` is measured; relative: to the site's data_dir
    database: dict[Literal["postgresql", "sqlite"], str] | None = None  # engine -> specifier
    before: str | None = None  # only for upgrades that reach this release from below it
    severity: Literal["critical", "warning"] = "critical"
    hint: str = ""

    _is_version = field_validator("before")(check_version)

    @field_validator("version")
    @classmethod
    def _is_specifier(cls, value: str | None) -> str | None:
        if value is not None:
            specifier(value)
        return value

    @field_validator("database")
    @classmethod
    def _are_specifiers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and not value:
            raise ValueError(f"name at least one engine: {', '.join(ENGINES)}")
        for spec in (value or {}).values():
            specifier(spec)
        return value

    @field_validator("memory", "disk")
    @classmethod
    def _is_size(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            parse_size(value)
        return value

    @model_validator(mode="after")
    def _one_probe(self) -> CheckModel:
        given = [k for k in PROBES if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(PROBES)}")
        kind = given[0]
        for key, owner in (("expect", "query"), ("version", "command"), ("path", "disk")):
            if getattr(self, key) is not None and kind != owner:
                raise ValueError(f"`{key}` applies to a `{owner}` check")
        if kind == "query" and self.expect is None:
            raise ValueError("a `query` check needs `expect`")
        if kind == "command" and self.version is None:
            raise ValueError('a `command` check needs `version`, a specifier such as ">=17"')
        if self.path is not None and "\x00" in self.path:
            raise ValueError("`path` holds a NUL character")
        return self

    @property
    def kind(self) -> CheckKind:
        """The check's probe: the data (``query``) or a part of the environment."""
        return next(k for k in PROBES if getattr(self, k) is not None)

    @property
    def argv(self) -> list[str]:
        """The command as its program and arguments."""
        if isinstance(self.command, str):
            return shlex.split(self.command)
        return list(self.command or [])

    def requirement(self) -> str:
        """What the check needs, in words: ``must be 'ALTERNATIVE'``, ``java: >=17``."""
        if self.kind == "query":
            return f"must be {self.expect!r}"
        if self.kind == "command":
            return f"{self.argv[0]} {self.version}"
        if self.kind == "database":
            engines = (f"{e} {s}".strip() for e, s in (self.database or {}).items())
            return "database " + " or ".join(engines)
        size = parse_size((self.memory if self.kind == "memory" else self.disk) or 0)
        where = f" at {self.path}" if self.path else ""
        return f"{size / 1e9:,.1f} GB of free {self.kind}{where} at least"


def specifier(text: str) -> SpecifierSet:
    """``text`` as a PEP 440 version specifier (``""``: any version); a ValueError otherwise."""
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise ValueError(
            f'{text!r} is not a version specifier: write e.g. ">=17" or ">=11,<18"'
        ) from None


def parse_size(value: int | str) -> int:
    """A size in bytes: an integer, or a number with a unit (``"2GiB"``, ``"512 MB"``)."""
    if isinstance(value, bool) or (isinstance(value, int) and value < 0):
        raise ValueError(f'{value!r} is not a size: write bytes or e.g. "2GiB"')
    if isinstance(value, int):
        return value
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
    unit = found.group(2).lower() if found else ""
    if found is None or unit not in UNITS:
        raise ValueError(f'{value!r} is not a size: write bytes or e.g. "2GiB", "512MB"')
    return int(float(found.group(1)) * UNITS[unit])


Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
RECONCILED_STATE = {"requeue": "queued", "fail": "failed", "handler": "reconciled"}


class ReconcileModel(_Strict):
    """``[job.reconcile]``: what the product does at start with the jobs an upgrade marked
    interrupted (``stairway.reconcile_jobs``): requeue them, fail them with a reason, or hand
    each to a function."""

    table: Identifier
    key: Identifier = "id"
    state: Identifier = "state"  # the column holding the job's state
    interrupted: Annotated[str, Field(min_length=1)] = "interrupted"  # as `interrupt` writes it
    action: Literal["requeue", "fail", "handler"]
    to: Annotated[str, Field(min_length=1)] | None = None  # default: queued, failed, reconciled
    reason: Annotated[str, Field(min_length=1)] | None = None  # fail: the text recorded ...
    reason_column: Identifier | None = None  # ... in this column
    handler: str | None = None  # handler: "module:function", called per job

    @model_validator(mode="after")
    def _action_keys(self) -> ReconcileModel:
        if (self.action == "fail") != (self.reason is not None and self.reason_column is not None):
            raise ValueError('`reason` and `reason_column` go with action = "fail", and only')
        if (self.action == "handler") != (self.handler is not None):
            raise ValueError('`handler` goes with action = "handler", and only with it')
        if self.handler is not None and not re.fullmatch(r"[\w.]+:\w+", self.handler):
            raise ValueError('`handler` is "module:function", e.g. "myapp.jobs:resume"')
        return self

    @property
    def target_state(self) -> str:
        """The state the reconciled jobs are left in (a handler may change it further)."""
        return self.to or RECONCILED_STATE[self.action]


class JobModel(_Strict):
    """Work the product may have running: its rows are interrupted by an offline upgrade."""

    name: Annotated[str, Field(min_length=1)]
    query: Annotated[str, Field(min_length=1)]  # the running ones: id first, a label second
    interrupt: str | None = None  # marks them Interrupted, so the product reconciles on start
    reconcile: ReconcileModel | None = None  # how the product reconciles them on start


class SmokeModel(_Strict):
    """A post-upgrade check: a query (its first value must equal ``expect`` when given, and it
    must run) or a command (it must exit 0). A failure rolls the upgrade back."""

    name: Annotated[str, Field(min_length=1)]
    query: str | None = None
    command: str | None = None
    expect: str | int | float | bool | None = None
    hint: str = ""

    @model_validator(mode="after")
    def _one_probe(self) -> SmokeModel:
        if (self.query is None) == (self.command is None):
            raise ValueError("give either `query` or `command`")
        if self.command is not None and self.expect is not None:
            raise ValueError("`expect` applies to a query; a command must exit 0")
        return self


class LicenceModel(_Strict):
    """The product's licence: signed by the vendor's key, which ships with the catalog."""

    key: Annotated[str, Field(min_length=1)]  # the public key, relative to the catalog
    warn_days: Annotated[int, Field(ge=0)] = 30  # expiring sooner than this: a warning


class ReferenceModel(_Strict):
    """Objects naming a plug-in type, which the target release must still provide."""

    type: Annotated[str, Field(min_length=1)]
    path: Annotated[str, Field(pattern=r"^[^.]+(\.[^.]+)*$")]
    kind: Annotated[str, Field(min_length=1)]


_DOTTED = r"^[^.]+(\.[^.]+)*$"


class PluginReferenceModel(_Strict):
    """Where objects of ``type`` name a plug-in (``name``) and its version (``version``): dotted
    paths into the object's JSON document."""

    type: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(pattern=_DOTTED)]
    version: Annotated[str, Field(pattern=_DOTTED)]


class PluginModel(_Strict):
    """One ``[[plugin]]``: a plug-in the product ships in versions, the directory it lives in
    (relative to the site's ``data_dir``) and the objects that name its version."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    kind: Annotated[str, Field(min_length=1)]
    directory: Annotated[str, Field(min_length=1)]
    versions: dict[str, str]  # release -> the plug-in version it ships
    reference: list[PluginReferenceModel] = []

    @field_validator("directory")
    @classmethod
    def _inside(cls, value: str) -> str:
        parts = PurePosixPath(value).parts
        if value.startswith(("/", "\\")) or ".." in parts or parts in ((), (".",)):
            raise ValueError(
                "give a directory inside the site's data_dir, without '..' (e.g. "
                '"connectors/ldap")'
            )
        return value

    @field_validator("versions")
    @classmethod
    def _are_versions(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        for release, version in value.items():
            check_version(release, info)
            check_version(version, info)
        return value


class HistoryModel(_Strict):
    """``[history]``: the schema comes from another tool's migration history, read where it lies
    (docs/adopting.md) instead of ``schema/``."""

    tool: Literal["alembic", "flyway", "golang-migrate", "dbmate"]
    path: str | None = None  # the directory, relative to the catalog
    package: str | None = None  # or "package:directory" inside an installed package
    table: str | None = None  # the tool's bookkeeping table, when not the tool's default
    phases: dict[str, Literal["expand", "contract", "offline"]] = {}  # by the tool's identifier
    fresh: str | None = None  # "module:callable" building a fresh database (docs/adopting.md)

    @model_validator(mode="after")
    def _one_place(self) -> HistoryModel:
        if (self.path is None) == (self.package is None):
            raise ValueError("give either `path` or `package`")
        if self.package is not None and ":" not in self.package:
            raise ValueError('`package` is "package:directory", e.g. "myapp.db:migrations"')
        if self.fresh is not None and (":" not in self.fresh or self.tool != "alembic"):
            raise ValueError('`fresh` is "module:callable", for an alembic history')
        return self


class PathTestsModel(_Strict):
    """``[test_paths]``: what ``stairway test-paths`` loads into each scratch site."""

    # "module:function" or "file.py:function" beside stairway.toml, called with a SQLAlchemy
    # Connection and the release the scratch site is at, before it is upgraded
    fixtures: Annotated[str, Field(pattern=r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$")] | None = None


class Manifest(_Strict):
    """The whole of ``stairway.toml``."""

    product: ProductModel
    objects: ObjectsModel | None = None
    release: Annotated[list[ReleaseModel], Field(min_length=1)]
    check: list[CheckModel] = []
    job: list[JobModel] = []
    reference: list[ReferenceModel] = []
    plugin: list[PluginModel] = []
    smoke: list[SmokeModel] = []
    licence: LicenceModel | None = None
    history: HistoryModel | None = None
    test_paths: PathTestsModel | None = None

    @model_validator(mode="after")
    def _plugins_known(self) -> Manifest:
        grammar = self.product.versions
        releases = {Version(r.version, grammar) for r in self.release}
        names = [p.name for p in self.plugin]
        for plugin in self.plugin:
            if names.count(plugin.name) > 1:
                raise ValueError(f"plugin {plugin.name!r} is declared twice")
            unknown = [r for r in plugin.versions if Version(r, grammar) not in releases]
            if unknown:
                raise ValueError(
                    f"plugin {plugin.name!r}: versions names release {unknown[0]}, which is "
                    "not a [[release]] of the catalog"
                )
        return self


def load_manifest(path: Path) -> Manifest:
    """Read and validate ``stairway.toml``; raises CatalogError with the line."""
    return read_model(path, Manifest, grammar=None)


def read_model(
    path: Path, model: type[M], doc: str = "docs/catalog.md", grammar: str | None = "pep440"
) -> M:
    """A catalog TOML file validated as ``model``, its versions read in ``grammar`` (None: the
    grammar its own ``[product] versions`` names); every failure is a CatalogError with its
    line."""
    text = _read(path)
    data = _parse(path, text)
    said = grammar or _said_grammar(data)
    try:
        return model.model_validate(data, context={"versions": said})
    except ValidationError as err:
        raise translate_error(err, path, text, doc) from None


def _said_grammar(data: dict[str, Any]) -> str:
    """The grammar ``[product] versions`` names; a wrong one is reported by its own key."""
    product = data.get("product")
    said = product.get("versions") if isinstance(product, dict) else None
    return said if said in GRAMMARS else "pep440"


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        return toml_document(text)
    except ValueError as err:
        raise CatalogError(
            f"not valid TOML: {err}", path=str(path), hint="fix the TOML syntax"
        ) from None


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CatalogError(
            f"no {path.name} here",
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


def translate_error(
    err: ValidationError, path: Path, text: str, doc: str = "docs/catalog.md"
) -> CatalogError:
    """One CatalogError for pydantic's first complaint: the key path, its line, and the fix;
    its ``others`` are the rest of the complaints, each translated the same way."""
    problems = [_translated(e, path, text, doc) for e in err.errors()]
    problems[0].others = tuple(problems[1:])
    return problems[0]


def _translated(first: ErrorDetails, path: Path, text: str, doc: str) -> CatalogError:
    loc = first["loc"]
    key = _key_path(loc)
    line = _line_of(text, loc)
    if first["type"] == "extra_forbidden":
        return CatalogError(
            f"unknown key {key!r}",
            path=str(path),
            line=line,
            hint=f"remove it or check its spelling against the format ({doc})",
        )
    if first["type"] == "missing":
        leaf = str(loc[-1]) if loc else ""
        return CatalogError(
            f"missing key {key!r}", path=str(path), line=line, hint=f"add {leaf} = ... ({doc})"
        )
    message = first["msg"].removeprefix("Value error, ")
    said = first.get("ctx", {}).get("hint")
    return CatalogError(
        f"{key}: {message}" if key else message,
        path=str(path),
        line=line,
        hint=f"{said} ({doc})" if said else f"fix the value ({doc} describes every key)",
    )


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item + 1}]"
        else:
            parts.append(item)
    return ".".join(parts)


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The line of the key ``loc`` names: tomllib keeps no positions, so look for it.

    ``("release", 2, "schema")`` is the ``schema = ...`` line after the third ``[[release]]``;
    a location that ends at a table entry points at the entry's header.
    """
    lines = text.splitlines()
    start, keys = 0, [k for k in loc if isinstance(k, str)]
    if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
        headers = [i for i, line in enumerate(lines) if line.strip() == f"[[{loc[0]}]]"]
        if loc[1] < len(headers):
            start, keys = headers[loc[1]], [k for k in loc[2:] if isinstance(k, str)]
            if not keys:
                return start + 1
    if not keys:
        return None
    leaf = keys[-1]
    for number in range(start, len(lines)):
        stripped = lines[number].strip()
        if stripped.startswith(leaf) and stripped[len(leaf) :].lstrip().startswith("="):
            return number + 1
    return start + 1 if start else None
