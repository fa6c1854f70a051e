"""The manifest inside every backup: what it holds and the checksum of every member."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stairway.backup.archive import Member
from stairway.errors import BackupError

FORMAT: Literal[1] = 1


class MemberModel(BaseModel):
    """An archive member's size and SHA-256, as the manifest lists them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ConfigFileModel(BaseModel):
    """A config file in the backup: its archive member and its path on the site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    member: str
    path: str  # where the file lives on the site


class AuditHeadModel(BaseModel):
    """The audit log's last entry when the backup was taken: where a restore carries on from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int  # 0: the log was empty
    hash: str

    @classmethod
    def empty(cls) -> AuditHeadModel:
        """The head of an empty audit log."""
        return cls(id=0, hash="0" * 64)


class BackupManifest(BaseModel):
    """What a backup holds and where it came from: the archive's last member."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = FORMAT
    id: str
    product: str
    version: str
    schema_level: int
    created: str  # ISO 8601, UTC
    engine: Literal["sqlite", "postgresql"]
    database: str  # the member holding the database
    data_dir: str | None = None  # the site's data directory when the backup was taken
    links: dict[str, str] = {}  # symbolic links inside the data directory: path -> target
    config_files: list[ConfigFileModel] = []
    secret_keys: dict[str, int] = {}  # site key id -> secrets it seals (the keys are not here)
    audit_head: AuditHeadModel | None = None  # None: a backup older than this field
    members: dict[str, MemberModel]

    @property
    def size(self) -> int:
        """The bytes of all members together, uncompressed."""
        return sum(m.size for m in self.members.values())

    @property
    def sizes(self) -> dict[str, int]:
        """Each member's size in bytes, by name."""
        return {name: m.size for name, m in self.members.items()}

    def encode(self) -> bytes:
        """The manifest as indented JSON bytes, as it is stored in the archive."""
        return orjson.dumps(self.model_dump(), option=orjson.OPT_INDENT_2)

    def check(self, found: dict[str, Member]) -> None:
        """Refuse unless ``found`` holds exactly the listed members with their sizes and hashes."""
        missing = sorted(set(self.members) - set(found))
        extra = sorted(set(found) - set(self.members))
        wrong = sorted(
            name
            for name, m in self.members.items()
            if name in found and (found[name].size, found[name].sha256) != (m.size, m.sha256)
        )
        problems = [
            *(f"{n} is missing" for n in missing),
            *(f"{n} is not listed in the manifest" for n in extra),
            *(f"{n} does not match its SHA-256" for n in wrong),
        ]
        if problems:
            raise BackupError(
                f"backup {self.id} is damaged: {'; '.join(problems[:5])}"
                + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""),
                hint="nothing was restored; use another backup (`stairway backups`)",
            )


def parse_manifest(raw: bytes, name: str) -> BackupManifest:
    """Read and validate a manifest; ``name`` is the backup it came from, for messages.

    Raises BackupError when it is not JSON or not a manifest this version reads.
    """
    try:
        return BackupManifest.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as err:
        why = f"not valid JSON: {err}"
    except ValidationError as err:
        first = err.errors()[0]
        why = f"{'.'.join(str(p) for p in first['loc']) or 'the whole'}: {first['msg']}"
    raise BackupError(
        f"{name}: the manifest is unreadable ({why})",
        hint="nothing was restored; use another backup (`stairway backups`)",
    )
