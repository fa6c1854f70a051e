"""The operator's ``site.toml``: where the database, data, config files and backups are."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stairway.errors import SiteError
from stairway.parsing import toml_document

DEFAULT_SITE = "site.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSection(_Strict):
    """``[site]``: the database URL and the site's directories and files."""

    database: Annotated[str, Field(min_length=1)]
    data_dir: Path | None = None
    config_files: list[Path] = []
    backup_dir: Path | None = None
    releases_dir: Path | None = None  # releases/<version>/ and the `current` link
    artifacts: Path | None = None  # where release artifacts and their signed manifests are
    release_key: Path | None = None  # the product's release.pub this site trusts
    release_index: str | None = None  # URL or directory of the product's signed release index
    catalog: Path | None = None


class ServiceSection(_Strict):
    """``[service]``: how Stairway stops, starts and health-checks the product."""

    stop: str | None = None
    start: str | None = None
    run: str | None = None  # without start/stop: Stairway runs this command itself
    health: str | None = None
    health_timeout: Annotated[float, Field(gt=0)] = 60.0  # seconds to wait for a 2xx answer
    # where the health answer names its release: "json:KEY" (a key of its JSON object),
    # "header:NAME" (a response header), or "none" (the answer is not asked)
    health_release: Annotated[
        str, Field(pattern=r"^(json:[A-Za-z0-9_-]+|header:[A-Za-z0-9-]+|none)$")
    ] = "json:release"
    stop_timeout: Annotated[float, Field(gt=0)] = 30.0  # seconds for the product to be shown down
    instances: list[str] = []  # each instance's URL, for rolling upgrades
    drain: str | None = None  # a URL POSTed to drain an instance, e.g. "{url}/drain"
    drain_timeout: Annotated[float, Field(gt=0)] = 60.0


HOOK = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"  # "module:function"


class SessionsSection(_Strict):
    """``[sessions]``: where the product's user sessions are, for an offline upgrade to count,
    wait for or end them (``stairway.open_sessions``)."""

    redis: str | None = None  # the Redis URL of the session store
    prefix: str | None = None  # the store's key prefix; the product's name unless given
    pattern: str | None = None  # the session keys as a Redis glob; "PREFIX:session:*" unless given
    count: Annotated[str | None, Field(pattern=HOOK)] = None  # "module:function" -> open sessions
    end: Annotated[str | None, Field(pattern=HOOK)] = None  # "module:function"(notice) -> ended
    notice: Annotated[str, Field(min_length=1)] = (
        "This service is being upgraded: please save your work and sign out."
    )

    @model_validator(mode="after")
    def _has_a_source(self) -> SessionsSection:
        if self.redis is None and self.count is None:
            raise ValueError('name the session store (redis = "redis://...") or a count hook')
        if self.redis is None and self.end is not None and self.count is None:
            raise ValueError("an end hook needs a count hook")
        return self


class FleetSection(_Strict):
    """``[fleet]``: the control plane's agent builds and timings."""

    builds: Path | None = None  # published agent builds, served to agents
    public_url: str | None = None  # how agents reach the control plane (for build URLs)
    heartbeat: Annotated[float, Field(gt=0)] = 10.0  # seconds between an agent's heartbeats
    deadline: Annotated[float, Field(gt=0)] = 120.0  # seconds for an upgraded agent to come back


class SecretsSection(_Strict):
    """``[secrets]``: where the site key is kept."""

    key_file: Path | None = None  # the site key (mode 0600); STAIRWAY_SITE_KEY overrides it


class AuditSection(_Strict):
    """``[audit]``: where the audit log is anchored, outside the database and the backups."""

    key_file: Path | None = None  # the audit signing key (mode 0600); see stairway.audit_anchor
    witness: Path | None = None  # the append-only file of signed checkpoints
    syslog: bool = False  # each checkpoint also to syslog (/dev/log)


class LicenceSection(_Strict):
    """``[licence]``: where the product's licence file is."""

    file: Path | None = None  # the product's signed licence file


class Site(_Strict):
    """The whole of ``site.toml``, with ``path`` the file it was read from."""

    site: SiteSection
    service: ServiceSection | None = None
    fleet: FleetSection = FleetSection()
    secrets: SecretsSection = SecretsSection()
    licence: LicenceSection = LicenceSection()
    audit: AuditSection = AuditSection()
    sessions: SessionsSection | None = None
    path: Path = Path(DEFAULT_SITE)

    @property
    def database(self) -> str:
        """The database URL of ``[site]``."""
        return self.site.database


def site_path(given: Path | None) -> Path:
    """The site file given, else ``$STAIRWAY_SITE``, else ``site.toml`` here."""
    if given is not None:
        return given
    return Path(os.environ.get("STAIRWAY_SITE", DEFAULT_SITE))


def load_site(given: Path | None) -> Site:
    """Read and validate the site file, resolving its paths against the file's directory.

    Raises:
        SiteError: The file is missing or not valid TOML, a key is wrong, or the backup
            directory and the data directory (or SQLite file) lie one inside the other.
    """
    path = site_path(given)
    data = _parse(path, _read(path))
    try:
        site = Site.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise SiteError(f"{path}: {key}: {first['msg']}", hint="see docs/site.md") from None
    resolved = _resolved(site, path)
    _check_apart(resolved.site, path)
    return resolved


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SiteError(
            f"no site file at {path}",
            hint="write a site.toml (docs/site.md), or pass --site FILE / set STAIRWAY_SITE",
        ) from None
    except UnicodeDecodeError as err:
        raise SiteError(
            f"{path}: not valid UTF-8 (byte {err.start})", hint="save the file as UTF-8"
        ) from None
    except OSError as err:
        raise SiteError(
            f"{path}: cannot read: {err.strerror}", hint="pass the site.toml file, readable"
        ) from None


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        return toml_document(text)
    except ValueError as err:
        raise SiteError(f"{path}: not valid TOML: {err}", hint="fix the syntax") from None


def _resolved(site: Site, path: Path) -> Site:
    """Relative paths in a site file are relative to the file, not to the working directory."""
    base = path.resolve().parent
    section = site.site
    fixed = section.model_copy(
        update={
            "database": _resolve_sqlite(section.database, base),
            "data_dir": _under(base, section.data_dir),
            "config_files": [base / p for p in section.config_files],
            "backup_dir": _under(base, section.backup_dir),
            "releases_dir": _under(base, section.releases_dir),
            "artifacts": _under(base, section.artifacts),
            "release_key": _under(base, section.release_key),
            "release_index": _place(base, section.release_index),
            "catalog": _under(base, section.catalog),
        }
    )
    fleet = site.fleet.model_copy(update={"builds": _under(base, site.fleet.builds)})
    secrets = SecretsSection(key_file=_under(base, site.secrets.key_file))
    licence = LicenceSection(file=_under(base, site.licence.file))
    audit = site.audit.model_copy(
        update={
            "key_file": _under(base, site.audit.key_file),
            "witness": _under(base, site.audit.witness),
        }
    )
    return site.model_copy(
        update={
            "site": fixed,
            "fleet": fleet,
            "secrets": secrets,
            "licence": licence,
            "audit": audit,
            "path": path,
        }
    )


def _under(base: Path, value: Path | None) -> Path | None:
    return None if value is None else base / value


def _place(base: Path, value: str | None) -> str | None:
    """A URL as it is; a directory relative to the site file, as every path of it is."""
    if value is None or "://" in value:
        return value
    return str(base / value)


def _resolve_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix + ":memory:":
        return url
    rest = url[len(prefix) :]
    return url if rest.startswith("/") else prefix + str(base / rest)


def _check_apart(section: SiteSection, path: Path) -> None:
    """Backups live apart from what they back up: a backup_dir inside data_dir makes every
    backup hold the ones before it and a restore replace them; a data_dir or SQLite file
    inside backup_dir mixes the site with its archives. Compared on resolved paths."""
    if section.backup_dir is None:
        return
    backups = section.backup_dir.resolve()
    data = section.data_dir.resolve() if section.data_dir else None
    database = _sqlite_file(section.database)
    if data is not None and backups.is_relative_to(data):
        raise SiteError(
            f"{path}: backup_dir {backups} lies inside data_dir {data}: every backup would "
            "hold the ones before it, and a restore would replace them",
            hint=f"move backup_dir outside the data directory, e.g. beside it "
            f'(backup_dir = "{data.parent / "backups"}"), and move any archives already there',
        )
    if data is not None and data.is_relative_to(backups):
        raise SiteError(
            f"{path}: data_dir {data} lies inside backup_dir {backups}",
            hint="give the data directory and the backups separate places, side by side",
        )
    if database is not None and database.is_relative_to(backups):
        raise SiteError(
            f"{path}: the SQLite database {database} lies inside backup_dir {backups}",
            hint="keep backup_dir for backups only: move it, or the database file (and its "
            "`database` URL), elsewhere",
        )


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix + ":memory:":
        return None
    return Path(url[len(prefix) :].split("?", 1)[0]).resolve()
